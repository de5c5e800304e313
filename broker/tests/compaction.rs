//! Log compaction end to end, with librdkafka: a compacted topic on three brokers keeps the
//! latest value of each key and drops deleted keys, refuses keyless records with
//! INVALID_RECORD, and a replica that lost its disk copies the compacted log (offsets with
//! gaps) from the leader and serves the same records when it leads.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const TOPIC: &str = "changelog";
const KEYS: usize = 20;
const ROUNDS: usize = 30;
/// Keys 0..DELETED get a tombstone after their last value.
const DELETED: usize = 5;

async fn create_compacted_topic(bootstrap: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let topic = NewTopic::new(TOPIC, 1, TopicReplication::Fixed(3))
        .set("cleanup.policy", "compact")
        .set("segment.bytes", "2048")
        .set("segment.ms", "300")
        .set("min.cleanable.dirty.ratio", "0.01")
        .set("delete.retention.ms", "0");
    let results = admin
        .create_topics(&[topic], &AdminOptions::new())
        .await
        .unwrap();
    results[0].as_ref().expect("compacted topic created");
}

async fn send(
    producer: &FutureProducer,
    key: Option<&str>,
    value: Option<&str>,
) -> Result<(), KafkaError> {
    let mut record = FutureRecord::<str, str>::to(TOPIC);
    record.key = key;
    record.payload = value;
    producer
        .send(record, Duration::from_secs(10))
        .await
        .map(drop)
        .map_err(|(e, _)| e)
}

/// Every record of the partition from its start, read from `bootstrap`: `key -> values`.
fn read_all(bootstrap: &str) -> BTreeMap<String, Vec<Option<String>>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "compaction-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(TOPIC, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let mut records: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                let key = message.key().map(text).unwrap_or_default();
                records
                    .entry(key)
                    .or_default()
                    .push(message.payload().map(text));
            }
            Some(Err(KafkaError::PartitionEOF(_))) => return records,
            _ => {}
        }
    }
    panic!("the partition's end was not reached within 20 s");
}

/// What a fully compacted partition holds: the latest value of each live key, once.
fn compacted() -> BTreeMap<String, Vec<Option<String>>> {
    let mut expected: BTreeMap<String, Vec<Option<String>>> = (DELETED..KEYS)
        .map(|k| (format!("k{k}"), vec![Some(format!("v{}", ROUNDS - 1))]))
        .collect();
    expected.insert("end".into(), vec![Some("end".into())]);
    expected
}

/// Polls until `bootstrap` serves the compacted contents (the cleaner runs on its own
/// schedule); returns the last contents read either way.
async fn wait_compacted(bootstrap: &str) -> BTreeMap<String, Vec<Option<String>>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let records = read_all(bootstrap);
        if records == compacted() || Instant::now() > deadline {
            return records;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compacted_topics_keep_the_latest_value_of_each_key_on_every_replica() {
    let mut cluster = Cluster::start().await;
    let bootstrap = cluster.bootstrap();
    create_compacted_topic(&bootstrap).await;
    cluster
        .wait_until(|c| c.partition(TOPIC).1.len() == 3, "ISR of 3")
        .await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "1")
        .create()
        .unwrap();

    for round in 0..ROUNDS {
        for key in 0..KEYS {
            let value = format!("v{round}");
            send(&producer, Some(&format!("k{key}")), Some(&value))
                .await
                .expect("keyed record acknowledged");
        }
    }
    for key in 0..DELETED {
        send(&producer, Some(&format!("k{key}")), None)
            .await
            .expect("tombstone acknowledged");
    }

    // A record without a key can never be cleaned: refused, as Kafka refuses it.
    let keyless = send(&producer, None, Some("no key")).await;
    assert!(
        matches!(
            keyless,
            Err(KafkaError::MessageProduction(
                RDKafkaErrorCode::InvalidRecord
            ))
        ),
        "{keyless:?}"
    );

    // Past segment.ms the next write rolls the segment, leaving every value above in
    // segments the cleaner may clean.
    tokio::time::sleep(Duration::from_millis(400)).await;
    send(&producer, Some("end"), Some("end")).await.unwrap();

    let records = wait_compacted(&bootstrap).await;
    assert_eq!(records, compacted(), "the leader's compacted log");

    // A replica that lost its disk copies the compacted log, gaps and all, from the leader.
    let (leader, _) = cluster.partition(TOPIC);
    let wiped = *cluster.brokers.keys().find(|&&id| id != leader).unwrap();
    cluster.kill9(wiped);
    cluster
        .wait_until(
            |c| !c.partition(TOPIC).1.contains(&wiped),
            "the killed replica out of the ISR",
        )
        .await;
    std::fs::remove_dir_all(cluster.root.path().join(format!("broker-{wiped}"))).unwrap();
    cluster.restart(wiped);
    cluster
        .wait_until(
            |c| c.live() == 3 && c.partition(TOPIC).1.contains(&wiped),
            "the wiped replica back in the ISR",
        )
        .await;

    // With the other two gone, it leads and serves the same records.
    let others: Vec<i32> = cluster
        .brokers
        .keys()
        .copied()
        .filter(|&id| id != wiped)
        .collect();
    for id in others {
        cluster.kill9(id);
    }
    cluster
        .wait_until(
            |c| c.partition(TOPIC).0 == wiped,
            "the wiped replica leading",
        )
        .await;
    let port = cluster.brokers[&wiped].1;
    let records = wait_compacted(&format!("127.0.0.1:{port}")).await;
    assert_eq!(records, compacted(), "the copied replica's log");
}

/// Every record of `__consumer_offsets` from its start, over all its partitions.
fn offsets_topic_records(bootstrap: &str) -> usize {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "offsets-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..OFFSETS_PARTITIONS {
        assignment
            .add_partition_offset("__consumer_offsets", partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let (mut records, mut ended) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while ended < OFFSETS_PARTITIONS && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(_)) => records += 1,
            Some(Err(KafkaError::PartitionEOF(_))) => ended += 1,
            _ => {}
        }
    }
    assert_eq!(ended, OFFSETS_PARTITIONS, "every partition read to its end");
    records
}

const OFFSETS_PARTITIONS: i32 = 2;
const COMMITS: i64 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consumer_offsets_are_compacted_and_commits_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mut launch = common::test_launch(dir.path(), port);
    for (key, value) in [
        ("offsets.topic.num.partitions", "2"),
        ("offsets.topic.replication.factor", "1"),
        ("offsets.topic.segment.bytes", "4096"),
        ("log.cleaner.backoff.ms", "100"),
    ] {
        launch.overrides.insert(key.into(), value.into());
    }
    let config = tributary_broker::BrokerConfig::from_launch(&launch).unwrap();
    let broker = tributary_broker::start(config.clone()).await.unwrap();
    let bootstrap = format!("127.0.0.1:{port}");
    common::traffic::create_topic(&bootstrap, "orders", 1, 1).await;

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "committer")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    for offset in 1..=COMMITS {
        let mut commit = TopicPartitionList::new();
        commit
            .add_partition_offset("orders", 0, Offset::Offset(offset))
            .unwrap();
        consumer
            .commit(&commit, rdkafka::consumer::CommitMode::Sync)
            .unwrap();
    }
    // The commits fill several 4 KiB segments; the cleaner leaves few records.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut left = offsets_topic_records(&bootstrap);
    while left > COMMITS as usize / 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
        left = offsets_topic_records(&bootstrap);
    }
    assert!(
        left <= COMMITS as usize / 4,
        "{left} of {COMMITS} commit records left"
    );
    drop(consumer);

    // The coordinator replays the compacted log after a restart: the last commit stands.
    broker.shutdown().await.unwrap();
    let _broker = tributary_broker::start(config).await.unwrap();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "committer")
        .create()
        .unwrap();
    let mut wanted = TopicPartitionList::new();
    wanted.add_partition("orders", 0);
    let committed = consumer
        .committed_offsets(wanted, Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        committed.find_partition("orders", 0).unwrap().offset(),
        Offset::Offset(COMMITS)
    );
}
