//! Transactions end to end with librdkafka's transactional producer: committed records
//! reach read_committed consumers and aborted ones never do, a new producer with the same
//! transactional id fences the old one, and offsets sent to a transaction count only
//! when it commits.

mod common;

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

const TOPIC: &str = "payments";
const TIMEOUT: Duration = Duration::from_secs(30);

fn transactional_producer(bootstrap: &str, id: &str) -> ThreadedProducer<DefaultProducerContext> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", id)
        .set("linger.ms", "1")
        .create()
        .expect("transactional producer");
    producer
        .init_transactions(TIMEOUT)
        .expect("init_transactions");
    producer
}

fn send(producer: &ThreadedProducer<DefaultProducerContext>, partition: i32, value: &str) {
    producer
        .send(
            BaseRecord::<str, str>::to(TOPIC)
                .partition(partition)
                .key(value)
                .payload(value),
        )
        .map_err(|(e, _)| e)
        .expect("queued");
}

/// Every value of `topic`'s first `partitions` partitions from the start, read with
/// `isolation`, sorted.
fn read_values(bootstrap: &str, topic: &str, partitions: i32, isolation: &str) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("reader-{isolation}"))
        .set("isolation.level", isolation)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let (mut values, mut ended) = (Vec::new(), std::collections::BTreeSet::new());
    let deadline = Instant::now() + Duration::from_secs(30);
    while ended.len() < partitions as usize {
        assert!(
            Instant::now() < deadline,
            "partitions not read to their end: {values:?}"
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => values
                .push(String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned()),
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                ended.insert(partition);
            }
            _ => {}
        }
    }
    values.sort();
    values
}

/// Every value of `TOPIC` from the start, read with `isolation`.
fn read_all(bootstrap: &str, isolation: &str) -> Vec<String> {
    read_values(bootstrap, TOPIC, 2, isolation)
}

fn values(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i:02}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_committed_consumers_see_committed_transactions_only() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mut launch = common::test_launch(dir.path(), port);
    for (key, value) in [
        ("offsets.topic.replication.factor", "1"),
        ("transaction.state.log.replication.factor", "1"),
    ] {
        launch.overrides.insert(key.into(), value.into());
    }
    let config = tributary_broker::BrokerConfig::from_launch(&launch).unwrap();
    let broker = tributary_broker::start(config).await.unwrap();
    let bootstrap = format!("127.0.0.1:{port}");
    common::traffic::create_topic(&bootstrap, TOPIC, 2, 1).await;

    let bootstrap_for_clients = bootstrap.clone();
    tokio::task::spawn_blocking(move || {
        let bootstrap = bootstrap_for_clients;
        let producer = transactional_producer(&bootstrap, "payments-writer");
        let mut committed = Vec::new();
        for (prefix, count, commit) in [
            ("first", 10, true),
            ("aborted", 6, false),
            ("second", 4, true),
        ] {
            producer.begin_transaction().unwrap();
            for (i, value) in values(prefix, count).into_iter().enumerate() {
                send(&producer, i as i32 % 2, &value);
                if commit {
                    committed.push(value);
                }
            }
            if commit {
                producer.commit_transaction(TIMEOUT).expect("commit");
            } else {
                producer.flush(TIMEOUT).unwrap();
                producer.abort_transaction(TIMEOUT).expect("abort");
            }
        }
        committed.sort();
        assert_eq!(read_all(&bootstrap, "read_committed"), committed);
        assert_eq!(
            read_all(&bootstrap, "read_uncommitted").len(),
            20,
            "aborted records are in the log, for read_uncommitted consumers"
        );

        // An open transaction holds read_committed consumers back; a new producer with the
        // same id aborts it and fences the old producer.
        producer.begin_transaction().unwrap();
        send(&producer, 0, "zombie-00");
        producer.flush(TIMEOUT).unwrap();
        assert_eq!(read_all(&bootstrap, "read_committed"), committed);
        let successor = transactional_producer(&bootstrap, "payments-writer");
        let fenced = producer.commit_transaction(TIMEOUT);
        assert!(
            fenced.is_err(),
            "the fenced producer cannot commit: {fenced:?}"
        );
        successor.begin_transaction().unwrap();
        send(&successor, 1, "successor-00");
        successor.commit_transaction(TIMEOUT).unwrap();
        committed.push("successor-00".into());
        committed.sort();
        assert_eq!(read_all(&bootstrap, "read_committed"), committed);

        // Offsets sent to a transaction are committed with it, and only then.
        let group = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "etl")
            .create::<BaseConsumer>()
            .unwrap();
        let group_metadata = group.group_metadata().unwrap();
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset(TOPIC, 0, Offset::Offset(5))
            .unwrap();
        let committed_offset = |consumer: &BaseConsumer| {
            let mut wanted = TopicPartitionList::new();
            wanted.add_partition(TOPIC, 0);
            consumer
                .committed_offsets(wanted, TIMEOUT)
                .unwrap()
                .find_partition(TOPIC, 0)
                .unwrap()
                .offset()
        };
        successor.begin_transaction().unwrap();
        successor
            .send_offsets_to_transaction(&offsets, &group_metadata, TIMEOUT)
            .unwrap();
        successor.abort_transaction(TIMEOUT).unwrap();
        assert_eq!(
            committed_offset(&group),
            Offset::Invalid,
            "aborted offsets do not count"
        );
        successor.begin_transaction().unwrap();
        successor
            .send_offsets_to_transaction(&offsets, &group_metadata, TIMEOUT)
            .unwrap();
        successor.commit_transaction(TIMEOUT).unwrap();
        assert_eq!(committed_offset(&group), Offset::Offset(5));
    })
    .await
    .unwrap();
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transaction_survives_a_kill_9_of_its_coordinator_whole_or_not_at_all() {
    const LEDGER: &str = "ledger";
    const ID: &str = "ledger-writer";
    let mut cluster = common::cluster::Cluster::start().await;
    let bootstrap = cluster.bootstrap();
    common::traffic::create_topic(&bootstrap, LEDGER, 3, 3).await;
    cluster
        .wait_until(|c| c.partition(LEDGER).1.len() == 3, "ISR of 3")
        .await;
    let producer = {
        let bootstrap = bootstrap.clone();
        tokio::task::spawn_blocking(move || transactional_producer(&bootstrap, ID))
            .await
            .unwrap()
    };
    let send_all = |producer: &ThreadedProducer<DefaultProducerContext>, prefix: &str| {
        let sent = values(prefix, 12);
        for (i, value) in sent.iter().enumerate() {
            producer
                .send(
                    BaseRecord::<str, str>::to(LEDGER)
                        .partition(i as i32 % 3)
                        .key(value)
                        .payload(value),
                )
                .map_err(|(e, _)| e)
                .expect("queued");
        }
        sent
    };
    producer.begin_transaction().unwrap();
    let mut expected = send_all(&producer, "before");
    producer.commit_transaction(TIMEOUT).unwrap();

    // Mid-transaction, its coordinator dies.
    producer.begin_transaction().unwrap();
    let during = send_all(&producer, "during");
    producer.flush(TIMEOUT).unwrap();
    let partition = tributary_broker::group::offsets::partition_for(ID, 5);
    let coordinator = cluster.controller().controller.image().topics["__transaction_state"]
        .partitions[partition as usize]
        .leader;
    cluster.kill9(coordinator);
    let ended = tokio::task::spawn_blocking(move || {
        let result = producer.commit_transaction(TIMEOUT);
        if result.is_err() {
            producer
                .abort_transaction(TIMEOUT)
                .expect("abort after a failed commit");
        }
        (producer, result.is_ok())
    })
    .await
    .unwrap();
    let (producer, committed) = ended;
    if committed {
        expected.extend(during);
    }

    // The producer carries on with the new coordinator.
    producer.begin_transaction().unwrap();
    expected.extend(send_all(&producer, "after"));
    producer.commit_transaction(TIMEOUT).unwrap();
    expected.sort();
    let bootstrap = cluster.bootstrap();
    let read =
        tokio::task::spawn_blocking(move || read_values(&bootstrap, LEDGER, 3, "read_committed"))
            .await
            .unwrap();
    assert_eq!(read, expected, "committed: {committed}");
}
