//! The Kafka sink, exactly-once: the file sink's two-phase commit with a Kafka
//! transaction as its commit step.
//!
//! Records are spooled into the sink's part files (in a local spool directory) between
//! barriers, exactly as the file sink writes them. When the checkpoint that closed a part
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
use std::io::BufRead as _;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::checkpoint::CheckpointError;
use crate::checkpoint::manifest::PendingFile;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Where a Kafka sink's spooled part files are committed to (kept in the manifest, so a
/// restore commits them without the job's spec).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaCommitTarget {
    /// Bootstrap servers.
    pub bootstrap: String,
    /// Topic.
    pub topic: String,
    /// JSON field of each value that becomes the record key (same key, same partition).
    pub key_field: Option<String>,
    /// `transactional.id` (job, sink and subtask): one producer at a time may use it.
    pub transactional_id: String,
    /// Extra librdkafka producer properties.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
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
    for (k, v) in &t.properties {
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

/// The record key of a JSON value: its `field` (a string as is, anything else as JSON).
fn key_of(value: &[u8], field: Option<&str>) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(value).ok()?;
    Some(match v.get(field?)? {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// The part-file sequence number in `part-<subtask>-<seq>.jsonl`.
fn seq_of(visible: &str) -> Option<i64> {
    visible.trim_end_matches(".jsonl").rsplit('-').next()?.parse().ok()
}

/// Commit pending spool files of a Kafka sink: produce each in a transaction with its
/// marker (see the module doc). Returns how many were produced now.
pub fn commit(t: &KafkaCommitTarget, dir: &Path, pending: &[PendingFile]) -> Result<u64, CheckpointError> {
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
        let seq = seq_of(&p.visible).ok_or_else(|| CheckpointError::Corrupt { path: p.visible.clone(), reason: "not a part-file name".into() })?;
        if marker > seq {
            // Its transaction committed before a crash: only the spool file is left.
            std::fs::remove_file(&hidden).map_err(|e| CheckpointError::Local(format!("{}: {e}", hidden.display())))?;
            continue;
        }
        c.producer.begin_transaction().map_err(|e| storage_err(t, "begin_transaction", e))?;
        let file = std::fs::File::open(&hidden).map_err(|e| CheckpointError::Local(format!("{}: {e}", hidden.display())))?;
        for line in std::io::BufReader::new(file).lines() {
            let line = line.map_err(|e| CheckpointError::Local(format!("{}: {e}", hidden.display())))?;
            let key = key_of(line.as_bytes(), t.key_field.as_deref());
            let mut record = BaseRecord::<String, String>::to(&t.topic).payload(&line);
            if let Some(k) = &key {
                record = record.key(k);
            }
            let mut record = record;
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

/// Where an at-least-once Kafka sink produces.
#[derive(Debug, Clone)]
pub struct KafkaDirectTarget {
    /// Bootstrap servers.
    pub bootstrap: String,
    /// Topic.
    pub topic: String,
    /// JSON field of each value that becomes the record key.
    pub key_field: Option<String>,
    /// Extra librdkafka producer properties.
    pub properties: BTreeMap<String, String>,
}

/// Counts failed deliveries, so a flush can fail the sink (and the job restarts from its
/// last checkpoint: nothing is lost).
#[derive(Default)]
struct DeliveryCheck {
    failed: std::sync::atomic::AtomicU64,
    last: Mutex<Option<String>>,
}

impl rdkafka::ClientContext for DeliveryCheck {}

impl rdkafka::producer::ProducerContext for DeliveryCheck {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &rdkafka::producer::DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            *self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e.to_string());
        }
    }
}

/// Lines written to it become Kafka records (at-least-once: `flush` waits until every
/// one is acknowledged, and fails if any delivery failed).
pub struct KafkaLineWriter {
    producer: rdkafka::producer::ThreadedProducer<DeliveryCheck>,
    target: KafkaDirectTarget,
    line: Vec<u8>,
}

impl KafkaLineWriter {
    /// A producer for `t`.
    pub fn new(t: &KafkaDirectTarget) -> Result<Self, KafkaError> {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &t.bootstrap).set("linger.ms", "5").set("enable.idempotence", "true");
        for (k, v) in &t.properties {
            cfg.set(k, v);
        }
        Ok(KafkaLineWriter { producer: cfg.create_with_context(DeliveryCheck::default())?, target: t.clone(), line: Vec::new() })
    }

    fn produce(&self, line: &[u8]) -> std::io::Result<()> {
        let key = key_of(line, self.target.key_field.as_deref());
        let mut record = BaseRecord::<String, [u8], ()>::with_opaque_to(&self.target.topic, ()).payload(line);
        if let Some(k) = &key {
            record = record.key(k);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    std::thread::sleep(Duration::from_millis(5));
                    record = back;
                }
                Err((e, _)) => return Err(std::io::Error::other(format!("produce to {}: {e}", self.target.topic))),
            }
        }
        Ok(())
    }
}

impl std::io::Write for KafkaLineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut line = std::mem::take(&mut self.line);
        let r = super::sink::split_lines(&mut line, buf, |l| self.produce(l));
        self.line = line;
        r.map(|()| buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.producer.flush(TIMEOUT).map_err(|e| std::io::Error::other(format!("flush to {}: {e}", self.target.topic)))?;
        let ctx = self.producer.context();
        let failed = ctx.failed.swap(0, std::sync::atomic::Ordering::Relaxed);
        if failed > 0 {
            let last = ctx.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone().unwrap_or_default();
            return Err(std::io::Error::other(format!("{failed} records were not delivered to {} (last error: {last})", self.target.topic)));
        }
        Ok(())
    }
}
