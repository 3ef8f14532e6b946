//! [`Batch`]: records in the flat encoding of `rivulet_sdk::codec` plus their count.
//!
//! The bytes are reference-counted, so a batch sent to several targets (or handed to a
//! guest and kept for its keys) is shared, not copied, and its count travels with it:
//! nobody decodes a batch only to count it.

use std::sync::Arc;

use rivulet_sdk::{RecordIter, encode_record};

/// Encoded records and how many there are. Cloning shares the bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    bytes: Arc<Vec<u8>>,
    records: usize,
}

impl Batch {
    /// A batch whose record count the caller knows.
    pub fn new(bytes: Vec<u8>, records: usize) -> Self {
        Batch { bytes: Arc::new(bytes), records }
    }

    /// A batch of encoded records of unknown count: counts them once (a malformed tail
    /// counts as one record, and fails whoever decodes it).
    pub fn counted(bytes: Vec<u8>) -> Self {
        let records = RecordIter::new(&bytes).count();
        Batch { bytes: Arc::new(bytes), records }
    }

    /// The encoded bytes, shared.
    pub fn bytes(&self) -> &Arc<Vec<u8>> {
        &self.bytes
    }

    /// The encoded bytes as a slice.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.records == 0 && self.bytes.is_empty()
    }

    /// Decode the records.
    pub fn records(&self) -> RecordIter<'_> {
        RecordIter::new(&self.bytes)
    }
}

/// Builds a [`Batch`] record by record.
#[derive(Debug, Default)]
pub struct BatchBuilder {
    buf: Vec<u8>,
    records: usize,
}

impl BatchBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        BatchBuilder::default()
    }

    /// Append one record.
    pub fn push(&mut self, key: Option<&[u8]>, value: &[u8], timestamp: i64) {
        encode_record(&mut self.buf, key, value, timestamp);
        self.records += 1;
    }

    /// Records appended since the last [`BatchBuilder::take`].
    pub fn len(&self) -> usize {
        self.records
    }

    /// Whether nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// The batch built so far; the builder starts over.
    pub fn take(&mut self) -> Batch {
        let records = std::mem::take(&mut self.records);
        Batch::new(std::mem::take(&mut self.buf), records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_travel_with_the_bytes() {
        let mut b = BatchBuilder::new();
        b.push(Some(b"k"), b"v1", 1);
        b.push(None, b"v2", 2);
        let batch = b.take();
        assert_eq!(batch.len(), 2);
        assert!(b.is_empty());
        let again = Batch::counted(batch.as_slice().to_vec());
        assert_eq!(again, batch);
        let shared = batch.clone();
        assert_eq!(shared.bytes().as_ptr(), batch.bytes().as_ptr(), "a clone shares the bytes");
        let values: Vec<_> = batch.records().map(|r| r.expect("record").value.to_vec()).collect();
        assert_eq!(values, vec![b"v1".to_vec(), b"v2".to_vec()]);
    }
}
