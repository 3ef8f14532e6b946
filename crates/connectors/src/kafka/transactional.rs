//! The Kafka sink, exactly-once: the file sink's two-phase commit with a Kafka
//! transaction as its commit step.
//!
//! Records (key and value, in the batch encoding) are spooled into the sink's part files
//! (in a local spool directory) between barriers, as the file sink stages its output. When the checkpoint that closed a part
//! file completes, its commit produces the file's records in one Kafka transaction whose
//! last act is to commit a *marker* — the part file's sequence number + 1, stored as the
//! offset of partition 0 of the topic in the consumer group `<transactional.id>-commits`
//! — atomically with the records. A commit that finds the marker already past a part file
//! knows its transaction committed (a crash came after the commit, before the spool
//! file was removed) and only removes the file; otherwise the previous attempt's open
//! transaction was aborted by `init_transactions` (which also fences a zombie with the
//! same `transactional.id`) and the file is produced again. Readers with
//! `isolation.level=read_committed` therefore see every record once.
//!
//! The cost of this design against Flink's (which writes into the transaction as records
//! arrive and resumes a prepared transaction by producer id and epoch, something
//! librdkafka does not offer) is latency: records reach Kafka after the checkpoint that
//! covers them completes, not while it is taken.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufReader, Read as _};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
use rdkafka::{Offset, TopicPartitionList};
use rivulet_checkpoint::{CheckpointError, Committer, SinkEntry, SinkTransaction};
use rivulet_dataflow::NodeRole;
use serde::{Deserialize, Serialize};

use super::kafka_key;
use crate::error::ConnectorError;
use crate::part_files::{PartFileSink, PartFiles, PartFilesTxn, PendingFile, Roll, SpoolFormat, next_seq_of, part_number};
use crate::sink::Sink;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Where a Kafka sink's spooled part files are committed to (kept in its transaction,
/// so a restore commits them to where they were meant for).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KafkaCommitTarget {
    /// Bootstrap servers.
    pub bootstrap: String,
    /// Topic.
    pub topic: String,
    /// JSON field of each value that becomes the record key instead of the record's key.
    pub key_field: Option<String>,
    /// `transactional.id` (job, sink and subtask): one producer at a time may use it.
    pub transactional_id: String,
    /// Extra librdkafka producer properties, as the spec has them: a secret given as a
    /// reference (`${env:NAME}`, `${file:/abs/path}`) stays one here, resolved only when
    /// the producer is built.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// The committer's part of the sink's transaction.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Target {
    kafka: KafkaCommitTarget,
}

/// The exactly-once sink of `target`: records (with their keys) spooled into part files.
pub(crate) fn spool_sink(
    id: &str,
    spool: &Path,
    subtask: u32,
    restored: Option<&SinkEntry>,
    target: KafkaCommitTarget,
) -> Result<Box<dyn Sink>, ConnectorError> {
    let parts = PartFiles::open(spool, subtask, "records", Roll::default(), next_seq_of(restored))
        .map_err(|e| ConnectorError::failed(NodeRole::Sink, id, format!("cannot create {}: {e}", spool.display())))?;
    Ok(Box::new(PartFileSink::new(id, parts, SpoolFormat::Records, Target { kafka: target })))
}

/// The committer of a transaction with a Kafka target: the exactly-once Kafka sink's.
pub(crate) fn committer_for(transaction: &SinkTransaction) -> Option<Arc<dyn Committer>> {
    PartFilesTxn::<Target>::decode(transaction).ok().map(|_| Arc::new(KafkaCommitter) as Arc<dyn Committer>)
}

/// Commits an exactly-once Kafka sink's spool files (see the module doc).
pub(crate) struct KafkaCommitter;

impl Committer for KafkaCommitter {
    fn commit(&self, transaction: &SinkTransaction) -> Result<u64, CheckpointError> {
        let t: PartFilesTxn<Target> = PartFilesTxn::decode(transaction)?;
        commit(&t.extra.kafka, Path::new(&t.dir), &t.pending)
    }
    // A missing spool file was committed (it is removed after its transaction): nothing to verify.
}

/// Reads a spool file back: records as the sink encoded them (key, value, timestamp) —
/// or, in spool files written before records were kept (`.jsonl` parts), one value per
/// line. Lengths are checked against what is left of the file: a damaged file is an
/// error, never a huge allocation.
struct SpoolReader {
    r: BufReader<std::fs::File>,
    left: u64,
    lines: bool,
}

fn damaged() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, "a damaged spool record (a length past the end of the file)")
}

impl SpoolReader {
    fn open(path: &Path, lines: bool) -> std::io::Result<Self> {
        let f = std::fs::File::open(path)?;
        let left = f.metadata()?.len();
        Ok(SpoolReader { r: BufReader::with_capacity(1 << 16, f), left, lines })
    }

    fn take(&mut self, n: u64) -> std::io::Result<Vec<u8>> {
        if n > self.left {
            return Err(damaged());
        }
        let mut buf = vec![0u8; n as usize];
        self.r.read_exact(&mut buf)?;
        self.left -= n;
        Ok(buf)
    }

    fn u32(&mut self) -> std::io::Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The next record: (key, value); `None` at the end.
    fn next(&mut self) -> std::io::Result<Option<(Option<Vec<u8>>, Vec<u8>)>> {
        if self.left == 0 {
            return Ok(None);
        }
        if self.lines {
            let mut line = Vec::new();
            let n = std::io::BufRead::read_until(&mut self.r, b'\n', &mut line)?;
            self.left = self.left.saturating_sub(n as u64);
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            return Ok(Some((None, line)));
        }
        let key_len = self.u32()?;
        let key = if key_len == u32::MAX { None } else { Some(self.take(u64::from(key_len))?) };
        let value_len = self.u32()?;
        let value = self.take(u64::from(value_len))?;
        self.take(8)?;
        Ok(Some((key, value)))
    }
}

struct TxClient {
    producer: BaseProducer,
    markers: BaseConsumer,
}

/// One initialised transactional producer per `transactional.id` in this process.
fn clients() -> &'static Mutex<HashMap<String, Arc<TxClient>>> {
    static CLIENTS: OnceLock<Mutex<HashMap<String, Arc<TxClient>>>> = OnceLock::new();
    CLIENTS.get_or_init(Default::default)
}

fn storage_err(t: &KafkaCommitTarget, what: &str, e: impl std::fmt::Display) -> CheckpointError {
    CheckpointError::Storage { path: format!("kafka://{}/{}", t.bootstrap, t.topic), message: format!("{what}: {e}") }
}

fn client(t: &KafkaCommitTarget) -> Result<Arc<TxClient>, CheckpointError> {
    let mut map = clients().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(c) = map.get(&t.transactional_id) {
        return Ok(c.clone());
    }
    let mut pc = ClientConfig::new();
    pc.set("bootstrap.servers", &t.bootstrap)
        .set("transactional.id", &t.transactional_id)
        .set("transaction.timeout.ms", "60000")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000");
    // Secret references (anchored when the sink was built) are resolved only here.
    let properties = crate::secrets::resolved(&t.properties, Path::new("/")).map_err(|e| storage_err(t, "cannot create a Kafka producer", e))?;
    for (k, v) in &properties {
        pc.set(k, v);
    }
    let producer: BaseProducer = pc.create().map_err(|e| storage_err(t, "cannot create a Kafka producer", e))?;
    // Fences an older producer with this id and aborts its open transaction.
    producer.init_transactions(TIMEOUT).map_err(|e| storage_err(t, "init_transactions", e))?;
    let markers: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &t.bootstrap)
        .set("group.id", format!("{}-commits", t.transactional_id))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .map_err(|e| storage_err(t, "cannot create the marker client", e))?;
    let c = Arc::new(TxClient { producer, markers });
    map.insert(t.transactional_id.clone(), c.clone());
    Ok(c)
}

fn forget(t: &KafkaCommitTarget) {
    clients().lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&t.transactional_id);
}

/// Commit pending spool files of a Kafka sink: produce each in a transaction with its
/// marker (see the module doc). Returns how many were produced now.
fn commit(t: &KafkaCommitTarget, dir: &Path, pending: &[PendingFile]) -> Result<u64, CheckpointError> {
    if pending.iter().all(|p| !dir.join(&p.hidden).exists()) {
        return Ok(0);
    }
    let c = client(t)?;
    let result = commit_with(t, &c, dir, pending);
    if result.is_err() {
        // Start afresh next time: a new producer aborts whatever this one left open.
        let _ = c.producer.abort_transaction(TIMEOUT);
        forget(t);
    }
    result
}

fn commit_with(t: &KafkaCommitTarget, c: &TxClient, dir: &Path, pending: &[PendingFile]) -> Result<u64, CheckpointError> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&t.topic, 0);
    let committed = c.markers.committed_offsets(tpl, TIMEOUT).map_err(|e| storage_err(t, "cannot read the commit marker", e))?;
    let mut marker = match committed.find_partition(&t.topic, 0).map(|e| e.offset()) {
        Some(Offset::Offset(o)) => o,
        _ => 0,
    };
    let group = c.markers.group_metadata().ok_or_else(|| storage_err(t, "commit marker", "no group metadata"))?;
    let mut produced = 0;
    for p in pending {
        let hidden = dir.join(&p.hidden);
        if !hidden.exists() {
            continue;
        }
        let seq = part_number(&p.visible)
            .and_then(|(_, seq)| i64::try_from(seq).ok())
            .ok_or_else(|| CheckpointError::Corrupt { path: p.visible.clone(), reason: "not a part-file name".into() })?;
        if marker > seq {
            // Its transaction committed before a crash: only the spool file is left.
            std::fs::remove_file(&hidden).map_err(|e| CheckpointError::Local(format!("{}: {e}", hidden.display())))?;
            continue;
        }
        c.producer.begin_transaction().map_err(|e| storage_err(t, "begin_transaction", e))?;
        let local = |e: std::io::Error| CheckpointError::Local(format!("{}: {e}", hidden.display()));
        let mut spool = SpoolReader::open(&hidden, p.visible.ends_with(".jsonl")).map_err(local)?;
        while let Some((key, value)) = spool.next().map_err(local)? {
            let key = kafka_key(key.as_deref(), &value, t.key_field.as_deref());
            let mut record = BaseRecord::<[u8], [u8]>::to(&t.topic).payload(&value);
            if let Some(k) = &key {
                record = record.key(k.as_ref());
            }
            loop {
                match c.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        c.producer.poll(Duration::from_millis(50));
                        record = back;
                    }
                    Err((e, _)) => return Err(storage_err(t, "produce", e)),
                }
            }
        }
        c.producer.flush(TIMEOUT).map_err(|e| storage_err(t, "flush", e))?;
        let mut offsets = TopicPartitionList::new();
        offsets.add_partition_offset(&t.topic, 0, Offset::Offset(seq + 1)).map_err(|e| storage_err(t, "marker", e))?;
        c.producer.send_offsets_to_transaction(&offsets, &group, TIMEOUT).map_err(|e| storage_err(t, "send the commit marker", e))?;
        c.producer.commit_transaction(TIMEOUT).map_err(|e| storage_err(t, "commit_transaction", e))?;
        marker = seq + 1;
        std::fs::remove_file(&hidden).map_err(|e| CheckpointError::Local(format!("{}: {e}", hidden.display())))?;
        produced += 1;
    }
    Ok(produced)
}

#[cfg(test)]
mod tests {
    use rivulet_dataflow::BatchBuilder;

    #[test]
    fn spool_files_hold_records_with_their_keys_and_damage_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut b = BatchBuilder::new();
        b.push(Some(b"customer-1"), b"{\"total\":3}", 7);
        b.push(None, b"no key", 8);
        let batch = b.take();
        let path = dir.path().join("spool");
        std::fs::write(&path, batch.as_slice()).expect("write");
        let mut r = super::SpoolReader::open(&path, false).expect("open");
        assert_eq!(r.next().expect("read"), Some((Some(b"customer-1".to_vec()), b"{\"total\":3}".to_vec())));
        assert_eq!(r.next().expect("read"), Some((None, b"no key".to_vec())));
        assert_eq!(r.next().expect("read"), None);
        // A length past the end of the file (a JSON line read as a record) is refused.
        std::fs::write(&path, b"{\"key\":\"a\"}\n").expect("write");
        assert!(super::SpoolReader::open(&path, false).expect("open").next().is_err());
        // Spool files of earlier versions: one value per line.
        let mut r = super::SpoolReader::open(&path, true).expect("open");
        assert_eq!(r.next().expect("read"), Some((None, b"{\"key\":\"a\"}".to_vec())));
        assert_eq!(r.next().expect("read"), None);
    }
}
