//! The Kafka listener: accepts connections, reads size-prefixed frames, dispatches each
//! request to its handler and writes responses in request order.
//!
//! Each connection handles one request at a time, like Kafka (which mutes a channel until
//! its response is sent), so pipelined requests are answered in order. Malformed input
//! closes only the offending connection.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, info, warn, Instrument};

use crate::broker::Broker;
use crate::handlers::{self, RequestContext};
use crate::protocol::{self, versions, FrameError};

/// Accepts connections until `shutdown` flips to true.
pub async fn serve(
    broker: Arc<Broker>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let broker = broker.clone();
                let span = tracing::info_span!("connection", %peer);
                tokio::spawn(async move {
                    if let Err(e) = handle_connection(broker, stream, peer).await {
                        debug!(error = %e, "connection closed");
                    }
                }.instrument(span));
            }
            _ = shutdown.changed() => {
                info!("listener stopping");
                return Ok(());
            }
        }
    }
}

async fn handle_connection(broker: Arc<Broker>, stream: TcpStream, peer: SocketAddr) -> Result<()> {
    let (read, write) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, read);
    let mut writer = BufWriter::with_capacity(64 * 1024, write);
    let max = broker.config.max_request_bytes();
    let client_host = format!("/{}", peer.ip());
    loop {
        let size = match reader.read_i32().await {
            Ok(size) => size,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let size = match protocol::check_frame_size(size, max) {
            Ok(size) => size,
            Err(e) => {
                warn!(error = %e, "closing connection");
                return Err(e.into());
            }
        };
        let mut frame = BytesMut::zeroed(size);
        reader.read_exact(&mut frame).await?;
        match process(&broker, frame.freeze(), &client_host).await {
            Ok(Some(response)) => {
                writer.write_all(&response).await?;
                writer.flush().await?;
            }
            Ok(None) => {}
            Err(e) => {
                warn!(error = %e, "closing connection after bad request");
                return Err(e);
            }
        }
    }
}

macro_rules! dispatch {
    ($key:expr, $ctx:expr, $body:expr, $corr:expr, { $($api:ident => $req:ty => $handler:path),* $(,)? }) => {
        match $key {
            $(ApiKey::$api => {
                let request = <$req>::decode(&mut $body, $ctx.version)
                    .map_err(|e| FrameError::Malformed(format!("{:?} v{}: {e}", ApiKey::$api, $ctx.version)))?;
                let response = $handler(&$ctx, request).await;
                Some(protocol::encode_response(ApiKey::$api, $ctx.version, $corr, &response)?)
            })*
            other => return Err(FrameError::UnsupportedVersion { key: other, version: $ctx.version }.into()),
        }
    };
}

/// Decodes, handles and encodes one request. `Ok(None)` means no response is due (acks=0).
pub async fn process(
    broker: &Arc<Broker>,
    frame: Bytes,
    client_host: &str,
) -> Result<Option<BytesMut>> {
    let peek = protocol::peek_header(&frame)?;
    let key =
        ApiKey::try_from(peek.api_key).map_err(|_| FrameError::UnknownApiKey(peek.api_key))?;
    if key == ApiKey::ApiVersions {
        if let Some((_, max)) = versions::advertised(key) {
            if peek.api_version > max {
                let body = versions::unsupported_api_versions_response();
                return Ok(Some(protocol::encode_response(
                    key,
                    0,
                    peek.correlation_id,
                    &body,
                )?));
            }
        }
    }
    if !versions::is_servable(key, peek.api_version) {
        return Err(FrameError::UnsupportedVersion {
            key,
            version: peek.api_version,
        }
        .into());
    }
    let mut body = frame;
    let header = protocol::decode_header(key, peek.api_version, &mut body)?;
    let ctx = RequestContext {
        broker: broker.clone(),
        version: peek.api_version,
        client_id: header.client_id.map(|c| c.to_string()).unwrap_or_default(),
        client_host: client_host.to_string(),
    };
    let corr = peek.correlation_id;
    if key == ApiKey::Produce {
        let request = ProduceRequest::decode(&mut body, ctx.version)
            .map_err(|e| FrameError::Malformed(format!("Produce v{}: {e}", ctx.version)))?;
        return match handlers::produce::handle_produce(&ctx, request).await {
            Some(response) => Ok(Some(protocol::encode_response(
                key,
                ctx.version,
                corr,
                &response,
            )?)),
            None => Ok(None),
        };
    }
    let response = dispatch!(key, ctx, body, corr, {
        ApiVersions => ApiVersionsRequest => api_versions,
        Metadata => MetadataRequest => handlers::metadata::handle_metadata,
        DescribeCluster => DescribeClusterRequest => handlers::metadata::handle_describe_cluster,
        FindCoordinator => FindCoordinatorRequest => handlers::metadata::handle_find_coordinator,
        InitProducerId => InitProducerIdRequest => handlers::produce::handle_init_producer_id,
        Fetch => FetchRequest => handlers::fetch::handle_fetch,
        ListOffsets => ListOffsetsRequest => handlers::fetch::handle_list_offsets,
        OffsetForLeaderEpoch => OffsetForLeaderEpochRequest => handlers::fetch::handle_offset_for_leader_epoch,
        CreateTopics => CreateTopicsRequest => handlers::admin::handle_create_topics,
        DeleteTopics => DeleteTopicsRequest => handlers::admin::handle_delete_topics,
        CreatePartitions => CreatePartitionsRequest => handlers::admin::handle_create_partitions,
        DeleteRecords => DeleteRecordsRequest => handlers::admin::handle_delete_records,
        DescribeLogDirs => DescribeLogDirsRequest => handlers::admin::handle_describe_log_dirs,
        ListPartitionReassignments => ListPartitionReassignmentsRequest => handlers::admin::handle_list_partition_reassignments,
        DescribeAcls => DescribeAclsRequest => handlers::admin::handle_describe_acls,
        CreateAcls => CreateAclsRequest => handlers::admin::handle_create_acls,
        DeleteAcls => DeleteAclsRequest => handlers::admin::handle_delete_acls,
        DescribeConfigs => DescribeConfigsRequest => handlers::configs::handle_describe_configs,
        AlterConfigs => AlterConfigsRequest => handlers::configs::handle_alter_configs,
        IncrementalAlterConfigs => IncrementalAlterConfigsRequest => handlers::configs::handle_incremental_alter_configs,
        JoinGroup => JoinGroupRequest => handlers::groups::handle_join_group,
        SyncGroup => SyncGroupRequest => handlers::groups::handle_sync_group,
        Heartbeat => HeartbeatRequest => handlers::groups::handle_heartbeat,
        LeaveGroup => LeaveGroupRequest => handlers::groups::handle_leave_group,
        OffsetCommit => OffsetCommitRequest => handlers::groups::handle_offset_commit,
        OffsetFetch => OffsetFetchRequest => handlers::groups::handle_offset_fetch,
        ListGroups => ListGroupsRequest => handlers::groups::handle_list_groups,
        DescribeGroups => DescribeGroupsRequest => handlers::groups::handle_describe_groups,
        DeleteGroups => DeleteGroupsRequest => handlers::groups::handle_delete_groups,
        OffsetDelete => OffsetDeleteRequest => handlers::groups::handle_offset_delete,
        ElectLeaders => ElectLeadersRequest => handlers::admin::handle_elect_leaders,
    });
    Ok(response)
}

async fn api_versions(_ctx: &RequestContext, _req: ApiVersionsRequest) -> ApiVersionsResponse {
    versions::api_versions_response()
}

/// Background housekeeping: group timers every 100 ms, ISR maintenance every 200 ms,
/// time-based flushes and high-watermark checkpoints every second, retention on its interval.
pub async fn housekeeping(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let retention_every = std::time::Duration::from_millis(
        broker
            .config
            .setting_i64("log.retention.check.interval.ms")
            .max(100) as u64,
    );
    let mut groups = tokio::time::interval(std::time::Duration::from_millis(100));
    let mut retention = tokio::time::interval(retention_every);
    let mut flushes = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut isr = tokio::time::interval(std::time::Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = groups.tick() => broker.groups.tick(),
            _ = isr.tick() => broker.maintain_isr(),
            _ = retention.tick() => {
                let broker = broker.clone();
                let _ = tokio::task::spawn_blocking(move || broker.replicas.apply_retention()).await;
            }
            _ = flushes.tick() => {
                let broker = broker.clone();
                let _ = tokio::task::spawn_blocking(move || broker.replicas.flush_due()).await;
            }
            _ = shutdown.changed() => return,
        }
    }
}
