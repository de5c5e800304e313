//! The primitive types of Kafka's internal record schemas (`__consumer_offsets`,
//! `__transaction_state`): big-endian integers and length-prefixed strings and bytes,
//! and the compact forms of flexible versions (varint lengths, tagged fields), read
//! without panicking on a short or malformed record.

use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// A record that does not follow its schema.
pub fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// Kafka's `string`: an i16 length, then the bytes.
pub fn put_string(buf: &mut BytesMut, s: &str) -> io::Result<()> {
    let len = i16::try_from(s.len()).map_err(|_| invalid("string over 32767 bytes"))?;
    buf.put_i16(len);
    buf.put_slice(s.as_bytes());
    Ok(())
}

/// Kafka's nullable `string`: -1 for null.
pub fn put_nullable_string(buf: &mut BytesMut, s: Option<&str>) -> io::Result<()> {
    match s {
        Some(s) => put_string(buf, s),
        None => {
            buf.put_i16(-1);
            Ok(())
        }
    }
}

/// Kafka's `bytes`: an i32 length, then the bytes.
pub fn put_bytes(buf: &mut BytesMut, bytes: &[u8]) -> io::Result<()> {
    let len = i32::try_from(bytes.len()).map_err(|_| invalid("bytes over 2 GiB"))?;
    buf.put_i32(len);
    buf.put_slice(bytes);
    Ok(())
}

/// An unsigned varint (flexible versions' lengths and counts).
pub fn put_uvarint(buf: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        buf.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

/// A compact nullable `string`: its length + 1 as a varint (0 for null), then the bytes.
pub fn put_compact_string(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => {
            put_uvarint(buf, s.len() as u64 + 1);
            buf.put_slice(s.as_bytes());
        }
        None => put_uvarint(buf, 0),
    }
}

/// A compact array's header: its length + 1.
pub fn put_compact_len(buf: &mut BytesMut, len: usize) {
    put_uvarint(buf, len as u64 + 1);
}

/// A UUID: 16 bytes.
pub fn put_uuid(buf: &mut BytesMut, id: &uuid::Uuid) {
    buf.put_slice(id.as_bytes());
}

/// The end of a flexible struct without tagged fields.
pub fn put_no_tags(buf: &mut BytesMut) {
    put_uvarint(buf, 0);
}

/// Reads Kafka's fixed-width fields, failing on a short buffer instead of panicking.
pub struct Reader<'a>(pub &'a [u8]);

impl Reader<'_> {
    /// A signed byte.
    pub fn i8(&mut self) -> io::Result<i8> {
        (!self.0.is_empty())
            .then(|| self.0.get_i8())
            .ok_or_else(|| invalid("truncated record"))
    }
    /// A big-endian i16.
    pub fn i16(&mut self) -> io::Result<i16> {
        (self.0.len() >= 2)
            .then(|| self.0.get_i16())
            .ok_or_else(|| invalid("truncated record"))
    }
    /// A big-endian i32.
    pub fn i32(&mut self) -> io::Result<i32> {
        (self.0.len() >= 4)
            .then(|| self.0.get_i32())
            .ok_or_else(|| invalid("truncated record"))
    }
    /// A big-endian i64.
    pub fn i64(&mut self) -> io::Result<i64> {
        (self.0.len() >= 8)
            .then(|| self.0.get_i64())
            .ok_or_else(|| invalid("truncated record"))
    }
    /// Skips `len` bytes.
    pub fn skip(&mut self, len: usize) -> io::Result<()> {
        self.take(len).map(|_| ())
    }
    fn take(&mut self, len: usize) -> io::Result<&[u8]> {
        let bytes = self
            .0
            .get(..len)
            .ok_or_else(|| invalid("truncated record"))?;
        self.0 = &self.0[len..];
        Ok(bytes)
    }
    /// A `string` that may be null (length -1).
    pub fn nullable_string(&mut self) -> io::Result<Option<String>> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let bytes = self.take(len as usize)?;
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| invalid("string is not UTF-8"))
    }
    /// A `string` that must not be null.
    pub fn string(&mut self) -> io::Result<String> {
        self.nullable_string()?
            .ok_or_else(|| invalid("null where a string is required"))
    }
    /// An unsigned varint.
    pub fn uvarint(&mut self) -> io::Result<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(invalid("varint too long"))
    }
    /// A compact array's length (`None` for a null array).
    pub fn compact_len(&mut self) -> io::Result<Option<usize>> {
        let n = self.uvarint()?;
        if n == 0 {
            return Ok(None);
        }
        let len = usize::try_from(n - 1).map_err(|_| invalid("array too long"))?;
        // Every element takes at least a byte: a longer claim is malformed.
        if len > self.0.len() {
            return Err(invalid("truncated array"));
        }
        Ok(Some(len))
    }
    /// A compact `string` that may be null.
    pub fn compact_nullable_string(&mut self) -> io::Result<Option<String>> {
        let Some(len) = self.compact_len()? else {
            return Ok(None);
        };
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| invalid("string is not UTF-8"))
    }
    /// A compact `string` that must not be null.
    pub fn compact_string(&mut self) -> io::Result<String> {
        self.compact_nullable_string()?
            .ok_or_else(|| invalid("null where a string is required"))
    }
    /// A UUID.
    pub fn uuid(&mut self) -> io::Result<uuid::Uuid> {
        let bytes = self.take(16)?;
        uuid::Uuid::from_slice(bytes).map_err(|_| invalid("bad uuid"))
    }
    /// Skips a flexible struct's tagged fields (a count, then tag, size and data each).
    pub fn skip_tags(&mut self) -> io::Result<()> {
        for _ in 0..self.uvarint()? {
            self.uvarint()?;
            let size = usize::try_from(self.uvarint()?).map_err(|_| invalid("tag too long"))?;
            self.skip(size)?;
        }
        Ok(())
    }
    /// A `bytes` field (null reads as empty).
    pub fn bytes(&mut self) -> io::Result<Bytes> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(Bytes::new());
        }
        Ok(Bytes::copy_from_slice(self.take(len as usize)?))
    }
}
