//! The blackhole sink: records are dropped (the sink task counts them in its
//! `records_in` metric), so a benchmark measures the job, not its output.

use std::sync::Arc;

use rivulet_checkpoint::{Committer, SinkEntry, SinkTransaction};
use rivulet_dataflow::{Barrier, Batch};
use rivulet_job::BlackholeSinkSpec;

use crate::BoxFuture;
use crate::error::ConnectorError;
use crate::sink::{Sink, SinkConnector};

/// `type: blackhole` sinks.
pub(crate) struct BlackholeConnector;

impl BlackholeConnector {
    pub(crate) fn new(_spec: &BlackholeSinkSpec) -> Self {
        BlackholeConnector
    }
}

impl SinkConnector for BlackholeConnector {
    fn prepare<'a>(&'a self, _restored: Option<&'a [SinkEntry]>) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(async { Ok(()) })
    }

    fn committer(&self) -> Option<Arc<dyn Committer>> {
        None
    }

    fn open(&self, _subtask: u32, _restored: Option<&SinkEntry>) -> Result<Box<dyn Sink>, ConnectorError> {
        Ok(Box::new(Blackhole))
    }
}

struct Blackhole;

impl Sink for Blackhole {
    fn write(&mut self, _batch: &Batch) -> Result<(), ConnectorError> {
        Ok(())
    }

    fn prepare_commit(&mut self, _barrier: Barrier, _committed: Option<u64>) -> Result<SinkTransaction, ConnectorError> {
        Ok(SinkTransaction::none())
    }

    fn finish(&mut self, _committed: Option<u64>) -> Result<SinkTransaction, ConnectorError> {
        Ok(SinkTransaction::none())
    }
}
