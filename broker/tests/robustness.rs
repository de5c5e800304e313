//! Bad input and crashes: garbage, truncated and oversized frames and unknown API keys
//! leave the broker serving others; `kill -9` mid-stream loses no acknowledged record.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
    RequestHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn request<R: Encodable>(key: ApiKey, version: i16, correlation: i32, body: &R) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_static_str("robustness")));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    let mut framed = Vec::with_capacity(buf.len() + 4);
    framed.put_i32(buf.len() as i32);
    framed.extend_from_slice(&buf);
    framed
}

/// Reads one response frame: `(correlation id, body after a v0 header)`.
fn read_response(stream: &mut TcpStream) -> std::io::Result<(i32, BytesMut)> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size)?;
    let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut frame)?;
    let mut frame = BytesMut::from(&frame[..]);
    let correlation = frame.get_i32();
    Ok((correlation, frame))
}

/// The server closes the connection: a read returns EOF (or reset).
fn assert_closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 1];
    match stream.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the broker to close the connection, got {other:?}"),
    }
}

fn api_versions_ok(port: u16) {
    let mut s = connect(port);
    s.write_all(&request(
        ApiKey::ApiVersions,
        3,
        7,
        &ApiVersionsRequest::default(),
    ))
    .unwrap();
    let (corr, mut body) = read_response(&mut s).unwrap();
    assert_eq!(corr, 7);
    let resp = ApiVersionsResponse::decode(&mut body, 3).unwrap();
    assert_eq!(resp.error_code, 0);
    assert!(resp.api_keys.len() > 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let broker = common::start_in_process(dir.path(), port).await;
    tokio::task::spawn_blocking(move || {
        // A healthy connection that stays open throughout.
        let mut keeper = connect(port);

        // Garbage: a plausible size followed by random bytes.
        let mut s = connect(port);
        let mut garbage = vec![0u8, 0, 0, 64];
        garbage.extend((0..64u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8));
        s.write_all(&garbage).unwrap();
        assert_closed(&mut s);

        // Oversized: a 200 MiB frame header is refused without reading the body.
        let mut s = connect(port);
        s.write_all(&(200 * 1024 * 1024i32).to_be_bytes()).unwrap();
        assert_closed(&mut s);

        // Negative size.
        let mut s = connect(port);
        s.write_all(&(-5i32).to_be_bytes()).unwrap();
        assert_closed(&mut s);

        // Truncated: the client dies mid-frame.
        let mut s = connect(port);
        let full = request(ApiKey::Metadata, 12, 1, &MetadataRequest::default());
        s.write_all(&full[..full.len() / 2]).unwrap();
        drop(s);

        // Unknown API key.
        let mut s = connect(port);
        let mut frame = request(ApiKey::ApiVersions, 3, 1, &ApiVersionsRequest::default());
        frame[4..6].copy_from_slice(&999i16.to_be_bytes());
        s.write_all(&frame).unwrap();
        assert_closed(&mut s);

        // Unsupported version of a known API.
        let mut s = connect(port);
        s.write_all(&request(ApiKey::Metadata, 12, 1, &MetadataRequest::default())[..])
            .unwrap();
        let _ = read_response(&mut s).unwrap();
        let mut frame = request(ApiKey::Metadata, 12, 2, &MetadataRequest::default());
        frame[6..8].copy_from_slice(&99i16.to_be_bytes());
        s.write_all(&frame).unwrap();
        assert_closed(&mut s);

        // Valid header, undecodable body.
        let mut s = connect(port);
        let mut frame = request(ApiKey::Metadata, 12, 3, &MetadataRequest::default());
        frame.truncate(frame.len() - 1);
        let len = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        s.write_all(&frame).unwrap();
        assert_closed(&mut s);

        // KIP-511: a too-new ApiVersions gets UNSUPPORTED_VERSION and our range, in v0 form.
        let mut s = connect(port);
        let mut frame = request(ApiKey::ApiVersions, 3, 11, &ApiVersionsRequest::default());
        frame[6..8].copy_from_slice(&77i16.to_be_bytes());
        s.write_all(&frame).unwrap();
        let (corr, mut body) = read_response(&mut s).unwrap();
        assert_eq!(corr, 11);
        let resp = ApiVersionsResponse::decode(&mut body, 0).unwrap();
        assert_eq!(resp.error_code, 35);
        assert_eq!(resp.api_keys.len(), 1);
        assert_eq!(resp.api_keys[0].api_key, ApiKey::ApiVersions as i16);

        // Pipelined requests are answered in order on one connection.
        let mut batch = Vec::new();
        for corr in 100..110 {
            batch.extend(request(
                ApiKey::Metadata,
                12,
                corr,
                &MetadataRequest::default(),
            ));
        }
        keeper.write_all(&batch).unwrap();
        for corr in 100..110 {
            let (got, mut body) = read_response(&mut keeper).unwrap();
            assert_eq!(got, corr);
            body.advance(1); // v12 response header tagged fields
            let meta = MetadataResponse::decode(&mut body, 12).unwrap();
            assert_eq!(meta.brokers.len(), 1);
        }
        api_versions_ok(port);
    })
    .await
    .unwrap();
    broker.shutdown().await.unwrap();
}

#[test]
fn kill_minus_nine_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let bootstrap = format!("127.0.0.1:{port}");
    let broker = common::BrokerProcess::spawn(dir.path(), port);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let acked: Arc<Mutex<BTreeMap<i32, BTreeSet<String>>>> = Arc::default();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "4000")
        .set("reconnect.backoff.ms", "50")
        .create()
        .unwrap();
    // Stream records in the background; record what the broker acknowledged.
    let stream = {
        let acked = acked.clone();
        let producer = producer.clone();
        runtime.spawn(async move {
            let mut i = 0u64;
            loop {
                let mut pending = Vec::new();
                for _ in 0..200 {
                    let value = format!("rec-{i}");
                    i += 1;
                    let record = FutureRecord::<(), _>::to("crash")
                        .payload(&value)
                        .partition((i % 2) as i32);
                    let delivery = producer.send_result(record).ok();
                    pending.push((value, delivery));
                }
                for (value, fut) in pending {
                    if let Some(fut) = fut {
                        if let Ok(Ok(delivery)) = fut.await {
                            acked
                                .lock()
                                .unwrap()
                                .entry(delivery.partition)
                                .or_default()
                                .insert(value);
                        }
                    }
                }
            }
        })
    };
    // Wait until a good amount is acknowledged, then crash the broker mid-stream.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while acked
        .lock()
        .unwrap()
        .values()
        .map(|s| s.len())
        .sum::<usize>()
        < 20_000
    {
        assert!(
            std::time::Instant::now() < deadline,
            "producer made no progress"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    broker.kill9();
    std::thread::sleep(Duration::from_millis(500));
    stream.abort();
    drop(producer);
    let acked = acked.lock().unwrap().clone();
    let total_acked: usize = acked.values().map(|s| s.len()).sum();

    // Restart and read everything back.
    let broker = common::BrokerProcess::spawn(dir.path(), port);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "crash-check")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&["crash"]).unwrap();
    let mut found: BTreeMap<i32, BTreeSet<String>> = BTreeMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut idle = 0;
    while std::time::Instant::now() < deadline && idle < 30 {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(msg)) => {
                idle = 0;
                let value = String::from_utf8(msg.payload().unwrap().to_vec()).unwrap();
                found.entry(msg.partition()).or_default().insert(value);
            }
            Some(Err(e)) => panic!("consume error: {e}"),
            None => {
                if found.values().map(|s| s.len()).sum::<usize>() >= total_acked {
                    idle += 1;
                }
            }
        }
    }
    for (partition, values) in &acked {
        let missing: Vec<&String> = values
            .iter()
            .filter(|v| !found.get(partition).is_some_and(|f| f.contains(*v)))
            .take(5)
            .collect();
        assert!(
            missing.is_empty(),
            "partition {partition} lost acknowledged records, e.g. {missing:?}"
        );
    }
    drop(runtime);
    broker.terminate();
}
