//! Restarting the controller mid-traffic: brokers keep serving with their last metadata,
//! reconnect and resync from the new controller epoch; nothing acknowledged is lost, admin
//! requests and leader failover work again afterwards.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

const TOPIC: &str = "controller-restart";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_restart_loses_nothing() {
    let mut cluster = Cluster::start().await;
    let bootstrap = cluster.bootstrap();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    admin
        .create_topics(
            &[NewTopic::new(TOPIC, 1, TopicReplication::Fixed(3))],
            &AdminOptions::new(),
        )
        .await
        .unwrap()[0]
        .as_ref()
        .unwrap();
    cluster
        .wait_until(|c| c.partition(TOPIC).1.len() == 3, "ISR of 3")
        .await;

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "1")
        .set("message.timeout.ms", "60000")
        .create()
        .unwrap();
    let acked: Arc<Mutex<Vec<u64>>> = Arc::default();
    let running = Arc::new(AtomicBool::new(true));
    let writer = {
        let (producer, acked, running) = (producer.clone(), acked.clone(), running.clone());
        tokio::spawn(async move {
            let mut next = 0u64;
            while running.load(Ordering::Relaxed) {
                let value = next.to_string();
                next += 1;
                if let Ok(delivery) = producer
                    .send(
                        FutureRecord::<(), _>::to(TOPIC).payload(&value),
                        Duration::from_secs(60),
                    )
                    .await
                {
                    let _ = delivery;
                    acked.lock().unwrap().push(value.parse().unwrap());
                }
            }
        })
    };
    let count = || acked.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(1000)).await;

    let epoch_before = cluster.controller().controller.epoch;
    let version_before = cluster.controller().controller.image().version;
    cluster.restart_controller().await;
    assert_eq!(
        cluster.controller().controller.epoch,
        epoch_before + 1,
        "a new controller epoch"
    );
    assert!(
        cluster.controller().controller.image().version >= version_before,
        "metadata survived the restart"
    );

    // Traffic continues, brokers heartbeat the new controller and stay unfenced.
    let before = count();
    cluster
        .wait_until(
            |_| count() > before + 100,
            "writes after the controller restart",
        )
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(cluster.live(), 3, "no broker was fenced by the restart");

    // The new controller serves admin requests and elects leaders.
    admin
        .create_topics(
            &[NewTopic::new(
                "after-restart",
                2,
                TopicReplication::Fixed(3),
            )],
            &AdminOptions::new(),
        )
        .await
        .unwrap()[0]
        .as_ref()
        .unwrap();
    let (leader, _) = cluster.partition(TOPIC);
    cluster.kill9(leader);
    cluster
        .wait_until(|c| c.partition(TOPIC).0 != leader, "a new leader")
        .await;
    let before = count();
    cluster
        .wait_until(|_| count() > before + 50, "writes after failover")
        .await;
    cluster.restart(leader);

    running.store(false, Ordering::Relaxed);
    writer.await.unwrap();
    let acked: Vec<u64> = acked.lock().unwrap().clone();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "controller-restart-check")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[TOPIC]).unwrap();
    let max = *acked.iter().max().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !seen.contains(&max) {
        assert!(
            Instant::now() < deadline,
            "consumed {} of {} acknowledged records",
            seen.len(),
            acked.len()
        );
        if let Some(msg) = consumer.poll(Duration::from_millis(200)) {
            // Transport errors while a restarted broker comes back are informational.
            let Ok(msg) = msg else { continue };
            seen.insert(
                std::str::from_utf8(msg.payload().unwrap())
                    .unwrap()
                    .parse::<u64>()
                    .unwrap(),
            );
        }
    }
    let lost: Vec<&u64> = acked
        .iter()
        .filter(|v| !seen.contains(v))
        .take(10)
        .collect();
    assert!(lost.is_empty(), "acknowledged records lost: {lost:?}");
}
