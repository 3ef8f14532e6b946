//! The flat batch encoding records use to cross the Wasm boundary.
//!
//! ```text
//! record := key-len:u32 key value-len:u32 value timestamp:i64   (little-endian)
//! ```
//! `key-len = u32::MAX` means "no key". The host and every SDK share this layout; it is
//! specified in `wit/operator.wit` (`types.encoded-batch`).

use std::fmt;

/// Marks a record without a key.
pub const NO_KEY: u32 = u32::MAX;

/// A record borrowed from an encoded batch.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The record's key, if it has one (keyed streams always do).
    pub key: Option<&'a [u8]>,
    /// The record's value (for file and JSON sources, one JSON document).
    pub value: &'a [u8],
    /// Event time, ms since the Unix epoch.
    pub timestamp: i64,
}

impl fmt::Debug for Record<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("key", &self.key.map(String::from_utf8_lossy))
            .field("value", &String::from_utf8_lossy(self.value))
            .field("timestamp", &self.timestamp)
            .finish()
    }
}

impl<'a> Record<'a> {
    /// The value parsed as JSON into `T`.
    pub fn json<T: serde::Deserialize<'a>>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(self.value)
    }
    /// The value as UTF-8 text.
    pub fn value_str(&self) -> Result<&'a str, std::str::Utf8Error> {
        std::str::from_utf8(self.value)
    }
    /// The key as UTF-8 text, if there is a key and it is text.
    pub fn key_str(&self) -> Option<&'a str> {
        self.key.and_then(|k| std::str::from_utf8(k).ok())
    }
}

/// Append one record to an encoded batch.
pub fn encode_record(buf: &mut Vec<u8>, key: Option<&[u8]>, value: &[u8], timestamp: i64) {
    buf.reserve(16 + key.map_or(0, <[u8]>::len) + value.len());
    match key {
        Some(k) => {
            buf.extend_from_slice(&(k.len() as u32).to_le_bytes());
            buf.extend_from_slice(k);
        }
        None => buf.extend_from_slice(&NO_KEY.to_le_bytes()),
    }
    buf.extend_from_slice(&(value.len() as u32).to_le_bytes());
    buf.extend_from_slice(value);
    buf.extend_from_slice(&timestamp.to_le_bytes());
}

/// A batch that does not follow the encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte offset where decoding failed.
    pub offset: usize,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed record batch at byte {}", self.offset)
    }
}

impl std::error::Error for DecodeError {}

/// Iterates the records of an encoded batch.
pub struct RecordIter<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> RecordIter<'a> {
    /// Iterate `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        RecordIter { buf, pos: 0, failed: false }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn next_record(&mut self) -> Option<Record<'a>> {
        let key_len = self.u32()?;
        let key = if key_len == NO_KEY { None } else { Some(self.take(key_len as usize)?) };
        let value_len = self.u32()?;
        let value = self.take(value_len as usize)?;
        let ts = self.take(8)?;
        let mut t = [0u8; 8];
        t.copy_from_slice(ts);
        Some(Record { key, value, timestamp: i64::from_le_bytes(t) })
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<Record<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let start = self.pos;
        match self.next_record() {
            Some(r) => Some(Ok(r)),
            None => {
                self.failed = true;
                Some(Err(DecodeError { offset: start }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        encode_record(&mut buf, Some(b"k"), b"{\"a\":1}", 42);
        encode_record(&mut buf, None, b"", -7);
        let rs: Vec<_> = RecordIter::new(&buf).collect::<Result<_, _>>().expect("decodes");
        assert_eq!(rs.len(), 2);
        assert_eq!(rs[0].key, Some(&b"k"[..]));
        assert_eq!(rs[0].value, b"{\"a\":1}");
        assert_eq!(rs[0].timestamp, 42);
        assert_eq!(rs[1].key, None);
        assert_eq!(rs[1].timestamp, -7);
    }

    #[test]
    fn truncated_batch_is_an_error() {
        let mut buf = Vec::new();
        encode_record(&mut buf, Some(b"key"), b"value", 1);
        buf.pop();
        let r: Result<Vec<_>, _> = RecordIter::new(&buf).collect();
        assert_eq!(r, Err(DecodeError { offset: 0 }));
    }
}
