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
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, info, warn, Instrument};

use crate::broker::Broker;
use crate::handlers::{self, RequestContext};
use crate::protocol::{self, versions, Decoded, FrameError};

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
    ($request:expr, $key:expr, $ctx:expr, $corr:expr, { $($api:ident => $handler:path),* $(,)? }) => {
        match $request {
            $(RequestKind::$api(request) => {
                let response = $handler(&$ctx, request).await;
                Some(protocol::encode_response(ApiKey::$api, $ctx.version, $corr, &response)?)
            })*
            // Decoding admits only advertised APIs, and each has an arm above.
            _ => return Err(FrameError::UnsupportedVersion { key: $key, version: $ctx.version }.into()),
        }
    };
}

/// Decodes, handles and encodes one request. `Ok(None)` means no response is due (acks=0).
pub async fn process(
    broker: &Arc<Broker>,
    frame: Bytes,
    client_host: &str,
) -> Result<Option<BytesMut>> {
    let request = match protocol::decode_request(frame)? {
        Decoded::Request(request) => *request,
        Decoded::NewerApiVersions { correlation_id } => {
            let body = versions::unsupported_api_versions_response();
            return Ok(Some(protocol::encode_response(
                ApiKey::ApiVersions,
                0,
                correlation_id,
                &body,
            )?));
        }
    };
    let ctx = RequestContext {
        broker: broker.clone(),
        version: request.version,
        client_id: request.client_id.unwrap_or_default(),
        client_host: client_host.to_string(),
    };
    let corr = request.correlation_id;
    if let RequestKind::Produce(produce) = request.body {
        return match handlers::produce::handle_produce(&ctx, produce).await {
            Some(response) => Ok(Some(protocol::encode_response(
                ApiKey::Produce,
                ctx.version,
                corr,
                &response,
            )?)),
            None => Ok(None),
        };
    }
    let response = dispatch!(request.body, request.key, ctx, corr, {
        ApiVersions => api_versions,
        Metadata => handlers::metadata::handle_metadata,
        DescribeCluster => handlers::metadata::handle_describe_cluster,
        FindCoordinator => handlers::metadata::handle_find_coordinator,
        InitProducerId => handlers::produce::handle_init_producer_id,
        Fetch => handlers::fetch::handle_fetch,
        ListOffsets => handlers::fetch::handle_list_offsets,
        OffsetForLeaderEpoch => handlers::fetch::handle_offset_for_leader_epoch,
        CreateTopics => handlers::admin::handle_create_topics,
        DeleteTopics => handlers::admin::handle_delete_topics,
        CreatePartitions => handlers::admin::handle_create_partitions,
        DeleteRecords => handlers::admin::handle_delete_records,
        DescribeLogDirs => handlers::admin::handle_describe_log_dirs,
        ListPartitionReassignments => handlers::admin::handle_list_partition_reassignments,
        DescribeAcls => handlers::admin::handle_describe_acls,
        CreateAcls => handlers::admin::handle_create_acls,
        DeleteAcls => handlers::admin::handle_delete_acls,
        DescribeConfigs => handlers::configs::handle_describe_configs,
        AlterConfigs => handlers::configs::handle_alter_configs,
        IncrementalAlterConfigs => handlers::configs::handle_incremental_alter_configs,
        JoinGroup => handlers::groups::handle_join_group,
        SyncGroup => handlers::groups::handle_sync_group,
        Heartbeat => handlers::groups::handle_heartbeat,
        LeaveGroup => handlers::groups::handle_leave_group,
        OffsetCommit => handlers::groups::handle_offset_commit,
        OffsetFetch => handlers::groups::handle_offset_fetch,
        ListGroups => handlers::groups::handle_list_groups,
        DescribeGroups => handlers::groups::handle_describe_groups,
        DeleteGroups => handlers::groups::handle_delete_groups,
        OffsetDelete => handlers::groups::handle_offset_delete,
        ElectLeaders => handlers::admin::handle_elect_leaders,
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
