//! A group coordinator failover: the broker leading a group's `__consumer_offsets`
//! partition is killed with `kill -9`. Its successor resumes the group from the metadata
//! stored there, so the members keep their generation and partitions (no rebalance), and
//! their commits succeed.

mod common;

use std::time::Duration;

use common::cluster::Cluster;
use common::groups::{assigned, group_consumer, poll_all, CountingRebalances};
use rdkafka::consumer::{CommitMode, Consumer};
use tributary_broker::group::offsets::{partition_for, OFFSETS_TOPIC};

const TOPIC: &str = "group-failover";
const GROUP: &str = "failover-group";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_failover_keeps_the_group_stable() {
    let mut cluster = Cluster::start().await;
    let bootstrap = cluster.bootstrap();
    common::traffic::create_topic(&bootstrap, TOPIC, 4, 3).await;
    let producer = common::traffic::acks_all_producer(&bootstrap);
    for i in 0..200u32 {
        let key = i.to_be_bytes();
        let record = rdkafka::producer::FutureRecord::to(TOPIC)
            .key(&key[..])
            .payload("value");
        producer
            .send(record, Duration::from_secs(10))
            .await
            .expect("acknowledged");
    }

    let (a_counts, b_counts) = (CountingRebalances::default(), CountingRebalances::default());
    let a = group_consumer(&bootstrap, GROUP, None, TOPIC, &a_counts);
    let b = group_consumer(&bootstrap, GROUP, None, TOPIC, &b_counts);
    let split = || assigned(&a).len() == 2 && assigned(&b).len() == 2;
    let settled = tokio::task::block_in_place(|| {
        poll_all(&[&a, &b], Duration::from_secs(60), split)
            // Let the settled generation be stored.
            && !poll_all(&[&a, &b], Duration::from_secs(2), || false)
    });
    assert!(settled, "a={:?} b={:?}", assigned(&a), assigned(&b));
    let before = (
        a_counts.count(),
        b_counts.count(),
        assigned(&a),
        assigned(&b),
    );

    let image = cluster.controller().controller.image();
    let offsets = &image.topics[OFFSETS_TOPIC].partitions;
    let coordinator = offsets[partition_for(GROUP, offsets.len() as i32) as usize].leader;
    cluster.kill9(coordinator);

    // The members find the new coordinator, heartbeat and commit at their generation.
    let committed = tokio::task::block_in_place(|| {
        poll_all(&[&a, &b], Duration::from_secs(8), || false);
        let mut results = Vec::new();
        for consumer in [&a, &b] {
            let mut result = consumer.commit_consumer_state(CommitMode::Sync);
            for _ in 0..20 {
                if result.is_ok() {
                    break;
                }
                poll_all(&[&a, &b], Duration::from_millis(500), || false);
                result = consumer.commit_consumer_state(CommitMode::Sync);
            }
            results.push(result);
        }
        results
    });
    let after = (
        a_counts.count(),
        b_counts.count(),
        assigned(&a),
        assigned(&b),
    );
    assert_eq!(after, before, "no rebalance after the coordinator moved");
    for result in committed {
        // Nothing consumed: librdkafka reports that there was nothing to commit.
        assert!(
            matches!(
                result,
                Ok(())
                    | Err(rdkafka::error::KafkaError::ConsumerCommit(
                        rdkafka::types::RDKafkaErrorCode::NoOffset
                    ))
            ),
            "{result:?}"
        );
    }
}
