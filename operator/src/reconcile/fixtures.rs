//! Metadata images for the reconcile tests: brokers 1000, 2000 and 3000 (one per zone) and
//! a topic `t` replicated on all three.

use tributary_metadata::{BrokerInfo, MetadataImage, PartitionMeta, TopicMeta};

/// An image where `live` are registered and unfenced, and topic `t` has one partition per
/// `(leader, isr)` pair, each replicated on all three brokers.
pub fn image(live: &[i32], partitions: &[(i32, &[i32])]) -> MetadataImage {
    let mut image = MetadataImage {
        cluster_id: "abc".into(),
        ..Default::default()
    };
    for &id in live {
        let broker = BrokerInfo {
            id,
            rack: None,
            host: "h".into(),
            port: 9092,
            epoch: 1,
            incarnation: Default::default(),
            fenced: false,
        };
        image.brokers.insert(id, broker);
    }
    let partitions = partitions
        .iter()
        .map(|&(leader, isr)| PartitionMeta {
            replicas: vec![1000, 2000, 3000],
            isr: isr.to_vec(),
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
        })
        .collect();
    let topic = TopicMeta {
        name: "t".into(),
        id: Default::default(),
        partitions,
        configs: Default::default(),
    };
    image.topics.insert("t".into(), topic);
    image
}
