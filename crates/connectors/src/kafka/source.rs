//! The Kafka source (rdkafka): a topic's partitions spread over the subtasks, offsets
//! in checkpoints, event time from the record timestamp or a JSON field, watermarks per
//! partition with idleness, bounded or unbounded.
//!
//! Exactly-once comes from the offsets: each barrier records the next offset of every
//! partition the subtask reads, and a restored subtask seeks there, so every record is
//! emitted once downstream of the last completed checkpoint (the sinks' two-phase commit
//! does the rest). Group offsets are committed at each barrier for monitoring only
//! (lag in Kafka's tools); a restore never reads them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};

use rivulet_checkpoint::SourcePosition;
use rivulet_dataflow::NodeRole;
use rivulet_job::{KafkaFormat, KafkaSourceSpec, KafkaStart};
use serde::{Deserialize, Serialize};

use crate::BoxFuture;
use crate::context::ConnectorContext;
use crate::error::ConnectorError;
use crate::source::{SourceConnector, SourceContext, SourceTask};

/// How long metadata and offset lookups may take at start.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long consumer errors may go on with no record read before the source fails.
const ERROR_TIMEOUT: Duration = Duration::from_secs(120);
/// How often an unbounded source with nothing to read checks idleness and barriers.
const TICK: Duration = Duration::from_millis(100);

/// What the read loop does next.
enum Step<M> {
    /// Take a barrier.
    Barrier(rivulet_dataflow::Barrier),
    /// Handle a message, an error, or a tick without either (`Err(Elapsed)`).
    Message(M),
}

/// Where a Kafka source subtask was: the next offset of each partition it reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum KafkaPosition {
    Kafka {
        /// The topic.
        topic: String,
        /// Partition → next offset to read.
        offsets: BTreeMap<i32, i64>,
        /// Largest event time seen.
        max_ts: i64,
    },
}

/// `type: kafka` sources.
pub(crate) struct KafkaSourceConnector {
    spec: KafkaSourceSpec,
    job: String,
}

impl KafkaSourceConnector {
    pub(crate) fn new(spec: &KafkaSourceSpec, cx: &ConnectorContext) -> Self {
        let mut spec = spec.clone();
        // Secret references are resolved when the consumer is built, against the spec's directory.
        spec.properties = crate::secrets::anchored(&spec.properties, &cx.base_dir);
        KafkaSourceConnector { spec, job: cx.job.clone() }
    }
}

impl SourceConnector for KafkaSourceConnector {
    fn rescalable(&self) -> bool {
        // Partitions move between subtasks: a restored subtask merges every old position.
        true
    }

    fn open(&self, subtask: u32, parallelism: u32, restored: Option<Vec<SourcePosition>>) -> Result<Box<dyn SourceTask>, ConnectorError> {
        let s = &self.spec;
        let restored = match restored {
            None => None,
            Some(ps) => Some(
                ps.iter()
                    .map(|p| {
                        if p.is_finished() {
                            return Ok(None);
                        }
                        let KafkaPosition::Kafka { topic, offsets, max_ts } =
                            p.decode().map_err(|e| ConnectorError::failed(NodeRole::Source, &s.id, e.to_string()))?;
                        Ok(Some(Offsets { topic, offsets, max_ts }))
                    })
                    .collect::<Result<Vec<_>, ConnectorError>>()?,
            ),
        };
        Ok(Box::new(KafkaSource {
            id: s.id.clone(),
            job: self.job.clone(),
            bootstrap: s.bootstrap_servers.clone(),
            topic: s.topic.clone(),
            start: s.start,
            start_timestamp_ms: s.start_timestamp_ms,
            group_id: s.group_id.clone(),
            bounded: s.bounded,
            format: s.format,
            time: match s.event_time.as_ref().and_then(|et| et.field.clone()) {
                Some(f) => KafkaTime::Field(f),
                None => KafkaTime::RecordTimestamp,
            },
            idle_timeout: s.event_time.as_ref().and_then(|et| et.idle_timeout_ms).map(Duration::from_millis),
            properties: s.properties.clone(),
            subtask,
            parallelism,
            restored,
        }))
    }
}

/// A restored position of one old subtask.
struct Offsets {
    topic: String,
    offsets: BTreeMap<i32, i64>,
    max_ts: i64,
}

/// Where event time comes from.
#[derive(Debug, Clone)]
enum KafkaTime {
    /// The record's timestamp (create or log-append time).
    RecordTimestamp,
    /// A JSON field of the value, in ms.
    Field(String),
}

/// One Kafka source subtask.
struct KafkaSource {
    id: String,
    /// Job name (default group id).
    job: String,
    bootstrap: String,
    topic: String,
    /// Start without a checkpoint.
    start: KafkaStart,
    /// For [`KafkaStart::Timestamp`].
    start_timestamp_ms: Option<i64>,
    group_id: Option<String>,
    /// Stop at the end offsets found at start.
    bounded: bool,
    format: KafkaFormat,
    time: KafkaTime,
    /// Partitions without records for this long do not hold the watermark back.
    idle_timeout: Option<Duration>,
    properties: BTreeMap<String, String>,
    subtask: u32,
    parallelism: u32,
    /// Restored positions of every subtask of the snapshot (merged: the job may have been
    /// rescaled; `None` inside: that subtask had finished), or `None` on a fresh start.
    restored: Option<Vec<Option<Offsets>>>,
}

impl SourceTask for KafkaSource {
    fn run(self: Box<Self>, ctx: SourceContext) -> BoxFuture<'static, Result<(), ConnectorError>> {
        Box::pin(self.read(ctx))
    }
}

struct Partition {
    /// Next offset to emit.
    next: i64,
    /// End offset (bounded sources).
    end: Option<i64>,
    max_ts: i64,
    last_record: Instant,
}

impl KafkaSource {
    fn err(&self, message: impl Into<String>) -> ConnectorError {
        ConnectorError::failed(NodeRole::Source, &self.id, message)
    }

    fn kafka_err(&self, what: &str, e: &KafkaError) -> ConnectorError {
        self.err(format!("{what} (topic '{}' at {}): {e}", self.topic, self.bootstrap))
    }

    fn consumer(&self) -> Result<StreamConsumer, ConnectorError> {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.bootstrap)
            .set("group.id", self.group_id.clone().unwrap_or_else(|| format!("rivulet-{}-{}", self.job, self.id)))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "false")
            .set("client.id", format!("rivulet-{}-{}-{}", self.job, self.id, self.subtask));
        let properties = crate::secrets::resolved(&self.properties, std::path::Path::new("/")).map_err(|e| self.err(e.to_string()))?;
        for (k, v) in &properties {
            cfg.set(k, v);
        }
        cfg.create().map_err(|e| self.kafka_err("cannot create a Kafka consumer", &e))
    }

    /// The partitions of the topic this subtask reads: p mod parallelism = subtask.
    fn my_partitions(&self, consumer: &StreamConsumer) -> Result<Vec<i32>, ConnectorError> {
        let md = consumer.fetch_metadata(Some(&self.topic), LOOKUP_TIMEOUT).map_err(|e| self.kafka_err("cannot reach the Kafka cluster", &e))?;
        let topic = md
            .topics()
            .iter()
            .find(|t| t.name() == self.topic)
            .ok_or_else(|| self.err(format!("the cluster at {} did not describe topic '{}'", self.bootstrap, self.topic)))?;
        if let Some(e) = topic.error() {
            let e = rdkafka::types::RDKafkaErrorCode::from(e);
            return Err(self.err(if e == rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition {
                format!("topic '{}' does not exist on {}", self.topic, self.bootstrap)
            } else {
                format!("topic '{}' on {}: {e}", self.topic, self.bootstrap)
            }));
        }
        if topic.partitions().is_empty() {
            return Err(self.err(format!("topic '{}' on {} has no partitions", self.topic, self.bootstrap)));
        }
        let par = i32::try_from(self.parallelism.max(1)).unwrap_or(i32::MAX);
        let me = i32::try_from(self.subtask).unwrap_or(0);
        Ok(topic.partitions().iter().map(|p| p.id()).filter(|p| p % par == me).collect())
    }

    /// Where each partition starts: the restored offset, else the start position.
    fn start_offsets(&self, consumer: &StreamConsumer, parts: &[i32]) -> Result<BTreeMap<i32, i64>, ConnectorError> {
        let mut restored: BTreeMap<i32, i64> = BTreeMap::new();
        for pos in self.restored.iter().flatten().flatten() {
            if pos.topic != self.topic {
                return Err(self.err(format!("the snapshot read topic '{}', this source reads '{}'", pos.topic, self.topic)));
            }
            restored.extend(pos.offsets.iter().map(|(p, o)| (*p, *o)));
        }
        let mut out = BTreeMap::new();
        let mut missing = Vec::new();
        for &p in parts {
            match restored.get(&p) {
                Some(&o) => {
                    out.insert(p, o);
                }
                None => missing.push(p),
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        // Partitions the snapshot does not know: on a fresh start, the start position;
        // on a restore, partitions of subtasks that had finished (a bounded read ended:
        // they stay at their end) or new partitions (read from the earliest).
        let any_finished = self.restored.iter().flatten().any(Option::is_none);
        let start = match &self.restored {
            None => self.start,
            Some(_) if any_finished => KafkaStart::Latest,
            Some(_) => KafkaStart::Earliest,
        };
        let watermarks = |p: i32| consumer.fetch_watermarks(&self.topic, p, LOOKUP_TIMEOUT).map_err(|e| self.kafka_err("cannot read offsets", &e));
        match start {
            KafkaStart::Earliest => {
                for p in missing {
                    out.insert(p, watermarks(p)?.0);
                }
            }
            KafkaStart::Latest => {
                for p in missing {
                    out.insert(p, watermarks(p)?.1);
                }
            }
            KafkaStart::Timestamp => {
                let ts = self.start_timestamp_ms.ok_or_else(|| self.err("`start: timestamp` needs `start_timestamp_ms`"))?;
                let mut tpl = TopicPartitionList::new();
                for &p in &missing {
                    tpl.add_partition_offset(&self.topic, p, Offset::Offset(ts)).map_err(|e| self.kafka_err("bad partition", &e))?;
                }
                let found = consumer.offsets_for_times(tpl, LOOKUP_TIMEOUT).map_err(|e| self.kafka_err("cannot look up offsets by time", &e))?;
                for p in missing {
                    let o = match found.find_partition(&self.topic, p).map(|e| e.offset()) {
                        Some(Offset::Offset(o)) => o,
                        _ => watermarks(p)?.1, // nothing at or after the time: the end
                    };
                    out.insert(p, o);
                }
            }
            KafkaStart::Group => {
                let mut tpl = TopicPartitionList::new();
                for &p in &missing {
                    tpl.add_partition(&self.topic, p);
                }
                let committed = consumer.committed_offsets(tpl, LOOKUP_TIMEOUT).map_err(|e| self.kafka_err("cannot read the group's offsets", &e))?;
                for p in missing {
                    let o = match committed.find_partition(&self.topic, p).map(|e| e.offset()) {
                        Some(Offset::Offset(o)) => o,
                        _ => watermarks(p)?.0,
                    };
                    out.insert(p, o);
                }
            }
        }
        Ok(out)
    }

    fn position(&self, parts: &BTreeMap<i32, Partition>, max_ts: i64) -> SourcePosition {
        SourcePosition::encode(&KafkaPosition::Kafka {
            topic: self.topic.clone(),
            offsets: parts.iter().map(|(p, s)| (*p, s.next)).collect(),
            max_ts,
        })
    }

    /// Event time of a record.
    fn event_time(&self, value: Option<&[u8]>, record_ts: Option<i64>) -> Option<i64> {
        match &self.time {
            KafkaTime::RecordTimestamp => record_ts,
            KafkaTime::Field(f) => {
                let v: serde_json::Value = serde_json::from_slice(value?).ok()?;
                rivulet_dataflow::partition::json_path(&v, f)?.as_i64()
            }
        }
    }

    /// Read until the end (bounded) or forever, emitting into `out`.
    async fn read(self: Box<Self>, mut out: SourceContext) -> Result<(), ConnectorError> {
        if let Some(ps) = &self.restored
            && !ps.is_empty()
            && ps.iter().all(Option::is_none)
        {
            return out.finish_restored().await;
        }
        let restored_max_ts = self.restored.iter().flatten().flatten().map(|p| p.max_ts).max();
        if let Some(ts) = restored_max_ts {
            out.restore_max_ts(ts);
        }
        // Metadata and offset lookups block: off the async threads.
        let this: Arc<KafkaSource> = Arc::from(self);
        let setup = {
            let task = this.clone();
            tokio::task::spawn_blocking(move || -> Result<_, ConnectorError> {
                let this = task;
                let consumer = this.consumer()?;
                let parts = this.my_partitions(&consumer)?;
                let starts = this.start_offsets(&consumer, &parts)?;
                let mut state = BTreeMap::new();
                let mut tpl = TopicPartitionList::new();
                for (&p, &o) in &starts {
                    let end = if this.bounded {
                        Some(consumer.fetch_watermarks(&this.topic, p, LOOKUP_TIMEOUT).map_err(|e| this.kafka_err("cannot read end offsets", &e))?.1)
                    } else {
                        None
                    };
                    tpl.add_partition_offset(&this.topic, p, Offset::Offset(o)).map_err(|e| this.kafka_err("bad partition", &e))?;
                    state.insert(p, Partition { next: o, end, max_ts: i64::MIN, last_record: Instant::now() });
                }
                consumer.assign(&tpl).map_err(|e| this.kafka_err("cannot assign partitions", &e))?;
                Ok((consumer, state))
            })
            .await
            .map_err(|e| this.err(format!("Kafka source setup: {e}")))??
        };
        let (consumer, mut parts) = setup;
        let this = &*this;
        let event_time = out.has_event_time();
        let mut idle_sent = false;
        let mut last_error: Option<Instant> = None;
        // Errors with no record in between since then: a source that cannot read for
        // this long fails (the job's restart strategy takes over) instead of waiting on.
        let mut failing_since: Option<Instant> = None;
        loop {
            if this.bounded && parts.values().all(|s| s.end.is_some_and(|e| s.next >= e)) {
                out.flush().await?;
                out.finish().await?;
                return Ok(());
            }
            // A barrier first; then a message already waiting, taken without arming a
            // timer (the common case under load); else wait for either, up to a tick.
            let step = if let Some(b) = out.next_barrier().now_or_never() {
                Step::Barrier(b)
            } else if let Some(r) = consumer.recv().now_or_never() {
                Step::Message(Ok(r))
            } else {
                tokio::select! {
                    biased;
                    b = out.next_barrier() => Step::Barrier(b),
                    r = tokio::time::timeout(TICK, consumer.recv()) => Step::Message(r),
                }
            };
            match step {
                Step::Barrier(b) => {
                    let position = this.position(&parts, out.max_ts());
                    out.barrier(b, position).await?;
                    commit_for_monitoring(&consumer, &this.topic, &parts);
                    if b.stop {
                        return Ok(());
                    }
                }
                Step::Message(r) => {
                    match r {
                        Err(_) => {
                            out.flush().await?;
                            // Control records (transaction markers) advance the position
                            // without a message: a bounded read ends on the position.
                            if this.bounded
                                && let Ok(pos) = consumer.position()
                            {
                                for e in pos.elements_for_topic(&this.topic) {
                                    if let (Some(s), Offset::Offset(o)) = (parts.get_mut(&e.partition()), e.offset())
                                        && s.end.is_some_and(|end| o >= end && s.next < end)
                                    {
                                        s.next = o;
                                    }
                                }
                            }
                        }
                        Ok(Err(e)) => {
                            // librdkafka retries on its own (a broker restart is survived):
                            // report, and go on — for a while.
                            let since = *failing_since.get_or_insert_with(Instant::now);
                            if since.elapsed() > ERROR_TIMEOUT {
                                return Err(this.kafka_err(&format!("no record could be read for {} s", ERROR_TIMEOUT.as_secs()), &e));
                            }
                            if last_error.is_none_or(|t| t.elapsed() > Duration::from_secs(5)) {
                                tracing::warn!(source = %this.id, error = %e, "Kafka consumer error (retrying)");
                                last_error = Some(Instant::now());
                            }
                        }
                        Ok(Ok(msg)) => {
                            failing_since = None;
                            let p = msg.partition();
                            let Some(state) = parts.get_mut(&p) else { continue };
                            let off = msg.offset();
                            if off < state.next || state.end.is_some_and(|e| off >= e) {
                                continue;
                            }
                            state.next = off + 1;
                            if this.idle_timeout.is_some() {
                                state.last_record = Instant::now();
                            }
                            let value = msg.payload().unwrap_or_default();
                            let record_ts = msg.timestamp().to_millis();
                            let decodable = this.format != KafkaFormat::Json || serde_json::from_slice::<serde::de::IgnoredAny>(value).is_ok();
                            let ts = this.event_time(Some(value), record_ts).or(record_ts).unwrap_or(0);
                            if !decodable {
                                out.dead_letter(msg.key(), value, ts).await?;
                                continue;
                            }
                            state.max_ts = state.max_ts.max(ts);
                            out.push(msg.key(), value, ts).await?;
                            idle_sent = false;
                        }
                    }
                    if event_time {
                        let now = Instant::now();
                        let active = |s: &Partition| this.idle_timeout.is_none_or(|t| now.duration_since(s.last_record) < t);
                        let basis = parts.values().filter(|s| active(s)).map(|s| s.max_ts).min();
                        match basis {
                            Some(b) => out.set_watermark_basis((b != i64::MIN).then_some(b)),
                            None if !parts.is_empty() && !idle_sent => {
                                out.idle().await?;
                                idle_sent = true;
                            }
                            None => {}
                        }
                    }
                }
            }
        }
    }
}

/// Commit the next offsets to the group, for monitoring only (never read on restore).
fn commit_for_monitoring(consumer: &StreamConsumer, topic: &str, parts: &BTreeMap<i32, Partition>) {
    let mut tpl = TopicPartitionList::new();
    for (p, s) in parts {
        if tpl.add_partition_offset(topic, *p, Offset::Offset(s.next)).is_err() {
            return;
        }
    }
    if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
        tracing::debug!(%topic, error = %e, "group offset commit (monitoring) failed");
    }
}
