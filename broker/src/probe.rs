//! `tributary-broker --check-ready`: the readiness check a broker pod runs. A broker is
//! ready when its listener answers Kafka requests and the metadata it serves lists it as a
//! live broker, i.e. it is registered with the controller and not fenced. An open port
//! alone proves neither.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use kafka_protocol::messages::MetadataRequest;

use crate::config::BrokerConfig;
use crate::replication::client::KafkaConnection;

/// How long the check may take (below the probe's timeout).
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// The Metadata version the check speaks.
const METADATA_VERSION: i16 = 12;

/// Succeeds when the broker `config` describes serves clients and lists itself as live.
pub async fn check_ready(config: &BrokerConfig) -> Result<()> {
    let (_, port) = config
        .listen
        .rsplit_once(':')
        .context("the listen address has no port")?;
    let addr = format!("127.0.0.1:{port}");
    let request = MetadataRequest::default().with_topics(Some(Vec::new()));
    let response = tokio::time::timeout(CHECK_TIMEOUT, async {
        let mut connection = KafkaConnection::connect(&addr, "readiness-check".into()).await?;
        connection.send(METADATA_VERSION, &request).await
    })
    .await
    .map_err(|_| anyhow::anyhow!("{addr} did not answer within {CHECK_TIMEOUT:?}"))??;
    if !response
        .brokers
        .iter()
        .any(|b| b.node_id.0 == config.broker_id)
    {
        bail!(
            "broker {} is not live in its own metadata (registering or fenced)",
            config.broker_id
        );
    }
    Ok(())
}
