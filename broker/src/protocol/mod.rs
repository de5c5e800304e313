//! Kafka wire framing: size-prefixed frames, request header peeking, response encoding,
//! and the table of API versions this broker serves.

pub mod versions;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use thiserror::Error;

/// The fixed start of every request header, readable for any API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderPeek {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

/// Why a frame cannot be served; all of these close the connection, as Kafka does.
#[derive(Debug, Error)]
pub enum FrameError {
    #[error("frame of {0} bytes is shorter than a request header")]
    TooShort(usize),
    #[error("request of {size} bytes exceeds socket.request.max.bytes {max}")]
    TooLarge { size: usize, max: usize },
    #[error("negative frame size {0}")]
    NegativeSize(i32),
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    #[error("unsupported version {version} of {key:?}")]
    UnsupportedVersion { key: ApiKey, version: i16 },
    #[error("malformed request: {0}")]
    Malformed(String),
}

/// Validates a frame length prefix.
pub fn check_frame_size(size: i32, max: usize) -> Result<usize, FrameError> {
    if size < 0 {
        return Err(FrameError::NegativeSize(size));
    }
    let size = size as usize;
    if size > max {
        return Err(FrameError::TooLarge { size, max });
    }
    if size < 8 {
        return Err(FrameError::TooShort(size));
    }
    Ok(size)
}

/// Reads api key, version and correlation id without decoding anything else.
pub fn peek_header(frame: &[u8]) -> Result<HeaderPeek, FrameError> {
    if frame.len() < 8 {
        return Err(FrameError::TooShort(frame.len()));
    }
    let mut b = frame;
    Ok(HeaderPeek {
        api_key: b.get_i16(),
        api_version: b.get_i16(),
        correlation_id: b.get_i32(),
    })
}

/// Decodes the full request header of a known API, leaving `frame` at the body.
pub fn decode_header(
    key: ApiKey,
    version: i16,
    frame: &mut Bytes,
) -> Result<RequestHeader, FrameError> {
    let header_version = key.request_header_version(version);
    RequestHeader::decode(frame, header_version).map_err(|e| FrameError::Malformed(e.to_string()))
}

/// A request decoded from one frame, ready for its handler.
#[derive(Debug)]
pub struct DecodedRequest {
    pub key: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    pub body: RequestKind,
}

/// What one request frame holds.
#[derive(Debug)]
pub enum Decoded {
    /// A request of an API and version this broker serves.
    Request(Box<DecodedRequest>),
    /// ApiVersions at a version above ours: answered at v0 with UNSUPPORTED_VERSION and
    /// our table, so the client can pick a version (KIP-511), never closed.
    NewerApiVersions { correlation_id: i32 },
}

/// Decodes one request frame (without its size prefix). Every frame either decodes or
/// gets a [`FrameError`] (the connection is then closed, as Kafka closes it): unknown API
/// keys, versions outside the advertised range and undecodable headers or bodies.
pub fn decode_request(frame: Bytes) -> Result<Decoded, FrameError> {
    let peek = peek_header(&frame)?;
    let key =
        ApiKey::try_from(peek.api_key).map_err(|_| FrameError::UnknownApiKey(peek.api_key))?;
    if key == ApiKey::ApiVersions
        && versions::advertised(key).is_some_and(|(_, max)| peek.api_version > max)
    {
        return Ok(Decoded::NewerApiVersions {
            correlation_id: peek.correlation_id,
        });
    }
    if !versions::is_servable(key, peek.api_version) {
        return Err(FrameError::UnsupportedVersion {
            key,
            version: peek.api_version,
        });
    }
    let mut body = frame;
    let header = decode_header(key, peek.api_version, &mut body)?;
    let request = RequestKind::decode(key, &mut body, peek.api_version)
        .map_err(|e| FrameError::Malformed(format!("{key:?} v{}: {e}", peek.api_version)))?;
    Ok(Decoded::Request(Box::new(DecodedRequest {
        key,
        version: peek.api_version,
        correlation_id: peek.correlation_id,
        client_id: header.client_id.map(|c| c.to_string()),
        body: request,
    })))
}

/// A response the broker built but cannot encode at the request's version: a field set
/// that the version does not have. A broker bug, never the client's fault (handlers set
/// version-gated fields only for versions that carry them; `tests/protocol_conformance.rs`
/// drives every API at every version to hold them to it).
#[derive(Debug, thiserror::Error)]
#[error("the {key:?} v{version} response cannot be encoded (a broker bug): {source}")]
pub struct ResponseEncodeError {
    pub key: ApiKey,
    pub version: i16,
    #[source]
    pub source: anyhow::Error,
}

/// Encodes a complete response frame: size, header, body.
pub fn encode_response<R: Encodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> Result<BytesMut, ResponseEncodeError> {
    let encode = || -> anyhow::Result<BytesMut> {
        let header_version = key.response_header_version(version);
        let header = ResponseHeader::default().with_correlation_id(correlation_id);
        let size = header.compute_size(header_version)? + body.compute_size(version)?;
        let mut buf = BytesMut::with_capacity(4 + size);
        buf.put_i32(size as i32);
        header.encode(&mut buf, header_version)?;
        body.encode(&mut buf, version)?;
        Ok(buf)
    };
    encode().map_err(|source| ResponseEncodeError {
        key,
        version,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_sizes_are_checked() {
        assert!(matches!(
            check_frame_size(-1, 100),
            Err(FrameError::NegativeSize(-1))
        ));
        assert!(matches!(
            check_frame_size(101, 100),
            Err(FrameError::TooLarge { .. })
        ));
        assert!(matches!(
            check_frame_size(3, 100),
            Err(FrameError::TooShort(3))
        ));
        assert_eq!(check_frame_size(50, 100).unwrap(), 50);
    }

    #[test]
    fn header_peek_reads_fixed_fields() {
        let frame = [0u8, 18, 0, 3, 0, 0, 0, 7, 0xff];
        assert_eq!(
            peek_header(&frame).unwrap(),
            HeaderPeek {
                api_key: 18,
                api_version: 3,
                correlation_id: 7
            }
        );
        assert!(peek_header(&frame[..5]).is_err());
    }
}
