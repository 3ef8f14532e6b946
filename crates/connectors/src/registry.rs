//! The connector registry: which code builds each kind of source and sink. The only
//! place that matches on the spec's connector kinds.

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
