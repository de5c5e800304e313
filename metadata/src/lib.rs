//! Tributary's cluster metadata: what the controller decides and every broker applies.
//!
//! Shared by the broker, the controller and the operator, and free of storage and
//! networking beyond message framing:
//! - [`image`]: the versioned metadata image (brokers, topics, partitions, configs);
//! - [`rpc`]: the messages of the broker ↔ controller channel and their framing;
//! - [`topic_config`]: the topic configs Tributary honours and how values resolve;
//! - [`error`]: the Kafka error vocabulary ([`ResponseError`], [`ApiError`]);
//! - [`launch`]: how a broker process is started (flags and environment).

pub mod error;
pub mod image;
pub mod launch;
pub mod rpc;
pub mod topic_config;

pub use error::{ApiError, ResponseError};
pub use image::{BrokerInfo, MetadataImage, PartitionMeta, TopicMeta, TopicPartition};
