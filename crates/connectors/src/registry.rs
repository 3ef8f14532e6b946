//! The connector registry: which code builds each kind of source and sink. The only
//! place that matches on the spec's connector kinds.

use std::sync::Arc;

use rivulet_checkpoint::{Committer, SinkTransaction};
use rivulet_job::{JobSpec, SinkSpec, SourceSpec};

use crate::access::{Access, Accessed, Place, PlaceField};
use crate::context::ConnectorContext;
use crate::sink::SinkConnector;
use crate::source::SourceConnector;
use crate::{blackhole, file, generator, kafka, nexmark, objects, postgres, stdout};

/// The connector of a source spec.
pub fn source_connector(spec: &SourceSpec, cx: &ConnectorContext) -> Box<dyn SourceConnector> {
    match spec {
        SourceSpec::File(s) => Box::new(file::FileSourceConnector::new(s, cx)),
        SourceSpec::Generator(s) => Box::new(generator::GeneratorConnector::new(s)),
        SourceSpec::Objects(s) => Box::new(objects::ObjectSourceConnector::new(s, cx)),
        SourceSpec::Kafka(s) => Box::new(kafka::KafkaSourceConnector::new(s, cx)),
        SourceSpec::Nexmark(s) => Box::new(nexmark::NexmarkConnector::new(s)),
    }
}

/// The connector of a sink spec.
pub fn sink_connector(spec: &SinkSpec, cx: &ConnectorContext) -> Box<dyn SinkConnector> {
    match spec {
        SinkSpec::File(s) => Box::new(file::FileSinkConnector::new(s, cx)),
        SinkSpec::Kafka(s) => Box::new(kafka::KafkaSinkConnector::new(s, cx)),
        SinkSpec::Postgres(s) => Box::new(postgres::PostgresConnector::new(s, cx)),
        SinkSpec::Objects(s) => Box::new(objects::ObjectSinkConnector::new(s, cx)),
        SinkSpec::Stdout(s) => Box::new(stdout::StdoutConnector::new(s)),
        SinkSpec::Blackhole(s) => Box::new(blackhole::BlackholeConnector::new(s)),
    }
}

/// The fields of `spec`'s sources and sinks that name files, directories or objects
/// locations, each with its field name, borrowed so a checker can resolve them in place.
pub fn places_mut(spec: &mut JobSpec) -> Vec<PlaceField<'_>> {
    let mut out = Vec::new();
    for (i, s) in spec.sources.iter_mut().enumerate() {
        let id = s.id().to_owned();
        let list: Vec<(&str, Place, &mut String)> = match s {
            SourceSpec::File(s) => file::source_places(s),
            SourceSpec::Objects(s) => objects::source_places(s),
            SourceSpec::Generator(_) | SourceSpec::Nexmark(_) | SourceSpec::Kafka(_) => Vec::new(),
        };
        out.extend(list.into_iter().map(|(field, place, value)| PlaceField { at: format!("sources[{i}] (id '{id}').{field}"), place, value }));
    }
    for (i, s) in spec.sinks.iter_mut().enumerate() {
        let id = s.id().to_owned();
        let list: Vec<(&str, Place, &mut String)> = match s {
            SinkSpec::File(s) => file::sink_places(s),
            SinkSpec::Kafka(s) => kafka::sink_places(s),
            SinkSpec::Objects(s) => objects::sink_places(s),
            SinkSpec::Postgres(_) | SinkSpec::Stdout(_) | SinkSpec::Blackhole(_) => Vec::new(),
        };
        out.extend(list.into_iter().map(|(field, place, value)| PlaceField { at: format!("sinks[{i}] (id '{id}').{field}"), place, value }));
    }
    out
}

/// What the sources and sinks of `spec` touch outside the process other than the places
/// of [`places_mut`]: hosts they connect to, client properties they set.
pub fn connections(spec: &JobSpec) -> Vec<Accessed> {
    let mut out = Vec::new();
    for (i, s) in spec.sources.iter().enumerate() {
        let list: Vec<(&str, Access)> = match s {
            SourceSpec::Kafka(s) => kafka::source_accesses(s),
            SourceSpec::File(_) | SourceSpec::Generator(_) | SourceSpec::Nexmark(_) | SourceSpec::Objects(_) => Vec::new(),
        };
        out.extend(list.into_iter().map(|(field, access)| Accessed { at: format!("sources[{i}] (id '{}').{field}", s.id()), access }));
    }
    for (i, s) in spec.sinks.iter().enumerate() {
        let list: Vec<(&str, Access)> = match s {
            SinkSpec::Kafka(s) => kafka::sink_accesses(s),
            SinkSpec::Postgres(s) => postgres::sink_accesses(s),
            SinkSpec::File(_) | SinkSpec::Objects(_) | SinkSpec::Stdout(_) | SinkSpec::Blackhole(_) => Vec::new(),
        };
        out.extend(list.into_iter().map(|(field, access)| Accessed { at: format!("sinks[{i}] (id '{}').{field}", s.id()), access }));
    }
    out
}

/// Everything the sources and sinks of `spec` touch outside the process, each with its
/// field: its places (as written) and its connections.
pub fn accesses(spec: &JobSpec) -> Vec<Accessed> {
    let mut copy = spec.clone();
    let mut out: Vec<Accessed> = places_mut(&mut copy).into_iter().map(|f| Accessed { access: f.place.access(f.value.clone()), at: f.at }).collect();
    out.extend(connections(spec));
    out
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
    fn every_connector_states_what_it_touches() {
        let yaml = concat!(
            "name: j\nsources:\n",
            "  - {id: f, type: file, path: in.jsonl, format: jsonl}\n",
            "  - {id: g, type: generator}\n",
            "  - {id: k, type: kafka, bootstrap_servers: 'b1:9092,b2:9093', topic: t, properties: {plugin.library.paths: x, linger.ms: '5'}}\n",
            "sinks:\n",
            "  - {id: o, type: file, path: out, inputs: [f]}\n",
            "  - {id: p, type: postgres, url: 'postgres://u@db.example:6543/d', table: t, key: [k], inputs: [f]}\n",
            "  - {id: s, type: objects, url: 's3://b/p', spool_dir: sp, inputs: [f]}\n",
        );
        let spec = JobSpec::parse(yaml, "t", &rivulet_job::Params::default()).expect("spec");
        let got: Vec<(String, Access)> = accesses(&spec).into_iter().map(|a| (a.at, a.access)).collect();
        let want = vec![
            ("sources[0] (id 'f').path", Access::ReadFile("in.jsonl".into())),
            ("sinks[0] (id 'o').path", Access::WriteDir("out".into())),
            ("sinks[2] (id 's').url", Access::Location { url: "s3://b/p".into(), writes: true }),
            ("sinks[2] (id 's').spool_dir", Access::WriteDir("sp".into())),
            ("sources[2] (id 'k').bootstrap_servers", Access::Connect { host: "b1".into(), port: Some(9092) }),
            ("sources[2] (id 'k').bootstrap_servers", Access::Connect { host: "b2".into(), port: Some(9093) }),
            ("sources[2] (id 'k').properties", Access::ClientProperty { key: "linger.ms".into(), safe: true }),
            ("sources[2] (id 'k').properties", Access::ClientProperty { key: "plugin.library.paths".into(), safe: false }),
            ("sinks[1] (id 'p').url", Access::Connect { host: "db.example".into(), port: Some(6543) }),
        ];
        let want: Vec<(String, Access)> = want.into_iter().map(|(at, a)| (at.to_owned(), a)).collect();
        assert_eq!(got, want);
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
