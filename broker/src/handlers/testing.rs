//! What handler tests share: a broker with a topic, without a controller or a listener.

use std::collections::BTreeMap;
use std::sync::Arc;

use tributary_metadata::image::{BrokerInfo, MetadataImage, PartitionMeta, TopicMeta};
use tributary_metadata::launch::BrokerLaunch;

use super::RequestContext;
use crate::config::BrokerConfig;
use crate::Broker;

/// A request context on `broker` at `version`.
pub fn context(broker: &Arc<Broker>, version: i16) -> RequestContext {
    RequestContext {
        broker: broker.clone(),
        version,
        client_id: "test".into(),
        client_host: "127.0.0.1".into(),
    }
}

/// A registered broker of the test image, in `rack`.
pub fn broker_info(id: i32, rack: &str, fenced: bool) -> BrokerInfo {
    BrokerInfo {
        id,
        rack: Some(rack.into()),
        host: "127.0.0.1".into(),
        port: 9000 + id,
        epoch: 1,
        incarnation: uuid::Uuid::nil(),
        fenced,
    }
}

/// A broker (id 1, zone-a) with topic `t`: partition 0 in sync on all three brokers,
/// partition 1 with broker 2 out of sync; broker 3 is fenced.
pub fn broker_with_topic(dir: &std::path::Path) -> Arc<Broker> {
    let mut launch = BrokerLaunch::new(1, dir, "127.0.0.1:0");
    launch.rack = Some("zone-a".into());
    launch.controller = Some("127.0.0.1:1".into());
    let config = BrokerConfig::from_launch(&launch).unwrap();
    let broker = Broker::open(config, "127.0.0.1:1").unwrap();
    let partition = |isr: Vec<i32>| PartitionMeta {
        replicas: vec![1, 2, 3],
        isr,
        leader: 1,
        leader_epoch: 0,
        partition_epoch: 0,
    };
    let mut image = MetadataImage {
        version: 1,
        brokers: BTreeMap::from([
            (1, broker_info(1, "zone-a", false)),
            (2, broker_info(2, "zone-b", false)),
            (3, broker_info(3, "zone-c", true)),
        ]),
        ..Default::default()
    };
    image.topics.insert(
        "t".into(),
        TopicMeta {
            name: "t".into(),
            id: uuid::Uuid::new_v4(),
            partitions: vec![partition(vec![1, 2, 3]), partition(vec![1, 3])],
            configs: BTreeMap::new(),
        },
    );
    broker.apply_image(image);
    broker
}
