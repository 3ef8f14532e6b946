//! The at-least-once Kafka sink: each record produced as it comes, every delivery
//! acknowledged at each barrier before the sink acks it (a failed delivery fails the
//! sink, and the job restarts from its last checkpoint: nothing is lost, a replay may
//! write records of the last interval again).

use std::sync::Mutex;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, Producer as _};
use rivulet_checkpoint::SinkTransaction;
use rivulet_dataflow::{Barrier, Batch, NodeRole};

use super::kafka_key;
use super::transactional::KafkaCommitTarget;
use crate::error::ConnectorError;
use crate::sink::Sink;

const TIMEOUT: Duration = Duration::from_secs(30);

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

/// Records become Kafka records at once (at-least-once: each barrier waits until every
/// one is acknowledged, and fails if any delivery failed).
pub(crate) struct DirectSink {
    id: String,
    producer: rdkafka::producer::ThreadedProducer<DeliveryCheck>,
    topic: String,
    key_field: Option<String>,
}

impl DirectSink {
    /// A producer for `t` (its transactional id unused).
    pub(crate) fn open(id: &str, t: &KafkaCommitTarget) -> Result<Box<dyn Sink>, ConnectorError> {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &t.bootstrap).set("linger.ms", "5").set("enable.idempotence", "true");
        // Secret references (anchored when the sink was built) are resolved only here.
        let properties = crate::secrets::resolved(&t.properties, std::path::Path::new("/"))
            .map_err(|e| ConnectorError::failed(NodeRole::Sink, id, e.to_string()))?;
        for (k, v) in &properties {
            cfg.set(k, v);
        }
        let producer = cfg.create_with_context(DeliveryCheck::default()).map_err(|e| ConnectorError::failed(NodeRole::Sink, id, e.to_string()))?;
        Ok(Box::new(DirectSink { id: id.to_owned(), producer, topic: t.topic.clone(), key_field: t.key_field.clone() }))
    }

    fn err(&self, message: String) -> ConnectorError {
        ConnectorError::failed(NodeRole::Sink, &self.id, message)
    }

    fn produce(&self, key: Option<&[u8]>, value: &[u8]) -> Result<(), ConnectorError> {
        let key = kafka_key(key, value, self.key_field.as_deref());
        let mut record = BaseRecord::<[u8], [u8], ()>::with_opaque_to(&self.topic, ()).payload(value);
        if let Some(k) = &key {
            record = record.key(k.as_ref());
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    std::thread::sleep(Duration::from_millis(5));
                    record = back;
                }
                Err((e, _)) => return Err(self.err(format!("write failed: produce to {}: {e}", self.topic))),
            }
        }
    }

    /// Wait until every record is acknowledged; fail if any delivery failed.
    fn flush(&self) -> Result<SinkTransaction, ConnectorError> {
        self.producer.flush(TIMEOUT).map_err(|e| self.err(format!("flush failed: flush to {}: {e}", self.topic)))?;
        let ctx = self.producer.context();
        let failed = ctx.failed.swap(0, std::sync::atomic::Ordering::Relaxed);
        if failed > 0 {
            let last = ctx.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone().unwrap_or_default();
            return Err(self.err(format!("flush failed: {failed} records were not delivered to {} (last error: {last})", self.topic)));
        }
        Ok(SinkTransaction::none())
    }
}

impl Sink for DirectSink {
    fn write(&mut self, batch: &Batch) -> Result<(), ConnectorError> {
        for r in batch.records() {
            let r = r.map_err(|e| self.err(e.to_string()))?;
            self.produce(r.key, r.value)?;
        }
        Ok(())
    }

    fn prepare_commit(&mut self, _barrier: Barrier, _committed: Option<u64>) -> Result<SinkTransaction, ConnectorError> {
        // Everything before the barrier is acknowledged before the sink acks it.
        self.flush()
    }

    fn finish(&mut self, _committed: Option<u64>) -> Result<SinkTransaction, ConnectorError> {
        self.flush()
    }
}
