//! The stdout sink: each record's value as one line on the process's stdout.

use std::io::Write as _;
use std::sync::Arc;

use rivulet_checkpoint::{Committer, SinkEntry, SinkTransaction};
use rivulet_dataflow::{Barrier, Batch, NodeRole};
use rivulet_job::StdoutSinkSpec;

use crate::BoxFuture;
use crate::error::ConnectorError;
use crate::sink::{Sink, SinkConnector};

/// `type: stdout` sinks.
pub(crate) struct StdoutConnector {
    id: String,
}

impl StdoutConnector {
    pub(crate) fn new(spec: &StdoutSinkSpec) -> Self {
        StdoutConnector { id: spec.id.clone() }
    }
}

impl SinkConnector for StdoutConnector {
    fn prepare<'a>(&'a self, _restored: Option<&'a [SinkEntry]>) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(async { Ok(()) })
    }

    fn committer(&self) -> Option<Arc<dyn Committer>> {
        None
    }

    fn open(&self, _subtask: u32, _restored: Option<&SinkEntry>) -> Result<Box<dyn Sink>, ConnectorError> {
        Ok(Box::new(StdoutSink { id: self.id.clone(), out: std::io::LineWriter::new(std::io::stdout()) }))
    }
}

struct StdoutSink {
    id: String,
    out: std::io::LineWriter<std::io::Stdout>,
}

impl StdoutSink {
    fn flush(&mut self) -> Result<SinkTransaction, ConnectorError> {
        self.out.flush().map_err(|e| ConnectorError::failed(NodeRole::Sink, &self.id, format!("flush failed: {e}")))?;
        Ok(SinkTransaction::none())
    }
}

impl Sink for StdoutSink {
    fn write(&mut self, batch: &Batch) -> Result<(), ConnectorError> {
        for r in batch.records() {
            let r = r.map_err(|e| ConnectorError::failed(NodeRole::Sink, &self.id, e.to_string()))?;
            self.out
                .write_all(r.value)
                .and_then(|()| self.out.write_all(b"\n"))
                .map_err(|e| ConnectorError::failed(NodeRole::Sink, &self.id, format!("write failed: {e}")))?;
        }
        Ok(())
    }

    fn prepare_commit(&mut self, _barrier: Barrier, _committed: Option<u64>) -> Result<SinkTransaction, ConnectorError> {
        self.flush()
    }

    fn finish(&mut self, _committed: Option<u64>) -> Result<SinkTransaction, ConnectorError> {
        self.flush()
    }
}
