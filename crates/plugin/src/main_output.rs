//! The main output of one guest call: batches the guest encoded (`collector.emit`) and
//! input records it passed on by index (`collector.forward`), in call order.

use rivulet_dataflow::Batch;

/// The input batch of the running call, which `collector.forward` takes records from.
pub(crate) struct ForwardSource {
    batch: Batch,
    /// Where each record starts, and (last) where the last one ends; built on demand.
    offsets: Vec<usize>,
}

impl ForwardSource {
    /// Records of `batch` may be forwarded.
    pub(crate) fn new(batch: &Batch) -> Self {
        ForwardSource { batch: batch.clone(), offsets: Vec::new() }
    }

    /// The bytes of record `index`, or `None` past the last record.
    fn record(&mut self, index: u32) -> Option<&[u8]> {
        if self.offsets.is_empty() {
            self.offsets = record_offsets(self.batch.as_slice());
        }
        let i = index as usize;
        let (start, end) = (*self.offsets.get(i)?, *self.offsets.get(i + 1)?);
        self.batch.as_slice().get(start..end)
    }
}

/// Where each record of an encoded batch starts, and (last) where the last one ends;
/// stops before a malformed record.
fn record_offsets(batch: &[u8]) -> Vec<usize> {
    let base = batch.as_ptr() as usize;
    let mut offsets = vec![0];
    for r in rivulet_sdk::RecordIter::new(batch) {
        let Ok(r) = r else { break };
        // A record ends with its value and the 8-byte timestamp.
        offsets.push(r.value.as_ptr() as usize - base + r.value.len() + 8);
    }
    offsets
}

/// What a call put on its main output so far.
#[derive(Default)]
pub(crate) struct MainOutput {
    bytes: Vec<u8>,
    /// The whole input batch, forwarded in order into an empty output: shared, not
    /// copied (then `bytes` is empty).
    shared: Option<Batch>,
}

impl MainOutput {
    /// Append records the guest encoded.
    pub(crate) fn emit(&mut self, records: Vec<u8>) {
        self.unshare();
        if self.bytes.is_empty() {
            self.bytes = records;
        } else {
            self.bytes.extend_from_slice(&records);
        }
    }

    /// Append the records at `indices` of `source`, as they are.
    pub(crate) fn forward(&mut self, source: &mut ForwardSource, indices: &[u32]) -> Result<(), String> {
        let whole = indices.len() == source.batch.len() && indices.iter().enumerate().all(|(i, &x)| x as usize == i);
        if whole && self.bytes.is_empty() && self.shared.is_none() {
            self.shared = Some(source.batch.clone());
            return Ok(());
        }
        self.unshare();
        if whole {
            self.bytes.extend_from_slice(source.batch.as_slice());
            return Ok(());
        }
        for &i in indices {
            let Some(record) = source.record(i) else {
                return Err(format!("forward: record {i}, but the batch being processed has {} records", source.batch.len()));
            };
            self.bytes.extend_from_slice(record);
        }
        Ok(())
    }

    /// The output so far, leaving this one empty.
    pub(crate) fn take(&mut self) -> Batch {
        match self.shared.take() {
            Some(shared) => shared,
            None => Batch::counted(std::mem::take(&mut self.bytes)),
        }
    }

    /// Copy a shared output before anything is appended to it.
    fn unshare(&mut self) {
        if let Some(shared) = self.shared.take() {
            self.bytes = shared.as_slice().to_vec();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rivulet_sdk::{RecordIter, encode_record};

    use super::*;

    fn batch(values: &[&str]) -> Batch {
        let mut b = Vec::new();
        for (i, v) in values.iter().enumerate() {
            let key = if i % 2 == 0 { Some(format!("k{i}")) } else { None };
            encode_record(&mut b, key.as_deref().map(str::as_bytes), v.as_bytes(), i as i64);
        }
        Batch::counted(b)
    }

    fn values(b: &Batch) -> Vec<String> {
        RecordIter::new(b.as_slice()).map(|r| String::from_utf8_lossy(r.expect("valid").value).into_owned()).collect()
    }

    #[test]
    fn a_whole_batch_forwarded_in_order_is_shared() {
        let input = batch(&["a", "b", "c"]);
        let mut out = MainOutput::default();
        out.forward(&mut ForwardSource::new(&input), &[0, 1, 2]).expect("forward");
        let taken = out.take();
        assert!(Arc::ptr_eq(taken.bytes(), input.bytes()), "no copy");
        assert_eq!(taken.len(), 3);
    }

    #[test]
    fn forwards_and_emits_keep_call_order() {
        let input = batch(&["a", "bb", "", "dddd"]);
        let mut source = ForwardSource::new(&input);
        let mut out = MainOutput::default();
        out.forward(&mut source, &[0, 1, 2, 3]).expect("whole, shared");
        let mut emitted = Vec::new();
        encode_record(&mut emitted, None, b"new", 9);
        out.emit(emitted);
        out.forward(&mut source, &[3, 0, 3]).expect("some, repeated");
        let taken = out.take();
        assert_eq!(values(&taken), ["a", "bb", "", "dddd", "new", "dddd", "a", "dddd"]);
        let keys: Vec<_> = RecordIter::new(taken.as_slice()).map(|r| r.expect("valid").key.map(<[u8]>::to_vec)).collect();
        assert_eq!(keys[6], Some(b"k0".to_vec()), "keys and timestamps travel with the record");
        assert!(out.take().is_empty(), "take leaves the output empty");
    }

    #[test]
    fn an_index_past_the_batch_is_refused() {
        let input = batch(&["a", "b"]);
        let mut out = MainOutput::default();
        let e = out.forward(&mut ForwardSource::new(&input), &[0, 2]).expect_err("out of range");
        assert!(e.contains("record 2") && e.contains("has 2 records"), "{e}");
    }
}
