//! A minimal Kafka-protocol client connection, for broker-to-broker requests (replica
//! fetches and OffsetForLeaderEpoch). One request in flight at a time.

use anyhow::{bail, Context, Result};
use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// How long connecting to a peer may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long one request may take, long polls included (Kafka's `replica.socket.timeout.ms`).
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Largest response accepted from a peer broker.
const MAX_RESPONSE_BYTES: usize = 256 << 20;

/// A connection to another broker.
#[derive(Debug)]
pub struct KafkaConnection {
    stream: BufReader<TcpStream>,
    correlation_id: i32,
    client_id: StrBytes,
}

impl KafkaConnection {
    /// Connects to `addr`.
    pub async fn connect(addr: &str, client_id: String) -> Result<Self> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| anyhow::anyhow!("connecting to {addr} timed out"))?
            .with_context(|| format!("connecting to {addr}"))?;
        let _ = stream.set_nodelay(true);
        Ok(KafkaConnection {
            stream: BufReader::with_capacity(1 << 20, stream),
            correlation_id: 0,
            client_id: StrBytes::from_string(client_id),
        })
    }

    /// Sends `request` at `version` and reads its response, within `REQUEST_TIMEOUT` (a
    /// half-open connection must not stall replication forever). After an error or timeout
    /// the connection must be dropped.
    pub async fn send<R: Request>(&mut self, version: i16, request: &R) -> Result<R::Response> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(version, request))
            .await
            .map_err(|_| anyhow::anyhow!("request timed out after {REQUEST_TIMEOUT:?}"))?
    }

    async fn exchange<R: Request>(&mut self, version: i16, request: &R) -> Result<R::Response> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let header_version = R::header_version(version);
        let size = header.compute_size(header_version)? + request.compute_size(version)?;
        let mut buf = BytesMut::with_capacity(size + 4);
        buf.put_i32(size as i32);
        header.encode(&mut buf, header_version)?;
        request.encode(&mut buf, version)?;
        self.stream.get_mut().write_all(&buf).await?;

        let len = self.stream.read_i32().await?;
        if len < 4 || len as usize > MAX_RESPONSE_BYTES {
            bail!("bad response size {len}");
        }
        let mut frame = BytesMut::zeroed(len as usize);
        self.stream.read_exact(&mut frame).await?;
        let mut frame = frame.freeze();
        let response_header = ResponseHeader::decode(
            &mut frame,
            <R::Response as HeaderVersion>::header_version(version),
        )?;
        if response_header.correlation_id != self.correlation_id {
            bail!(
                "correlation id mismatch: sent {}, got {}",
                self.correlation_id,
                response_header.correlation_id
            );
        }
        R::Response::decode(&mut frame, version)
    }
}
