//! Kafka: the source (partitions over subtasks, offsets in checkpoints), the
//! exactly-once sink (part files produced in one transaction per completed checkpoint)
//! and the at-least-once sink (produced at once, flushed at barriers). A record's Kafka
//! key is its record key (or, with `key_field`, a JSON field of its value).

mod bootstrap;
mod direct;
mod source;
mod transactional;

pub(crate) use source::KafkaSourceConnector;
pub(crate) use transactional::committer_for;

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

use rivulet_checkpoint::{Committer, SinkEntry};
use rivulet_dataflow::{NodeRole, blocking};
use rivulet_job::{KafkaDelivery, KafkaSinkSpec, KafkaSourceSpec};

use crate::BoxFuture;
use crate::access::{Access, Place};
use crate::context::ConnectorContext;
use crate::error::ConnectorError;
use crate::part_files::prepare_dir;
use crate::sink::{Sink, SinkConnector};
use transactional::{KafkaCommitTarget, KafkaCommitter};

/// librdkafka properties a job sent to a server may set: security, timeouts, batching,
/// compression, fetch sizes. Not on it, among others: `plugin.library.paths` (loads a
/// library), `sasl.kerberos.kinit.cmd` (runs a command), `*.location` (reads files) and
/// `bootstrap.servers` (changes where the client connects).
const SAFE_PROPERTIES: &[&str] = &[
    "acks",
    "api.version.request",
    "auto.offset.reset",
    "batch.num.messages",
    "batch.size",
    "broker.address.family",
    "check.crcs",
    "client.id",
    "client.rack",
    "compression.codec",
    "compression.level",
    "compression.type",
    "connections.max.idle.ms",
    "delivery.timeout.ms",
    "enable.idempotence",
    "enable.ssl.certificate.verification",
    "fetch.max.bytes",
    "fetch.message.max.bytes",
    "fetch.min.bytes",
    "fetch.wait.max.ms",
    "heartbeat.interval.ms",
    "isolation.level",
    "linger.ms",
    "max.in.flight.requests.per.connection",
    "max.partition.fetch.bytes",
    "max.poll.interval.ms",
    "message.max.bytes",
    "message.timeout.ms",
    "metadata.max.age.ms",
    "partitioner",
    "queue.buffering.max.kbytes",
    "queue.buffering.max.messages",
    "queue.buffering.max.ms",
    "queued.max.messages.kbytes",
    "queued.min.messages",
    "receive.message.max.bytes",
    "reconnect.backoff.max.ms",
    "reconnect.backoff.ms",
    "request.timeout.ms",
    "retries",
    "retry.backoff.max.ms",
    "retry.backoff.ms",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.password",
    "sasl.username",
    "security.protocol",
    "session.timeout.ms",
    "socket.connection.setup.timeout.ms",
    "socket.keepalive.enable",
    "socket.timeout.ms",
    "ssl.endpoint.identification.algorithm",
    "topic.metadata.refresh.interval.ms",
    "transaction.timeout.ms",
];

/// The brokers a Kafka connector connects to and the properties it sets.
fn client_accesses(bootstrap: &str, properties: &std::collections::BTreeMap<String, String>) -> Vec<(&'static str, Access)> {
    let mut out: Vec<(&'static str, Access)> = match bootstrap::parse_bootstrap(bootstrap) {
        Ok(brokers) => brokers.into_iter().map(|b| ("bootstrap_servers", Access::Connect { host: b.host, port: Some(b.port) })).collect(),
        Err(why) => vec![("bootstrap_servers", Access::UncheckableEndpoint(why))],
    };
    out.extend(properties.keys().map(|k| ("properties", Access::ClientProperty { key: k.clone(), safe: SAFE_PROPERTIES.contains(&k.as_str()) })));
    out
}

/// A Kafka source connects to its brokers with its properties.
pub(crate) fn source_accesses(spec: &KafkaSourceSpec) -> Vec<(&'static str, Access)> {
    client_accesses(&spec.bootstrap_servers, &spec.properties)
}

/// A Kafka sink connects to its brokers with its properties.
pub(crate) fn sink_accesses(spec: &KafkaSinkSpec) -> Vec<(&'static str, Access)> {
    client_accesses(&spec.bootstrap_servers, &spec.properties)
}

/// A Kafka sink spools below its spool directory.
pub(crate) fn sink_places(spec: &mut KafkaSinkSpec) -> Vec<(&'static str, Place, &mut String)> {
    spec.spool_dir.as_mut().map(|d| ("spool_dir", Place::WriteDir, d)).into_iter().collect()
}

/// The Kafka key of a record: the JSON field `field` of its value when the spec names
/// one (a string as is, anything else as JSON), else the record's own key (borrowed).
fn kafka_key<'a>(key: Option<&'a [u8]>, value: &[u8], field: Option<&str>) -> Option<Cow<'a, [u8]>> {
    let Some(field) = field else { return key.map(Cow::Borrowed) };
    let v: serde_json::Value = serde_json::from_slice(value).ok()?;
    Some(Cow::Owned(match v.get(field)? {
        serde_json::Value::String(s) => s.clone().into_bytes(),
        other => other.to_string().into_bytes(),
    }))
}

/// `type: kafka` sinks.
pub(crate) struct KafkaSinkConnector {
    id: String,
    delivery: KafkaDelivery,
    target: KafkaCommitTarget,
    spool: PathBuf,
}

impl KafkaSinkConnector {
    pub(crate) fn new(spec: &KafkaSinkSpec, cx: &ConnectorContext) -> Self {
        let target = KafkaCommitTarget {
            bootstrap: spec.bootstrap_servers.clone(),
            topic: spec.topic.clone(),
            key_field: spec.key_field.clone(),
            // Sinks run at parallelism 1 today: subtask 0.
            transactional_id: format!("rivulet-{}-{}-0", rivulet_job::file_safe(&cx.job), spec.id),
            // References stay references (the transaction holds them, not the secret),
            // anchored to the spec's directory for a commit after a restore.
            properties: crate::secrets::anchored(&spec.properties, &cx.base_dir),
        };
        KafkaSinkConnector {
            id: spec.id.clone(),
            delivery: spec.delivery,
            target,
            spool: cx.spool_dir("kafka-spool", &spec.id, spec.spool_dir.as_deref()),
        }
    }
}

impl SinkConnector for KafkaSinkConnector {
    fn prepare<'a>(&'a self, restored: Option<&'a [SinkEntry]>) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(async move {
            if self.delivery == KafkaDelivery::AtLeastOnce {
                return Ok(());
            }
            blocking(|| prepare_dir(&self.spool, restored))
                .map_err(|e| ConnectorError::failed(NodeRole::Sink, &self.id, format!("cannot prepare {}: {e}", self.spool.display())))
        })
    }

    fn committer(&self) -> Option<Arc<dyn Committer>> {
        match self.delivery {
            KafkaDelivery::ExactlyOnce => Some(Arc::new(KafkaCommitter)),
            KafkaDelivery::AtLeastOnce => None,
        }
    }

    fn open(&self, subtask: u32, restored: Option<&SinkEntry>) -> Result<Box<dyn Sink>, ConnectorError> {
        match self.delivery {
            KafkaDelivery::ExactlyOnce => transactional::spool_sink(&self.id, &self.spool, subtask, restored, self.target.clone()),
            KafkaDelivery::AtLeastOnce => direct::DirectSink::open(&self.id, &self.target),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_come_from_the_record_unless_a_field_is_named() {
        let key = |k: Option<&[u8]>, v: &[u8], f: Option<&str>| super::kafka_key(k, v, f).map(|c| c.into_owned());
        assert_eq!(key(Some(b"k1"), br#"{"c":"x"}"#, None), Some(b"k1".to_vec()));
        assert_eq!(key(None, br#"{"c":"x"}"#, None), None);
        assert_eq!(key(Some(b"k1"), br#"{"c":"x"}"#, Some("c")), Some(b"x".to_vec()));
        assert_eq!(key(None, br#"{"c":3}"#, Some("c")), Some(b"3".to_vec()));
    }
}
