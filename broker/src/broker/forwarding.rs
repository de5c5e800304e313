//! Metadata-changing admin requests, forwarded to the controller (as KRaft brokers
//! forward them): the broker answers with the controller's result once its own image
//! includes the change, so the client's next Metadata request sees it. Producer-id blocks
//! come from the controller the same way.

use std::collections::BTreeMap;
use std::time::Duration;

use tracing::{info, warn};
use tributary_metadata::rpc::{
    ConfigResource, ControllerRequest, ControllerResponse, ElectionResults, TopicSpec,
};
use tributary_metadata::{ApiError, ResponseError, TopicMeta};

use super::{Broker, CONTROLLER_TIMEOUT};
use crate::group::offsets::OFFSETS_TOPIC;

/// How long an admin request waits for its change to reach this broker's image.
const PROPAGATION_TIMEOUT: Duration = Duration::from_secs(5);

/// A block of producer ids handed out one by one: `[next, end)`.
#[derive(Debug, Default)]
pub struct ProducerIdBlock {
    next: i64,
    end: i64,
}

fn unexpected(answer: &ControllerResponse) -> ApiError {
    ApiError::new(
        ResponseError::UnknownServerError,
        format!("unexpected controller answer {answer:?}"),
    )
}

impl Broker {
    async fn call_controller(
        &self,
        request: ControllerRequest,
        unreachable: ResponseError,
    ) -> Result<ControllerResponse, ApiError> {
        match self.controller.call(&request, CONTROLLER_TIMEOUT).await {
            Ok(ControllerResponse::Error(e)) => Err(e),
            Ok(response) => Ok(response),
            Err(e) => Err(ApiError::new(
                unreachable,
                format!("controller request failed: {e}"),
            )),
        }
    }

    /// Sends an admin request and waits until this broker's image includes its change.
    async fn forward(&self, request: ControllerRequest) -> Result<ControllerResponse, ApiError> {
        let response = self
            .call_controller(request, ResponseError::RequestTimedOut)
            .await?;
        let version = match &response {
            ControllerResponse::Topics { version, .. }
            | ControllerResponse::Done { version, .. }
            | ControllerResponse::Elections { version, .. } => *version,
            other => return Err(unexpected(other)),
        };
        self.metadata
            .wait_for_version(version, PROPAGATION_TIMEOUT)
            .await;
        Ok(response)
    }

    /// A per-topic admin request: one result per topic.
    async fn forward_topics(
        &self,
        request: ControllerRequest,
        n: usize,
    ) -> Vec<Result<TopicMeta, ApiError>> {
        match self.forward(request).await {
            Ok(ControllerResponse::Topics { results, .. }) => results,
            Ok(other) => vec![Err(unexpected(&other)); n],
            Err(e) => vec![Err(e); n],
        }
    }

    async fn forward_done(&self, request: ControllerRequest) -> Result<(), ApiError> {
        match self.forward(request).await? {
            ControllerResponse::Done { result, .. } => result,
            other => Err(unexpected(&other)),
        }
    }

    /// CreateTopics.
    pub async fn create_topics(
        &self,
        topics: Vec<TopicSpec>,
        validate_only: bool,
    ) -> Vec<Result<TopicMeta, ApiError>> {
        let n = topics.len();
        let request = ControllerRequest::CreateTopics {
            topics,
            validate_only,
        };
        self.forward_topics(request, n).await
    }

    /// DeleteTopics; also drops the topics' committed offsets.
    pub async fn delete_topics(&self, names: Vec<String>) -> Vec<Result<TopicMeta, ApiError>> {
        let n = names.len();
        let results = self
            .forward_topics(ControllerRequest::DeleteTopics { names }, n)
            .await;
        for topic in results.iter().flatten() {
            self.offsets.forget_topic(&topic.name).await;
        }
        results
    }

    /// CreatePartitions.
    pub async fn create_partitions(
        &self,
        topic: &str,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        self.forward_done(ControllerRequest::CreatePartitions {
            topic: topic.to_string(),
            count,
            assignments,
            validate_only,
        })
        .await
    }

    /// AlterConfigs (full replacement of the resource's dynamic configs).
    pub async fn alter_configs(
        &self,
        resource: ConfigResource,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        self.forward_done(ControllerRequest::AlterConfigs {
            resource,
            configs,
            validate_only,
        })
        .await
    }

    /// ElectLeaders.
    pub async fn elect_leaders(
        &self,
        preferred: bool,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Result<ElectionResults, ApiError> {
        let request = ControllerRequest::ElectLeaders {
            preferred,
            partitions,
        };
        match self.forward(request).await? {
            ControllerResponse::Elections { results, .. } => Ok(results),
            other => Err(unexpected(&other)),
        }
    }

    /// Creates `__consumer_offsets` if it does not exist yet (on first FindCoordinator).
    pub async fn ensure_offsets_topic(&self) {
        if self
            .metadata
            .with_image(|img| img.topics.contains_key(OFFSETS_TOPIC))
        {
            return;
        }
        let live = self.metadata.live_brokers().len().max(1) as i16;
        let rf = (self
            .config
            .setting_i64("offsets.topic.replication.factor")
            .clamp(1, i16::MAX as i64) as i16)
            .min(live);
        let spec = TopicSpec {
            name: OFFSETS_TOPIC.to_string(),
            partitions: self.groups.offsets_partitions,
            replication_factor: rf,
            assignments: Vec::new(),
            // As Kafka creates it: compacted, so the log keeps each group's latest metadata
            // and each partition's latest commit, and tombstones remove them.
            configs: BTreeMap::from([
                ("cleanup.policy".to_string(), "compact".to_string()),
                (
                    "segment.bytes".to_string(),
                    self.config
                        .setting_i64("offsets.topic.segment.bytes")
                        .max(14)
                        .to_string(),
                ),
            ]),
        };
        for result in self.create_topics(vec![spec], false).await {
            match result {
                Ok(_) => info!(replication_factor = rf, "created {OFFSETS_TOPIC}"),
                Err(e) if e.code == ResponseError::TopicAlreadyExists => {}
                Err(e) => warn!(error = %e, "creating {OFFSETS_TOPIC} failed"),
            }
        }
    }

    /// A new producer id for InitProducerId, from blocks the controller allocates.
    pub async fn allocate_producer_id(&self) -> Result<i64, ApiError> {
        let mut block = self.producer_ids.lock().await;
        if block.next >= block.end {
            let request = ControllerRequest::AllocateProducerIds {
                broker_id: self.config.broker_id,
                broker_epoch: self.broker_epoch(),
            };
            match self
                .call_controller(request, ResponseError::CoordinatorNotAvailable)
                .await?
            {
                ControllerResponse::ProducerIds { first, count } => {
                    *block = ProducerIdBlock {
                        next: first,
                        end: first + count,
                    }
                }
                other => return Err(unexpected(&other)),
            }
        }
        let id = block.next;
        block.next += 1;
        Ok(id)
    }
}
