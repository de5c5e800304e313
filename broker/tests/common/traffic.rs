//! Client traffic for cluster tests: an acks=all writer of sequence numbers and a reader
//! that checks nothing acknowledged was lost.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// Creates a topic through the admin API.
pub async fn create_topic(bootstrap: &str, name: &str, partitions: i32, rf: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let results = admin
        .create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(rf))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    results[0]
        .as_ref()
        .unwrap_or_else(|e| panic!("creating {name}: {e:?}"));
}

/// An idempotent acks=all producer that retries quickly.
pub fn acks_all_producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "1")
        .set("message.timeout.ms", "60000")
        .set("retry.backoff.ms", "20")
        .set("reconnect.backoff.ms", "20")
        .set("reconnect.backoff.max.ms", "200")
        .create()
        .unwrap()
}

/// Writes increasing numbers to partition 0 of a topic, remembering which were acknowledged.
pub struct Writer {
    acked: Arc<Mutex<Vec<u64>>>,
    running: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    /// Starts writing, 20 records in flight at a time.
    pub fn start(producer: FutureProducer, topic: &'static str) -> Writer {
        let acked: Arc<Mutex<Vec<u64>>> = Arc::default();
        let running = Arc::new(AtomicBool::new(true));
        let task = {
            let (acked, running) = (acked.clone(), running.clone());
            tokio::spawn(async move {
                let mut next = 0u64;
                while running.load(Ordering::Relaxed) {
                    let mut inflight = Vec::new();
                    for _ in 0..20 {
                        let value = next;
                        next += 1;
                        let payload = value.to_string();
                        let delivery = producer
                            .send_result(
                                FutureRecord::<(), _>::to(topic)
                                    .payload(&payload)
                                    .partition(0),
                            )
                            .ok();
                        inflight.push((value, delivery));
                    }
                    for (value, delivery) in inflight {
                        let Some(delivery) = delivery else { continue };
                        if let Ok(Ok(_)) = delivery.await {
                            acked.lock().unwrap().push(value);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        };
        Writer {
            acked,
            running,
            task,
        }
    }

    /// Number of acknowledged records so far.
    pub fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Stops writing; returns every acknowledged value.
    pub async fn stop(self) -> Vec<u64> {
        self.running.store(false, Ordering::Relaxed);
        self.task.await.unwrap();
        let acked = self.acked.lock().unwrap().clone();
        acked
    }
}

/// Reads `topic` from the beginning until `max` arrives; returns the numeric values in the
/// order read (other payloads, such as probes, are skipped).
pub fn read_until(bootstrap: &str, topic: &str, group: &str, max: u64) -> Vec<u64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !seen.contains(&max) {
        assert!(
            Instant::now() < deadline,
            "read {} records, none is {max}",
            seen.len()
        );
        // Transport errors while a restarted broker comes back are informational.
        if let Some(Ok(msg)) = consumer.poll(Duration::from_millis(200)) {
            let text = std::str::from_utf8(msg.payload().unwrap_or_default()).unwrap_or_default();
            if let Ok(value) = text.parse::<u64>() {
                seen.push(value);
            }
        }
    }
    seen
}

/// Asserts every acknowledged value was read.
pub fn assert_nothing_lost(acked: &[u64], read: &[u64]) {
    let read: BTreeSet<u64> = read.iter().copied().collect();
    let lost: Vec<u64> = acked
        .iter()
        .copied()
        .filter(|v| !read.contains(v))
        .take(10)
        .collect();
    assert!(lost.is_empty(), "acknowledged records lost: {lost:?}");
}
