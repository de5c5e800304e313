//! The Kafka listener: accepts connections, reads size-prefixed frames, dispatches each
//! request to its handler and writes responses in request order.
//!
//! Each connection handles one request at a time, like Kafka (which mutes a channel until
//! its response is sent), so pipelined requests are answered in order. Malformed input
//! closes only the offending connection. [`limits`] bounds connections and the memory
//! requests hold: a frame's buffer grows with the bytes that actually arrive, never to a
//! declared size up front.

pub mod limits;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::sync::OwnedSemaphorePermit;
use tracing::{debug, error, info, warn, Instrument};

use crate::broker::Broker;
use crate::handlers::{self, RequestContext};
use crate::protocol::{self, versions, Decoded, FrameError};
use limits::Limits;

/// How long accepting pauses after a failed accept (descriptors or memory exhausted).
const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);
/// At most one warning about failed accepts per this interval.
const ACCEPT_WARNING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Accepts connections until `shutdown` flips to true.
pub async fn serve(
    broker: Arc<Broker>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let limits = Limits::new(&broker.config);
    let mut last_accept_warning: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Out of file descriptors (or memory) the pending connection stays
                        // queued and accept fails again at once: pause instead of spinning,
                        // and say so once a second, not once per attempt.
                        if last_accept_warning.is_none_or(|t| t.elapsed() >= ACCEPT_WARNING_INTERVAL) {
                            warn!(error = %e, "accept failed; pausing accepts");
                            last_accept_warning = Some(std::time::Instant::now());
                        }
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                let admitted = match limits.admit(peer.ip()) {
                    Ok(admitted) => admitted,
                    Err(refused) => {
                        debug!(%peer, %refused, "connection refused");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let broker = broker.clone();
                let limits = limits.clone();
                let span = tracing::info_span!("connection", %peer);
                tokio::spawn(async move {
                    if let Err(e) = handle_connection(broker, stream, peer, &limits).await {
                        debug!(error = %e, "connection closed");
                    }
                    drop(admitted);
                }.instrument(span));
            }
            _ = shutdown.changed() => {
                info!("listener stopping");
                return Ok(());
            }
        }
    }
}

/// Read buffer of a connection: small, since idle connections keep it; a large frame is
/// read past it, straight into the frame's own buffer.
const READ_BUFFER: usize = 8 * 1024;
/// Request memory is reserved in steps of this size as a frame's bytes arrive, so a
/// client holds at most this much more than it has sent.
const FRAME_CHUNK: usize = 256 * 1024;

async fn handle_connection(
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
    limits: &Limits,
) -> Result<()> {
    let (read, mut writer) = stream.into_split();
    let mut reader = BufReader::with_capacity(READ_BUFFER, read);
    let max = broker.config.max_request_bytes();
    let client_host = format!("/{}", peer.ip());
    loop {
        let size = match tokio::time::timeout(limits.idle, reader.read_i32()).await {
            Err(_) => {
                debug!("closing idle connection (connections.max.idle.ms)");
                return Ok(());
            }
            Ok(Ok(size)) => size,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(e)) => return Err(e.into()),
        };
        let size = match protocol::check_frame_size(size, max) {
            Ok(size) => size,
            Err(e) => {
                warn!(error = %e, "closing connection");
                return Err(e.into());
            }
        };
        // Held until the response is written: the request's bytes stay in memory until then.
        let (frame, _memory) = read_frame(&mut reader, size, limits).await?;
        match process(&broker, frame.freeze(), &client_host).await {
            Ok(Some(response)) => writer.write_all(&response).await?,
            Ok(None) => {}
            Err(e) if e.is::<protocol::ResponseEncodeError>() => {
                error!(error = %e, "closing connection: no response can be sent");
                return Err(e);
            }
            Err(e) => {
                warn!(error = %e, "closing connection after bad request");
                return Err(e);
            }
        }
    }
}

/// Reads a `size`-byte frame, growing its buffer and its reservation of request memory
/// as bytes arrive, and closing the connection if none arrive for `connections.max.idle.ms`.
async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    size: usize,
    limits: &Limits,
) -> Result<(BytesMut, OwnedSemaphorePermit)> {
    let mut frame = BytesMut::new();
    let mut memory = limits.reserve(size.min(FRAME_CHUNK)).await;
    let mut reserved = size.min(FRAME_CHUNK);
    frame.reserve(reserved);
    while frame.len() < size {
        if frame.len() == reserved {
            let more = (size - reserved).min(FRAME_CHUNK);
            memory.merge(limits.reserve(more).await);
            reserved += more;
            frame.reserve(more);
        }
        let want = (reserved - frame.len()) as u64;
        let mut limited = (&mut *reader).take(want);
        match tokio::time::timeout(limits.idle, limited.read_buf(&mut frame)).await {
            Err(_) => anyhow::bail!("request stalled for connections.max.idle.ms"),
            Ok(Ok(0)) => anyhow::bail!("connection closed mid-request"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.into()),
        }
    }
    Ok((frame, memory))
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
        AddPartitionsToTxn => handlers::transactions::handle_add_partitions_to_txn,
        AddOffsetsToTxn => handlers::transactions::handle_add_offsets_to_txn,
        EndTxn => handlers::transactions::handle_end_txn,
        TxnOffsetCommit => handlers::transactions::handle_txn_offset_commit,
        WriteTxnMarkers => handlers::transactions::handle_write_txn_markers,
        DescribeProducers => handlers::transactions::handle_describe_producers,
        DescribeTransactions => handlers::transactions::handle_describe_transactions,
        ListTransactions => handlers::transactions::handle_list_transactions,
        ConsumerGroupHeartbeat => handlers::consumer_groups::handle_consumer_group_heartbeat,
        ConsumerGroupDescribe => handlers::consumer_groups::handle_consumer_group_describe,
    });
    Ok(response)
}

async fn api_versions(_ctx: &RequestContext, _req: ApiVersionsRequest) -> ApiVersionsResponse {
    versions::api_versions_response()
}

/// Background housekeeping: group timers every 100 ms, ISR maintenance every 200 ms,
/// time-based flushes, high-watermark checkpoints and transaction timeouts every second,
/// retention on its interval.
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
                let expiring = broker.clone();
                tokio::spawn(async move { expiring.expire_transactions().await });
                let broker = broker.clone();
                let _ = tokio::task::spawn_blocking(move || broker.replicas.flush_due()).await;
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// The log cleaner: passes over the compacted replicas one after another while any was
/// dirty enough to clean, resting `log.cleaner.backoff.ms` when none was (Kafka's cleaner
/// thread, `log.cleaner.threads=1`).
pub async fn log_cleaner(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    if !broker.config.setting_bool("log.cleaner.enable") {
        return;
    }
    let backoff = std::time::Duration::from_millis(
        broker.config.setting_i64("log.cleaner.backoff.ms").max(10) as u64,
    );
    let buffer = broker
        .config
        .setting_i64("log.cleaner.dedupe.buffer.size")
        .max(crate::log::cleaner::ENTRY_BYTES as i64) as usize;
    loop {
        let pass = {
            let broker = broker.clone();
            tokio::task::spawn_blocking(move || broker.replicas.clean_logs(buffer))
        };
        let cleaned = pass.await.unwrap_or(false);
        let rest = if cleaned {
            std::time::Duration::ZERO
        } else {
            backoff
        };
        tokio::select! {
            _ = tokio::time::sleep(rest) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits(bytes: &str, idle_ms: &str) -> Arc<Limits> {
        let mut launch = tributary_metadata::launch::BrokerLaunch::new(1, "/unused", "127.0.0.1:0");
        launch.overrides = [
            ("queued.max.request.bytes", bytes),
            ("connections.max.idle.ms", idle_ms),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Limits::new(&crate::config::BrokerConfig::from_launch(&launch).unwrap())
    }

    #[tokio::test]
    async fn a_frame_is_read_as_it_arrives_and_holds_memory_until_dropped() {
        let limits = limits("1000000", "5000");
        let (mut client, mut server) = tokio::io::duplex(1024);
        let size = 700_000;
        let sender = tokio::spawn(async move {
            for chunk in vec![7u8; size].chunks(10_000) {
                client.write_all(chunk).await.unwrap();
            }
            client
        });
        let (frame, memory) = read_frame(&mut server, size, &limits).await.unwrap();
        assert_eq!(frame.len(), size);
        assert!(frame.iter().all(|b| *b == 7));
        assert_eq!(memory.num_permits(), size);
        drop(memory);
        drop(sender.await.unwrap());
    }

    #[tokio::test]
    async fn a_declared_size_is_not_allocated_before_its_bytes_arrive() {
        let limits = limits("1000000", "200");
        let (mut client, mut server) = tokio::io::duplex(1024);
        client.write_all(&[1u8; 100]).await.unwrap();
        // 100 MB declared, 100 bytes sent, then silence: the read gives up after the idle
        // time, having reserved one chunk, not the declared size.
        let started = tokio::time::Instant::now();
        let result = read_frame(&mut server, 100 << 20, &limits).await;
        assert!(result.is_err());
        assert!(started.elapsed() >= Duration::from_millis(200));
        drop(client);
    }
}
