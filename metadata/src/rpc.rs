//! Messages of the private broker ↔ controller channel.
//!
//! Each message is a length-prefixed JSON document; every connection carries one request at
//! a time. The messages mirror KRaft's (BrokerRegistration, BrokerHeartbeat, AlterPartition,
//! AllocateProducerIds, the forwarded admin requests), and the metadata image is pulled with
//! a long poll keyed by its version. Brokers prove who they are with their broker epoch, so a
//! fenced or restarted broker's old requests are refused.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use uuid::Uuid;

use crate::error::ApiError;
use crate::image::{MetadataImage, PartitionMeta, TopicMeta};

/// Largest message accepted on the channel (a full metadata image must fit).
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Creation parameters of one topic (CreateTopics).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicSpec {
    pub name: String,
    /// -1: the controller's default (`num.partitions`).
    pub partitions: i32,
    /// -1: the controller's default (`default.replication.factor`).
    pub replication_factor: i16,
    /// Explicit replica lists per partition, if given.
    pub assignments: Vec<Vec<i32>>,
    pub configs: BTreeMap<String, String>,
}

/// Which configs an AlterConfigs request changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigResource {
    Topic(String),
    /// `None` is the cluster-wide default (`--entity-default`).
    Broker(Option<i32>),
}

/// BrokerRegistration: who a broker is and where clients reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub broker_id: i32,
    /// Identifies one run of the broker process.
    pub incarnation: Uuid,
    pub rack: Option<String>,
    pub host: String,
    pub port: i32,
    /// The cluster the broker's data directory belongs to, if it has joined one before.
    pub cluster_id: Option<String>,
}

/// AlterPartition: a leader's proposed ISR, fenced by its broker, leader and partition epochs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsrChange {
    pub broker_id: i32,
    pub broker_epoch: i64,
    pub topic: String,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<i32>,
    /// The broker epoch each member of `new_isr` fetched with, in the same order (-1 where
    /// unknown): a replica is added only if that is its current registration (KIP-903).
    #[serde(default)]
    pub new_isr_epochs: Vec<i64>,
}

/// Per-partition outcomes of ElectLeaders.
pub type ElectionResults = Vec<((String, i32), Result<(), ApiError>)>;

/// Requests a broker sends to the controller.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControllerRequest {
    /// The first message on a connection to a controller host that serves several
    /// clusters (the Kubernetes operator): which cluster's controller the connection is for.
    /// Answered with `Done`, or `Error(NOT_CONTROLLER)` when this host does not control it.
    Attach {
        cluster: String,
    },
    /// BrokerRegistration: join (or rejoin) the cluster; answered with a new broker epoch.
    Register(Registration),
    /// BrokerHeartbeat: keeps the session alive.
    Heartbeat {
        broker_id: i32,
        broker_epoch: i64,
    },
    /// Long poll for a metadata image newer than `known_version` (or from a new controller).
    FetchMetadata {
        broker_id: i32,
        known_version: u64,
        known_controller_epoch: u64,
        max_wait_ms: u64,
    },
    /// AlterPartition: a leader proposes a new ISR.
    AlterPartition(IsrChange),
    /// ControlledShutdown: the broker is about to stop; its leaderships move now, before it
    /// stops serving (answered with `Done` and the version that moved them).
    ControlledShutdown {
        broker_id: i32,
        broker_epoch: i64,
    },
    /// AllocateProducerIds: a block of producer ids for InitProducerId.
    AllocateProducerIds {
        broker_id: i32,
        broker_epoch: i64,
    },
    CreateTopics {
        topics: Vec<TopicSpec>,
        validate_only: bool,
    },
    DeleteTopics {
        names: Vec<String>,
    },
    CreatePartitions {
        topic: String,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    },
    AlterConfigs {
        resource: ConfigResource,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    },
    /// ElectLeaders: preferred (true) or unclean (false), for the given partitions or all.
    ElectLeaders {
        preferred: bool,
        partitions: Option<Vec<(String, i32)>>,
    },
}

/// The controller's answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControllerResponse {
    Registered {
        broker_epoch: i64,
        cluster_id: String,
    },
    Heartbeat {
        fenced: bool,
    },
    /// `image` is `None` when nothing changed within the wait.
    Metadata {
        controller_epoch: u64,
        image: Option<Box<MetadataImage>>,
    },
    PartitionChanged(Result<PartitionMeta, ApiError>),
    ProducerIds {
        first: i64,
        count: i64,
    },
    /// Per-item outcomes of an admin request, and the image version that includes them.
    Topics {
        results: Vec<Result<TopicMeta, ApiError>>,
        version: u64,
    },
    Done {
        result: Result<(), ApiError>,
        version: u64,
    },
    Elections {
        results: ElectionResults,
        version: u64,
    },
    /// The request could not be served at all (stale broker epoch, not registered, ...).
    Error(ApiError),
}

/// Splits a controller address, `HOST:PORT` or `HOST:PORT/CLUSTER`, into where to connect
/// and which cluster to attach to.
pub fn split_controller_address(address: &str) -> (&str, Option<&str>) {
    match address.split_once('/') {
        Some((host_port, cluster)) if !cluster.is_empty() => (host_port, Some(cluster)),
        Some((host_port, _)) => (host_port, None),
        None => (address, None),
    }
}

/// Writes one message.
pub async fn write_message<W: AsyncWrite + Unpin, M: Serialize>(
    w: &mut W,
    message: &M,
) -> std::io::Result<()> {
    let body = serde_json::to_vec(message).map_err(std::io::Error::other)?;
    w.write_u32(body.len() as u32).await?;
    w.write_all(&body).await?;
    w.flush().await
}

/// Reads one message; `Ok(None)` on a clean end of stream.
pub async fn read_message<R: AsyncRead + Unpin, M: for<'de> Deserialize<'de>>(
    r: &mut R,
) -> std::io::Result<Option<M>> {
    let len = match r.read_u32().await {
        Ok(len) => len as usize,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    };
    if len > MAX_MESSAGE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("controller message of {len} bytes is too large"),
        ));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_addresses_may_name_a_cluster() {
        assert_eq!(split_controller_address("c:9090"), ("c:9090", None));
        assert_eq!(
            split_controller_address("c.ns.svc:9090/kafka/demo"),
            ("c.ns.svc:9090", Some("kafka/demo"))
        );
        assert_eq!(split_controller_address("c:9090/"), ("c:9090", None));
    }

    #[tokio::test]
    async fn messages_roundtrip_and_limits() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let req = ControllerRequest::Heartbeat {
            broker_id: 3,
            broker_epoch: 9,
        };
        write_message(&mut a, &req).await.unwrap();
        let got: ControllerRequest = read_message(&mut b).await.unwrap().unwrap();
        assert!(matches!(
            got,
            ControllerRequest::Heartbeat {
                broker_id: 3,
                broker_epoch: 9
            }
        ));
        a.write_u32(u32::MAX).await.unwrap();
        assert!(read_message::<_, ControllerRequest>(&mut b).await.is_err());
        drop(a);
        let mut empty = tokio::io::empty();
        assert!(read_message::<_, ControllerRequest>(&mut empty)
            .await
            .unwrap()
            .is_none());
    }
}
