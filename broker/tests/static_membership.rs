//! Static group membership (KIP-345) with librdkafka: a consumer restarted under the same
//! `group.instance.id` within its session timeout gets its partitions back, and the rest
//! of the group does not rebalance.

mod common;

use std::time::Duration;

use common::groups::{assigned, group_consumer, poll_all, CountingRebalances};

const TOPIC: &str = "static-members";

fn static_consumer(
    bootstrap: &str,
    instance: &str,
    rebalances: &CountingRebalances,
) -> rdkafka::consumer::BaseConsumer<CountingRebalances> {
    group_consumer(bootstrap, "static", Some(instance), TOPIC, rebalances)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_static_member_rejoins_without_a_rebalance() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let broker = common::start_in_process(dir.path(), port).await;
    let bootstrap = format!("127.0.0.1:{port}");
    common::traffic::create_topic(&bootstrap, TOPIC, 4, 1).await;

    tokio::task::spawn_blocking(move || {
        let (counts_a, counts_b) = (CountingRebalances::default(), CountingRebalances::default());
        // a joins first and so leads the group (Kafka's rule: the first member to join).
        let a = static_consumer(&bootstrap, "a", &counts_a);
        assert!(
            poll_all(&[&a], Duration::from_secs(60), || assigned(&a).len() == 4),
            "a took every partition"
        );
        let b = static_consumer(&bootstrap, "b", &counts_b);
        let split = || assigned(&a).len() == 2 && assigned(&b).len() == 2;
        assert!(
            poll_all(&[&a, &b], Duration::from_secs(60), split),
            "the group settled: a={:?} b={:?}",
            assigned(&a),
            assigned(&b)
        );
        // Settle: no rebalance is still under way.
        poll_all(&[&a, &b], Duration::from_secs(2), || false);
        let (a_before, b_partitions) = (counts_a.count(), assigned(&b));

        // b goes away without leaving (static members do not send LeaveGroup) and comes
        // back under the same instance id. (b, not a: a leads, and librdkafka's JoinGroup
        // predates KIP-814, so a restarted leader would rightly cause a rebalance.)
        drop(b);
        let counts_b2 = CountingRebalances::default();
        let b2 = static_consumer(&bootstrap, "b", &counts_b2);
        assert!(
            poll_all(&[&a, &b2], Duration::from_secs(30), || assigned(&b2).len()
                == 2),
            "the restarted member got partitions"
        );
        poll_all(&[&a, &b2], Duration::from_secs(3), || false);
        assert_eq!(assigned(&b2), b_partitions, "the same partitions");
        assert_eq!(
            counts_a.count(),
            a_before,
            "the other member did not rebalance"
        );
        assert_eq!(assigned(&a).len(), 2);
    })
    .await
    .unwrap();
    broker.shutdown().await.unwrap();
}
