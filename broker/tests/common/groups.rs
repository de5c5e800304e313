//! Consumer-group helpers shared by the group tests: librdkafka consumers that count
//! the rebalances they take part in.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::ClientContext;

/// Counts the assignments a consumer received: each is one rebalance it took part in.
#[derive(Clone, Default)]
pub struct CountingRebalances(pub Arc<AtomicUsize>);

impl CountingRebalances {
    /// Assignments received so far.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl ClientContext for CountingRebalances {}

impl ConsumerContext for CountingRebalances {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if matches!(rebalance, Rebalance::Assign(_)) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A consumer of `topic` in `group` (static when `instance` is given), with a 10 s
/// session, 500 ms heartbeats, reading from the earliest offset.
pub fn group_consumer(
    bootstrap: &str,
    group: &str,
    instance: Option<&str>,
    topic: &str,
    rebalances: &CountingRebalances,
) -> BaseConsumer<CountingRebalances> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "500")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    if let Some(instance) = instance {
        config.set("group.instance.id", instance);
    }
    let consumer: BaseConsumer<CountingRebalances> = config
        .create_with_context(rebalances.clone())
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    consumer
}

/// The partitions assigned to `consumer`.
pub fn assigned(consumer: &BaseConsumer<CountingRebalances>) -> BTreeSet<i32> {
    consumer
        .assignment()
        .map(|list| list.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}

/// Polls every consumer for `duration`, or until `done` holds.
pub fn poll_all(
    consumers: &[&BaseConsumer<CountingRebalances>],
    duration: Duration,
    done: impl Fn() -> bool,
) -> bool {
    let deadline = Instant::now() + duration;
    while Instant::now() < deadline {
        for consumer in consumers {
            let _ = consumer.poll(Duration::from_millis(20));
        }
        if done() {
            return true;
        }
    }
    done()
}
