//! The commit step of two-phase commit, as the protocol sees it: each transactional sink
//! registers a [`Committer`] under its id; the coordinator calls it once the snapshot
//! holding the sink's transaction is complete, and again (idempotently) on restore.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::CheckpointError;
use crate::manifest::{SinkEntry, SinkTransaction};

/// Makes a sink's staged output visible.
pub trait Committer: Send + Sync {
    /// Commit `transaction` (what the sink acked at a barrier). Must be idempotent: after
    /// a crash the same transaction may be committed again. Returns how many units (part
    /// files, Kafka transactions…) became visible now.
    fn commit(&self, transaction: &SinkTransaction) -> Result<u64, CheckpointError>;

    /// Before a snapshot is chosen for restore: whether what the transaction needs is
    /// still there (`Corrupt` makes restore fall back to an older snapshot).
    fn verify(&self, transaction: &SinkTransaction) -> Result<(), CheckpointError> {
        let _ = transaction;
        Ok(())
    }
}

/// Finds the committer of a transaction from the transaction alone (for sinks a snapshot
/// has and the job no longer does: their staged output still belongs to it).
pub type CommitterOf = fn(&SinkTransaction) -> Option<Arc<dyn Committer>>;

/// The committers of a job's sinks, by sink id, and what commits the transactions of
/// sinks without one.
#[derive(Clone, Default)]
pub struct Committers {
    by_sink: BTreeMap<String, Arc<dyn Committer>>,
    fallback: Option<CommitterOf>,
}

impl std::fmt::Debug for Committers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.by_sink.keys()).finish()
    }
}

impl Committers {
    /// No committer.
    pub fn new() -> Self {
        Committers::default()
    }

    /// No committer, but `fallback` for every transaction.
    pub fn with_fallback(fallback: CommitterOf) -> Self {
        Committers { by_sink: BTreeMap::new(), fallback: Some(fallback) }
    }

    /// Register the committer of sink `sink`.
    pub fn register(&mut self, sink: &str, committer: Arc<dyn Committer>) {
        self.by_sink.insert(sink.to_owned(), committer);
    }

    /// The committer of `entry`: its sink's, else the fallback's for its transaction.
    pub fn of(&self, entry: &SinkEntry) -> Option<Arc<dyn Committer>> {
        self.by_sink.get(&entry.id).cloned().or_else(|| self.fallback.and_then(|f| f(&entry.transaction)))
    }

    /// Commit every entry that has a committer (the others committed nothing).
    pub fn commit_all(&self, sinks: &[SinkEntry]) -> Result<u64, CheckpointError> {
        let mut n = 0;
        for s in sinks {
            if let Some(c) = self.of(s) {
                n += c.commit(&s.transaction)?;
            }
        }
        Ok(n)
    }

    /// Verify every entry that has a committer.
    pub fn verify_all(&self, sinks: &[SinkEntry]) -> Result<(), CheckpointError> {
        for s in sinks {
            if let Some(c) = self.of(s) {
                c.verify(&s.transaction)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recording(Mutex<Vec<String>>);

    impl Committer for Recording {
        fn commit(&self, t: &SinkTransaction) -> Result<u64, CheckpointError> {
            let v: serde_json::Value = t.decode()?;
            self.0.lock().expect("lock").push(v["part"].to_string());
            Ok(1)
        }
        fn verify(&self, t: &SinkTransaction) -> Result<(), CheckpointError> {
            let v: serde_json::Value = t.decode()?;
            if v["part"] == "gone" { Err(CheckpointError::Corrupt { path: "gone".into(), reason: "missing".into() }) } else { Ok(()) }
        }
    }

    fn entry(id: &str, part: &str) -> SinkEntry {
        SinkEntry {
            id: id.into(),
            subtask: 0,
            finished: false,
            transaction: SinkTransaction::encode(&serde_json::json!({ "part": part })).expect("t"),
        }
    }

    #[test]
    fn entries_go_to_their_sinks_committer_and_others_are_left_alone() {
        let rec = Arc::new(Recording::default());
        let mut c = Committers::new();
        c.register("files", rec.clone());
        let n = c.commit_all(&[entry("files", "a"), entry("stdout", "x"), entry("files", "b")]).expect("commit");
        assert_eq!(n, 2);
        assert_eq!(*rec.0.lock().expect("lock"), vec!["\"a\"".to_owned(), "\"b\"".to_owned()]);
        assert!(c.verify_all(&[entry("files", "a")]).is_ok());
        assert!(matches!(c.verify_all(&[entry("files", "gone")]), Err(CheckpointError::Corrupt { .. })));
    }

    #[test]
    fn a_fallback_commits_what_no_sink_of_the_job_claims() {
        fn recording(_: &SinkTransaction) -> Option<Arc<dyn Committer>> {
            Some(Arc::new(Recording::default()))
        }
        let mut c = Committers::with_fallback(recording);
        let rec = Arc::new(Recording::default());
        c.register("files", rec.clone());
        assert_eq!(c.commit_all(&[entry("files", "a"), entry("removed", "b")]).expect("commit"), 2);
        assert_eq!(*rec.0.lock().expect("lock"), vec!["\"a\"".to_owned()], "a registered committer wins");
    }
}
