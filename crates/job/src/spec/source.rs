//! Source specs: one struct per built-in source, under the `type` tag.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::EventTimeSpec;

/// A source. Each kind's fields are its own struct; the connector of the same name
/// builds it (`rivulet-connectors`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SourceSpec {
    /// A bounded file (JSON lines, CSV or text).
    File(FileSourceSpec),
    /// Generated records, bounded (`count`) or not, optionally rate-limited.
    Generator(GeneratorSpec),
    /// Objects on object storage, read in name order, whole; bounded.
    Objects(ObjectSourceSpec),
    /// A Kafka topic.
    Kafka(KafkaSourceSpec),
    /// The Nexmark benchmark's auction events, generated.
    Nexmark(NexmarkSpec),
}

impl SourceSpec {
    /// The source's id.
    pub fn id(&self) -> &str {
        match self {
            SourceSpec::File(s) => &s.id,
            SourceSpec::Generator(s) => &s.id,
            SourceSpec::Objects(s) => &s.id,
            SourceSpec::Kafka(s) => &s.id,
            SourceSpec::Nexmark(s) => &s.id,
        }
    }

    /// Its parallelism.
    pub fn parallelism(&self) -> u32 {
        match self {
            SourceSpec::File(_) | SourceSpec::Objects(_) => 1,
            SourceSpec::Generator(s) => s.parallelism.unwrap_or(1),
            SourceSpec::Kafka(s) => s.parallelism.unwrap_or(1),
            SourceSpec::Nexmark(s) => s.parallelism.unwrap_or(1),
        }
    }

    /// Its event-time settings.
    pub fn event_time(&self) -> Option<&EventTimeSpec> {
        match self {
            SourceSpec::File(s) => s.event_time.as_ref(),
            SourceSpec::Generator(s) => s.event_time.as_ref(),
            SourceSpec::Objects(s) => s.event_time.as_ref(),
            SourceSpec::Kafka(s) => s.event_time.as_ref(),
            SourceSpec::Nexmark(s) => s.event_time.as_ref(),
        }
    }

    /// The side outputs it has (a Kafka source's `dead-letter`, and a file or objects
    /// source's with `bad_records: dead_letter`).
    pub fn side_outputs(&self) -> &'static [&'static str] {
        match self {
            SourceSpec::Kafka(_) => &["dead-letter"],
            SourceSpec::File(s) if s.bad_records == BadRecords::DeadLetter => &["dead-letter"],
            SourceSpec::Objects(s) if s.bad_records == BadRecords::DeadLetter => &["dead-letter"],
            _ => &[],
        }
    }
}

/// Format of a file source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// One JSON document per line.
    Jsonl,
    /// CSV with a header row; each row becomes a JSON object.
    Csv,
    /// Each line is a record whose value is the line's text.
    Text,
}

/// What a file or objects source does with a line it cannot decode (not JSON, or no
/// usable event time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BadRecords {
    /// Fail the job, naming the file or object and the line.
    #[default]
    Fail,
    /// Send the line to the `dead-letter` side output (counted) and go on.
    DeadLetter,
}

/// CSV options.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CsvOptions {
    /// Field delimiter (default `,`).
    #[serde(default)]
    pub delimiter: Option<char>,
}

/// `type: file` — a bounded file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceSpec {
    /// Unique id.
    pub id: String,
    /// Path (relative to the spec's directory).
    pub path: String,
    /// Format.
    pub format: FileFormat,
    /// CSV options.
    #[serde(default)]
    pub csv: Option<CsvOptions>,
    /// `fail` (default) or `dead_letter`: where undecodable JSON lines go.
    #[serde(default)]
    pub bad_records: BadRecords,
    /// Event time and watermarks.
    #[serde(default)]
    pub event_time: Option<EventTimeSpec>,
}

/// What a generator produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GeneratorKind {
    /// `{"id": n, "key": "k<n % keys>", "value": n, "timestamp": start + n·interval}`.
    #[default]
    Sequence,
    /// Like sequence, but `key` and `value` drawn from a seeded random generator.
    Random,
}

/// `type: generator` — generated records.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorSpec {
    /// Unique id.
    pub id: String,
    /// Sequence or random.
    #[serde(default)]
    pub kind: GeneratorKind,
    /// Records in total (unbounded if absent).
    #[serde(default)]
    pub count: Option<u64>,
    /// Records per second in total (unlimited if absent).
    #[serde(default)]
    pub rate: Option<f64>,
    /// Number of distinct keys (default 100).
    #[serde(default)]
    pub keys: Option<u64>,
    /// Event-time step between consecutive records in ms (default 1).
    #[serde(default)]
    pub interval_ms: Option<i64>,
    /// Seed of the random kind.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Parallel instances (each produces a share of `count`).
    #[serde(default)]
    pub parallelism: Option<u32>,
    /// Event time and watermarks.
    #[serde(default)]
    pub event_time: Option<EventTimeSpec>,
}

/// A kind of Nexmark event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NexmarkEvent {
    /// A new person (`event_type` 0).
    Person,
    /// A new auction (`event_type` 1).
    Auction,
    /// A bid (`event_type` 2).
    Bid,
}

/// `type: nexmark` — the Nexmark benchmark's stream of people, auctions and bids,
/// generated deterministically from `seed` (the reference generator's model), as JSON
/// in the shape Flink's Nexmark reads. Each subtask generates its share; event time
/// comes from the generator.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NexmarkSpec {
    /// Unique id.
    pub id: String,
    /// Events in total, of every kind (unbounded if absent).
    #[serde(default)]
    pub count: Option<u64>,
    /// Events per second of wall-clock time in total (unlimited if absent).
    #[serde(default)]
    pub rate: Option<f64>,
    /// Events per second of event time (default 10000, as the reference).
    #[serde(default)]
    pub event_rate: Option<f64>,
    /// Seed of every random choice (default 0).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Event time of the first event in ms (default 2026-01-01T00:00:00Z).
    #[serde(default)]
    pub base_time_ms: Option<i64>,
    /// The kinds this source emits (default all); the others are skipped, not generated.
    #[serde(default)]
    pub events: Option<Vec<NexmarkEvent>>,
    /// Parallel instances (each generates a share of `count`).
    #[serde(default)]
    pub parallelism: Option<u32>,
    /// Watermarks (event time is the generator's).
    #[serde(default)]
    pub event_time: Option<EventTimeSpec>,
}

/// Format of objects on object storage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectFormat {
    /// One JSON value per line.
    #[default]
    Jsonl,
    /// Apache Parquet (columns from the JSON fields).
    Parquet,
}

/// `type: objects` — objects on object storage (a local directory, `file://…`,
/// `s3://bucket/prefix`), read in name order, whole; bounded.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectSourceSpec {
    /// Unique id.
    pub id: String,
    /// Location.
    pub url: String,
    /// `jsonl` (default) or `parquet`.
    #[serde(default)]
    pub format: ObjectFormat,
    /// Event time (`field`) and watermarks.
    #[serde(default)]
    pub event_time: Option<EventTimeSpec>,
    /// `fail` (default) or `dead_letter`: where undecodable JSON lines go.
    #[serde(default)]
    pub bad_records: BadRecords,
}

/// Where a Kafka source starts when no checkpoint says where it was.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KafkaStart {
    /// The oldest retained record of each partition.
    #[default]
    Earliest,
    /// Only records produced after the job starts.
    Latest,
    /// The first record at or after `start_timestamp_ms`.
    Timestamp,
    /// The consumer group's committed offsets (earliest where it has none).
    Group,
}

/// How a Kafka source reads record values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KafkaFormat {
    /// Values are passed on as they are.
    #[default]
    Bytes,
    /// Values must be JSON: others go to the `dead-letter` side output.
    Json,
}

/// `type: kafka` — a Kafka topic. Partitions are spread over the subtasks (partition p
/// goes to subtask p mod parallelism); the offsets are part of every checkpoint, so a
/// restored job reads each record once. Consumer-group offsets are committed after each
/// checkpoint for monitoring only.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceSpec {
    /// Unique id.
    pub id: String,
    /// `host:port[,host:port…]`.
    pub bootstrap_servers: String,
    /// The topic.
    pub topic: String,
    /// Where to start without a checkpoint.
    #[serde(default)]
    pub start: KafkaStart,
    /// For `start: timestamp`.
    #[serde(default)]
    pub start_timestamp_ms: Option<i64>,
    /// Consumer group (offsets committed for monitoring; `start: group` reads them).
    /// Default `rivulet-<job>-<source id>`.
    #[serde(default)]
    pub group_id: Option<String>,
    /// Read up to the end offsets found at the start, then finish (a bounded input).
    #[serde(default)]
    pub bounded: bool,
    /// `bytes` (default) or `json` (undecodable values go to the `dead-letter` side
    /// output, counted).
    #[serde(default)]
    pub format: KafkaFormat,
    /// Parallel instances.
    #[serde(default)]
    pub parallelism: Option<u32>,
    /// Event time: the record's timestamp, or the JSON field `field`; watermarks per
    /// partition (the source's is their minimum; idle partitions don't hold it back).
    #[serde(default)]
    pub event_time: Option<EventTimeSpec>,
    /// Extra librdkafka consumer properties (e.g. security settings).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}
