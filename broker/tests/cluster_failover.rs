//! A three-zone cluster (controller in this process, three broker processes): acks=all
//! traffic survives `kill -9` of partition leaders and a SIGSTOPped broker with nothing
//! acknowledged lost, and the time from killing a leader to the next acknowledged write is
//! measured and printed.

mod common;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::traffic::{self, Writer};
use rdkafka::producer::FutureRecord;

const TOPIC: &str = "failover";
const ROUNDS: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover_loses_nothing_acknowledged() {
    let mut cluster = Cluster::start_with_topic(TOPIC).await;
    let bootstrap = cluster.bootstrap();
    let writer = Writer::start(traffic::acks_all_producer(&bootstrap), TOPIC);

    // A second producer probes: right after each kill it sends one record and times its
    // acknowledgement (the client retries until a new leader takes it).
    let probe = traffic::acks_all_producer(&bootstrap);
    probe
        .send(
            FutureRecord::<(), _>::to(TOPIC)
                .payload("probe-warmup")
                .partition(0),
            Duration::from_secs(30),
        )
        .await
        .expect("warm-up probe");
    let mut failover = Vec::new();
    for round in 0..ROUNDS {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let (leader, _) = cluster.partition(TOPIC);
        let killed_at = Instant::now();
        cluster.kill9(leader);
        probe
            .send(
                FutureRecord::<(), _>::to(TOPIC)
                    .payload(&format!("probe-{round}"))
                    .partition(0),
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|e| {
                panic!("no acknowledged write within 30s of killing leader {leader}: {e:?}")
            });
        let took = killed_at.elapsed();
        println!("round {round}: killed leader {leader}; a new acks=all write was acknowledged after {} ms", took.as_millis());
        failover.push(took);
        cluster.restart(leader);
        cluster
            .wait_until(
                |c| c.live() == 3 && c.partition(TOPIC).1.len() == 3,
                "the restarted broker back in the ISR",
            )
            .await;
    }

    // A paused (SIGSTOP) follower is fenced and leaves the ISR; writes continue; after
    // SIGCONT it rejoins.
    let (leader, isr) = cluster.partition(TOPIC);
    let follower = *isr.iter().find(|b| **b != leader).unwrap();
    cluster.signal(follower, "-STOP");
    cluster
        .wait_until(
            |c| !c.partition(TOPIC).1.contains(&follower),
            "the stopped follower out of the ISR",
        )
        .await;
    let before = writer.acked();
    cluster
        .wait_until(
            |_| writer.acked() > before + 50,
            "writes with the follower stopped",
        )
        .await;
    cluster.signal(follower, "-CONT");
    cluster
        .wait_until(
            |c| c.partition(TOPIC).1.len() == 3,
            "the resumed follower back in the ISR",
        )
        .await;

    let acked = writer.stop().await;
    assert!(acked.len() > 500, "enough traffic: {}", acked.len());
    let read = traffic::read_until(
        &bootstrap,
        TOPIC,
        "failover-check",
        *acked.iter().max().unwrap(),
    );
    traffic::assert_nothing_lost(&acked, &read);
    assert!(
        read.windows(2).all(|w| w[0] < w[1]),
        "in order, no duplicates (idempotent producer)"
    );

    failover.sort();
    let median = failover[failover.len() / 2];
    println!(
        "failover (leader kill -9 -> next acks=all ack): median {} ms over {ROUNDS} rounds: {:?}",
        median.as_millis(),
        failover.iter().map(|d| d.as_millis()).collect::<Vec<_>>()
    );
    // A loose bound: the figures are reported, not asserted tightly.
    assert!(median < Duration::from_secs(10), "failover took {median:?}");
}
