//! Restarting the controller mid-traffic: brokers keep serving with their last metadata,
//! reconnect and resync from the new controller epoch; nothing acknowledged is lost, admin
//! requests and leader failover work again afterwards.

mod common;

use std::time::Duration;

use common::cluster::Cluster;
use common::traffic::{self, Writer};

const TOPIC: &str = "controller-restart";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_restart_loses_nothing() {
    let mut cluster = Cluster::start_with_topic(TOPIC).await;
    let bootstrap = cluster.bootstrap();
    let writer = Writer::start(traffic::acks_all_producer(&bootstrap), TOPIC);
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
    let before = writer.acked();
    cluster
        .wait_until(
            |_| writer.acked() > before + 100,
            "writes after the controller restart",
        )
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(cluster.live(), 3, "no broker was fenced by the restart");

    // The new controller serves admin requests and elects leaders.
    traffic::create_topic(&bootstrap, "after-restart", 2, 3).await;
    let (leader, _) = cluster.partition(TOPIC);
    cluster.kill9(leader);
    cluster
        .wait_until(|c| c.partition(TOPIC).0 != leader, "a new leader")
        .await;
    let before = writer.acked();
    cluster
        .wait_until(|_| writer.acked() > before + 50, "writes after failover")
        .await;
    cluster.restart(leader);

    let acked = writer.stop().await;
    let read = traffic::read_until(
        &bootstrap,
        TOPIC,
        "controller-restart-check",
        *acked.iter().max().unwrap(),
    );
    traffic::assert_nothing_lost(&acked, &read);
}
