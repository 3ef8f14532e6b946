//! Sink specs: one struct per built-in sink, under the `type` tag.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::source::ObjectFormat;

/// A sink. Each kind's fields are its own struct; the connector of the same name builds
/// it (`rivulet-connectors`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SinkSpec {
    /// Part files of JSON lines in a directory, exactly-once.
    File(FileSinkSpec),
    /// A Kafka topic, exactly-once (or at-least-once).
    Kafka(KafkaSinkSpec),
    /// Upserts into a PostgreSQL table.
    Postgres(PostgresSinkSpec),
    /// Part objects on object storage, exactly-once.
    Objects(ObjectSinkSpec),
    /// Lines on stdout.
    Stdout(StdoutSinkSpec),
    /// Records counted and dropped (benchmarks).
    Blackhole(BlackholeSinkSpec),
}

impl SinkSpec {
    /// The sink's id.
    pub fn id(&self) -> &str {
        match self {
            SinkSpec::File(s) => &s.id,
            SinkSpec::Kafka(s) => &s.id,
            SinkSpec::Postgres(s) => &s.id,
            SinkSpec::Objects(s) => &s.id,
            SinkSpec::Stdout(s) => &s.id,
            SinkSpec::Blackhole(s) => &s.id,
        }
    }

    /// Its inputs.
    pub fn inputs(&self) -> &[String] {
        match self {
            SinkSpec::File(s) => &s.inputs,
            SinkSpec::Kafka(s) => &s.inputs,
            SinkSpec::Postgres(s) => &s.inputs,
            SinkSpec::Objects(s) => &s.inputs,
            SinkSpec::Stdout(s) => &s.inputs,
            SinkSpec::Blackhole(s) => &s.inputs,
        }
    }
}

/// `type: file` — each record's value as one line (JSON lines) in part files of a
/// directory. Part files become visible when the checkpoint covering them completes
/// (exactly-once); a fresh (not restored) run clears earlier part files.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkSpec {
    /// Unique id.
    pub id: String,
    /// Upstream ids.
    pub inputs: Vec<String>,
    /// Output directory of part files (relative to the spec's directory).
    pub path: String,
}

/// The Kafka sink's guarantee.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KafkaDelivery {
    /// Transactions committed when the checkpoint completes.
    #[default]
    ExactlyOnce,
    /// Produced at once; flushed at barriers.
    AtLeastOnce,
}

/// `type: kafka` — each record to a Kafka topic, its key the record's key. Exactly-once
/// by default: records are spooled locally and produced in one transaction per
/// checkpoint once it completes; read the topic with `isolation.level=read_committed`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkSpec {
    /// Unique id.
    pub id: String,
    /// Upstream ids.
    pub inputs: Vec<String>,
    /// `host:port[,host:port…]`.
    pub bootstrap_servers: String,
    /// The topic (it must exist).
    pub topic: String,
    /// Take the Kafka key from this JSON field of the value instead of the record's key
    /// (for records whose producer set no key).
    #[serde(default)]
    pub key_field: Option<String>,
    /// `exactly_once` (default: transactions per completed checkpoint) or
    /// `at_least_once` (produced as records come, flushed at every barrier: lower
    /// latency; a restart may write records of the last checkpoint interval again).
    #[serde(default)]
    pub delivery: KafkaDelivery,
    /// Spool directory (default: `<data dir>/kafka-spool/<job>/<sink id>`).
    #[serde(default)]
    pub spool_dir: Option<String>,
    /// Extra librdkafka producer properties.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// `type: postgres` — upserts each record's value (a JSON object: one row, its fields
/// the columns) into a table by key, batched; flushed at every checkpoint barrier, so a
/// replay after recovery rewrites the same rows and the table converges.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSinkSpec {
    /// Unique id.
    pub id: String,
    /// Upstream ids.
    pub inputs: Vec<String>,
    /// `postgres://user[:password]@host:port/database`.
    pub url: String,
    /// Table (`name` or `schema.name`); it must exist, with a primary key or unique
    /// constraint on `key`.
    pub table: String,
    /// Key columns.
    pub key: Vec<String>,
    /// Rows per statement (default 500).
    #[serde(default)]
    pub batch_size: Option<usize>,
}

/// `type: objects` — each record's value into part objects on object storage (a local
/// directory, `file://…` or `s3://bucket/prefix`), as JSON lines or Parquet, rolled by
/// size and time; exactly-once: a part appears (whole) when the checkpoint covering it
/// completes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectSinkSpec {
    /// Unique id.
    pub id: String,
    /// Upstream ids.
    pub inputs: Vec<String>,
    /// Location.
    pub url: String,
    /// `jsonl` (default) or `parquet`.
    #[serde(default)]
    pub format: ObjectFormat,
    /// Roll to a new part after this many bytes of JSON (default 64 MiB).
    #[serde(default)]
    pub roll_size_bytes: Option<u64>,
    /// Roll to a new part after this long (default: only at checkpoints).
    #[serde(default)]
    pub roll_interval_ms: Option<u64>,
    /// Spool directory (default: `<data dir>/object-spool/<job>/<sink id>`).
    #[serde(default)]
    pub spool_dir: Option<String>,
}

/// `type: stdout` — each record's value as one line on stdout.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutSinkSpec {
    /// Unique id.
    pub id: String,
    /// Upstream ids.
    pub inputs: Vec<String>,
}

/// `type: blackhole` — records are counted (the sink's `records_in` metric) and dropped,
/// for measuring a job without the cost of its output.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BlackholeSinkSpec {
    /// Unique id.
    pub id: String,
    /// Upstream ids.
    pub inputs: Vec<String>,
}
