//! The API versions this broker advertises in ApiVersions, and the KIP-511 fallback.
//!
//! Ranges are hand-written (never taken from `ApiKey::valid_versions()`, which over-reports)
//! and stay within what the codec can decode. Produce is advertised from v0 because
//! librdkafka ≤ 2.10 only enables compression when Produce v0 is in range, exactly as
//! Apache Kafka 4 does; v0-2 requests themselves are refused by closing the connection.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use tributary_metadata::ResponseError;

/// `(api, min advertised, min decodable, max)`.
pub const SUPPORTED: &[(ApiKey, i16, i16, i16)] = &[
    (ApiKey::Produce, 0, 3, 12),
    (ApiKey::Fetch, 4, 4, 17),
    (ApiKey::ListOffsets, 1, 1, 10),
    (ApiKey::Metadata, 0, 0, 13),
    (ApiKey::OffsetCommit, 2, 2, 9),
    (ApiKey::OffsetFetch, 1, 1, 9),
    (ApiKey::FindCoordinator, 0, 0, 6),
    (ApiKey::JoinGroup, 0, 0, 9),
    (ApiKey::Heartbeat, 0, 0, 4),
    (ApiKey::LeaveGroup, 0, 0, 5),
    (ApiKey::SyncGroup, 0, 0, 5),
    (ApiKey::DescribeGroups, 0, 0, 5),
    (ApiKey::ListGroups, 0, 0, 5),
    (ApiKey::ApiVersions, 0, 0, 4),
    (ApiKey::CreateTopics, 2, 2, 7),
    (ApiKey::DeleteTopics, 1, 1, 6),
    (ApiKey::DeleteRecords, 0, 0, 2),
    (ApiKey::InitProducerId, 0, 0, 5),
    (ApiKey::OffsetForLeaderEpoch, 2, 2, 4),
    (ApiKey::DescribeAcls, 1, 1, 3),
    (ApiKey::CreateAcls, 1, 1, 3),
    (ApiKey::DeleteAcls, 1, 1, 3),
    (ApiKey::DescribeConfigs, 1, 1, 4),
    (ApiKey::AlterConfigs, 0, 0, 2),
    (ApiKey::DescribeLogDirs, 1, 1, 4),
    (ApiKey::CreatePartitions, 0, 0, 3),
    (ApiKey::DeleteGroups, 0, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0, 0),
    (ApiKey::OffsetDelete, 0, 0, 0),
    (ApiKey::DescribeCluster, 0, 0, 1),
    (ApiKey::ElectLeaders, 0, 0, 2),
    (ApiKey::AddPartitionsToTxn, 0, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 0, 3),
    (ApiKey::EndTxn, 0, 0, 3),
    (ApiKey::WriteTxnMarkers, 1, 1, 1),
    (ApiKey::TxnOffsetCommit, 0, 0, 3),
    (ApiKey::DescribeProducers, 0, 0, 0),
    (ApiKey::DescribeTransactions, 0, 0, 0),
    (ApiKey::ListTransactions, 0, 0, 2),
    (ApiKey::ConsumerGroupHeartbeat, 0, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 0, 1),
];

/// Whether requests of `key` at `version` can be served (decoded and answered).
pub fn is_servable(key: ApiKey, version: i16) -> bool {
    SUPPORTED
        .iter()
        .any(|&(k, _, min, max)| k == key && (min..=max).contains(&version))
}

/// The advertised range of `key`, if supported.
pub fn advertised(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, ..)| *k == key)
        .map(|&(_, min, _, max)| (min, max))
}

/// The ApiVersions table, sorted by key (librdkafka binary-searches it).
pub fn api_versions_response() -> ApiVersionsResponse {
    let mut keys: Vec<ApiVersion> = SUPPORTED
        .iter()
        .map(|&(k, min, _, max)| {
            ApiVersion::default()
                .with_api_key(k as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect();
    keys.sort_by_key(|k| k.api_key);
    ApiVersionsResponse::default()
        .with_api_keys(keys)
        .with_finalized_features_epoch(-1)
}

/// KIP-511: the answer to an ApiVersions request newer than we know, in v0 format.
pub fn unsupported_api_versions_response() -> ApiVersionsResponse {
    let (min, max) = advertised(ApiKey::ApiVersions).unwrap_or((0, 3));
    ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(vec![ApiVersion::default()
            .with_api_key(ApiKey::ApiVersions as i16)
            .with_min_version(min)
            .with_max_version(max)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::Message;

    /// Every advertised maximum must be decodable by the codec.
    #[test]
    fn ranges_are_within_codec_support() {
        fn check<R: Message>(key: ApiKey) {
            let (_, max) = advertised(key).unwrap();
            assert!(
                max <= R::VERSIONS.max,
                "{key:?} max {max} > codec {}",
                R::VERSIONS.max
            );
            let min = SUPPORTED.iter().find(|e| e.0 == key).unwrap().2;
            assert!(
                min >= R::VERSIONS.min,
                "{key:?} min {min} < codec {}",
                R::VERSIONS.min
            );
        }
        check::<ProduceRequest>(ApiKey::Produce);
        check::<FetchRequest>(ApiKey::Fetch);
        check::<ListOffsetsRequest>(ApiKey::ListOffsets);
        check::<MetadataRequest>(ApiKey::Metadata);
        check::<OffsetCommitRequest>(ApiKey::OffsetCommit);
        check::<OffsetFetchRequest>(ApiKey::OffsetFetch);
        check::<JoinGroupRequest>(ApiKey::JoinGroup);
        check::<InitProducerIdRequest>(ApiKey::InitProducerId);
        check::<DescribeConfigsRequest>(ApiKey::DescribeConfigs);
        check::<DescribeClusterRequest>(ApiKey::DescribeCluster);
        check::<CreateTopicsRequest>(ApiKey::CreateTopics);
        check::<OffsetForLeaderEpochRequest>(ApiKey::OffsetForLeaderEpoch);
        check::<DescribeGroupsRequest>(ApiKey::DescribeGroups);
        check::<ConsumerGroupHeartbeatRequest>(ApiKey::ConsumerGroupHeartbeat);
        check::<ListTransactionsRequest>(ApiKey::ListTransactions);
        check::<DescribeProducersRequest>(ApiKey::DescribeProducers);
        check::<DescribeTransactionsRequest>(ApiKey::DescribeTransactions);
        check::<ConsumerGroupDescribeRequest>(ApiKey::ConsumerGroupDescribe);
    }

    #[test]
    fn produce_is_advertised_from_zero_but_served_from_three() {
        assert_eq!(advertised(ApiKey::Produce), Some((0, 12)));
        assert!(!is_servable(ApiKey::Produce, 2));
        assert!(is_servable(ApiKey::Produce, 3));
        let table = api_versions_response();
        assert!(table
            .api_keys
            .windows(2)
            .all(|w| w[0].api_key < w[1].api_key));
    }
}
