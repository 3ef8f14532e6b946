//! The connector registry: which code builds each kind of source and sink. The only
//! place that matches on the spec's connector kinds.

use std::sync::Arc;

use rivulet_checkpoint::{Committer, SinkTransaction};
use rivulet_job::{SinkSpec, SourceSpec};

use crate::context::ConnectorContext;
use crate::sink::SinkConnector;
use crate::source::SourceConnector;
use crate::{file, generator, kafka, objects, postgres, stdout};

/// The connector of a source spec.
pub fn source_connector(spec: &SourceSpec, cx: &ConnectorContext) -> Box<dyn SourceConnector> {
    match spec {
        SourceSpec::File(s) => Box::new(file::FileSourceConnector::new(s, cx)),
        SourceSpec::Generator(s) => Box::new(generator::GeneratorConnector::new(s)),
        SourceSpec::Objects(s) => Box::new(objects::ObjectSourceConnector::new(s)),
        SourceSpec::Kafka(s) => Box::new(kafka::KafkaSourceConnector::new(s, cx)),
    }
}

/// The connector of a sink spec.
pub fn sink_connector(spec: &SinkSpec, cx: &ConnectorContext) -> Box<dyn SinkConnector> {
    match spec {
        SinkSpec::File(s) => Box::new(file::FileSinkConnector::new(s, cx)),
        SinkSpec::Kafka(s) => Box::new(kafka::KafkaSinkConnector::new(s, cx)),
        SinkSpec::Postgres(s) => Box::new(postgres::PostgresConnector::new(s)),
        SinkSpec::Objects(s) => Box::new(objects::ObjectSinkConnector::new(s, cx)),
        SinkSpec::Stdout(s) => Box::new(stdout::StdoutConnector::new(s)),
    }
}

/// The committer of a sink's transaction found in a snapshot, from the transaction alone
/// (it carries everything its commit needs): for sinks the snapshot has and the job no
/// longer does, whose staged output still belongs to the snapshot.
pub fn committer_for(transaction: &SinkTransaction) -> Option<Arc<dyn Committer>> {
    kafka::committer_for(transaction).or_else(|| objects::committer_for(transaction)).or_else(|| file::committer_for(transaction))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(v: serde_json::Value) -> SinkTransaction {
        SinkTransaction::encode(&v).expect("transaction")
    }

    #[test]
    fn a_transaction_names_its_committer_by_what_it_holds() {
        let files = serde_json::json!({"dir": "/out", "pending": [], "next_seq": 1});
        assert!(committer_for(&txn(files.clone())).is_some(), "part files: the file sink's");
        let mut kafka = files.clone();
        kafka["kafka"] = serde_json::json!({"bootstrap": "b", "topic": "t", "key_field": null, "transactional_id": "x"});
        let mut objects = files;
        objects["objects"] = serde_json::json!({"url": "/bucket", "format": "jsonl"});
        assert!(committer_for(&txn(kafka)).is_some() && committer_for(&txn(objects)).is_some());
        assert!(committer_for(&SinkTransaction::none()).is_none(), "a sink that commits nothing");
    }
}
