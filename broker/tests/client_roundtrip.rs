//! End-to-end with an independent client (librdkafka, built from source): produce 100k
//! records with acks=all, consume them in a group and commit, restart the broker, and
//! resume from the committed offset.

mod common;

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::TopicPartitionList;

const TOPIC: &str = "roundtrip";
const PARTITIONS: i32 = 3;
const RECORDS: usize = 100_000;

fn producer(bootstrap: &str, compression: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("compression.type", compression)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer")
}

fn group_consumer(bootstrap: &str, group: &str) -> StreamConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .expect("consumer")
}

async fn create_topic(bootstrap: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin");
    let results = admin
        .create_topics(
            &[NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("create topics");
    for r in results {
        r.expect("topic created");
    }
}

/// Consumes until `count` records arrived; returns `(partition, offset, value)` in order seen.
async fn consume(consumer: &StreamConsumer, count: usize) -> Vec<(i32, i64, String)> {
    let mut seen = Vec::with_capacity(count);
    while seen.len() < count {
        let msg = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("records keep arriving")
            .expect("consume ok");
        let value = String::from_utf8(msg.payload().expect("payload").to_vec()).expect("utf8");
        seen.push((msg.partition(), msg.offset(), value));
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_consume_commit_restart_resume() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let bootstrap = format!("127.0.0.1:{port}");
    let broker = common::start_in_process(dir.path(), port).await;
    create_topic(&bootstrap).await;

    // 100k records over three partitions, each codec librdkafka offers.
    let codecs = ["none", "gzip", "snappy", "lz4", "zstd"];
    let mut deliveries = Vec::with_capacity(RECORDS);
    let producers: Vec<FutureProducer> = codecs.iter().map(|c| producer(&bootstrap, c)).collect();
    for i in 0..RECORDS {
        let p = &producers[i % codecs.len()];
        let value = format!("value-{i:06}");
        let key = format!("key-{i}");
        let record = FutureRecord::to(TOPIC)
            .key(&key)
            .payload(&value)
            .partition((i % PARTITIONS as usize) as i32)
            .headers(OwnedHeaders::new().insert(Header {
                key: "n",
                value: Some(&i.to_string()),
            }));
        deliveries.push(p.send_result(record).expect("queue"));
    }
    for d in deliveries {
        d.await.expect("delivered").expect("acknowledged");
    }

    let consumer = group_consumer(&bootstrap, "roundtrip-group");
    consumer.subscribe(&[TOPIC]).unwrap();
    let seen = consume(&consumer, RECORDS).await;
    let mut values: Vec<&str> = seen.iter().map(|(_, _, v)| v.as_str()).collect();
    values.sort_unstable();
    values.dedup();
    assert_eq!(values.len(), RECORDS, "every record exactly once");
    for p in 0..PARTITIONS {
        let offsets: Vec<i64> = seen.iter().filter(|s| s.0 == p).map(|s| s.1).collect();
        assert!(
            offsets.windows(2).all(|w| w[1] == w[0] + 1),
            "partition {p} in order, no gaps"
        );
        // Each producer's records keep their order within a partition.
        for producer in 0..codecs.len() {
            let ordinals: Vec<usize> = seen
                .iter()
                .filter(|s| s.0 == p)
                .map(|s| s.2[6..].parse().unwrap())
                .filter(|n: &usize| n % codecs.len() == producer)
                .collect();
            assert!(
                ordinals.windows(2).all(|w| w[0] < w[1]),
                "partition {p} keeps producer {producer}'s order"
            );
        }
    }
    consumer
        .commit_consumer_state(CommitMode::Sync)
        .expect("commit");
    drop(consumer);

    // Restart on the same port and data directory; then add more records.
    broker.shutdown().await.unwrap();
    let broker = common::start_in_process(dir.path(), port).await;
    let producer = producer(&bootstrap, "lz4");
    for i in 0..30 {
        let value = format!("after-restart-{i}");
        producer
            .send(
                FutureRecord::<(), _>::to(TOPIC)
                    .payload(&value)
                    .partition(i % PARTITIONS),
                Duration::from_secs(10),
            )
            .await
            .expect("acknowledged after restart");
    }

    let consumer = group_consumer(&bootstrap, "roundtrip-group");
    let mut committed = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        committed.add_partition(TOPIC, p);
    }
    let committed = consumer
        .committed_offsets(committed, Duration::from_secs(10))
        .expect("committed offsets");
    let total: i64 = committed
        .elements()
        .iter()
        .map(|e| e.offset().to_raw().expect("offset"))
        .sum();
    assert_eq!(total, RECORDS as i64, "commits survived the restart");

    consumer.subscribe(&[TOPIC]).unwrap();
    let resumed = consume(&consumer, 30).await;
    assert!(
        resumed
            .iter()
            .all(|(_, _, v)| v.starts_with("after-restart-")),
        "resumed from committed offsets: {resumed:?}"
    );
    let headers_ok = {
        let msg = tokio::time::timeout(Duration::from_secs(1), consumer.recv()).await;
        msg.is_err()
    };
    assert!(headers_ok, "nothing beyond the new records");
    drop(consumer);

    // Headers and keys round-trip byte for byte.
    let check = consumer_for_assign(&bootstrap);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, rdkafka::Offset::Beginning)
        .unwrap();
    check.assign(&tpl).unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), check.recv())
        .await
        .unwrap()
        .unwrap();
    // Which producer won the race to partition 0 varies; its key and header must match.
    let key = std::str::from_utf8(first.key().expect("key"))
        .unwrap()
        .to_string();
    let n = key.strip_prefix("key-").expect("key format");
    let header = first.headers().expect("headers").get(0);
    assert_eq!((header.key, header.value), ("n", Some(n.as_bytes())));
    assert_eq!(
        first.payload(),
        Some(format!("value-{:06}", n.parse::<usize>().unwrap()).as_bytes())
    );
    broker.shutdown().await.unwrap();
}

fn consumer_for_assign(bootstrap: &str) -> StreamConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "assign-check")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer")
}
