//! The readiness check broker pods run: ready only while serving and live.

mod common;

use tributary_broker::probe::check_ready;

#[tokio::test]
async fn a_broker_is_ready_only_while_it_serves_and_is_live() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let config = common::test_config(dir.path(), port);
    assert!(check_ready(&config).await.is_err(), "nothing listens yet");
    let running = common::start_in_process(dir.path(), port).await;
    check_ready(&config).await.expect("serving and registered");
    let mut someone_else = config.clone();
    someone_else.broker_id = 7;
    let refused = check_ready(&someone_else).await.unwrap_err();
    assert!(refused.to_string().contains("not live"), "{refused}");
    running.shutdown().await.unwrap();
    assert!(check_ready(&config).await.is_err(), "stopped");
}
