//! The coordinator with stand-in tasks: what completes a snapshot, what aborts one, what
//! it commits, what it keeps.

use std::sync::Mutex;

use rivulet_dataflow::SnapshotKind;

use super::*;
use crate::commit::Committer;
use crate::manifest::{SinkEntry, SinkTransaction, SourceEntry, SourcePosition, SubtaskState};
use crate::storage::CheckpointStorage;

#[derive(Default)]
struct Recording(Mutex<Vec<u64>>);

impl Committer for Recording {
    fn commit(&self, t: &SinkTransaction) -> Result<u64, CheckpointError> {
        let v: serde_json::Value = t.decode()?;
        self.0.lock().expect("lock").push(v["part"].as_u64().unwrap_or(0));
        Ok(1)
    }
}

fn key(role: NodeRole, id: &str) -> TaskKey {
    TaskKey { role, id: id.into(), subtask: 0 }
}

fn source_at(position: SourcePosition) -> SnapshotPart {
    SnapshotPart::Source(SourceEntry { id: "src".into(), subtask: 0, parallelism: 1, position })
}

fn source(pos: u64) -> SnapshotPart {
    source_at(SourcePosition::encode(&pos))
}

fn sink(part: u64, finished: bool) -> SnapshotPart {
    let transaction = SinkTransaction::encode(&serde_json::json!({ "part": part })).expect("txn");
    SnapshotPart::Sink(SinkEntry { id: "out".into(), subtask: 0, finished, transaction })
}

fn operator(finished: bool) -> SnapshotPart {
    SnapshotPart::Operator(OperatorPart {
        uid: "op".into(),
        plugin: "p".into(),
        plugin_digest: "sha256:x".into(),
        parallelism: 1,
        state_version: 1,
        state: SubtaskState { subtask: 0, key_groups: (0, 128), finished, state: None, db: Vec::new() },
    })
}

struct Harness {
    _dir: tempfile::TempDir,
    storage: CheckpointStorage,
    coordinator: Coordinator,
    barriers: mpsc::UnboundedReceiver<Barrier>,
    committed: Arc<Recording>,
    ledger: Arc<Ledger>,
}

async fn harness(configure: impl FnOnce(&mut CheckpointConfig)) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = CheckpointStorage::open(dir.path().to_str().expect("utf8")).expect("storage");
    let mut cfg = CheckpointConfig::new(storage.clone());
    configure(&mut cfg);
    let (tx, barriers) = mpsc::unbounded_channel();
    let expected = [key(NodeRole::Source, "src"), key(NodeRole::Operator, "op"), key(NodeRole::Sink, "out")].into_iter().collect();
    let committed = Arc::new(Recording::default());
    let mut committers = Committers::new();
    committers.register("out", committed.clone());
    let ledger = Arc::new(Ledger::default());
    let coordinator = Coordinator::start(cfg, "job", 128, vec![tx], expected, ledger.clone(), committers).await.expect("coordinator");
    Harness { _dir: dir, storage, coordinator, barriers, committed, ledger }
}

async fn ack(c: &mut Coordinator, id: u64, part: SnapshotPart) -> Option<CoordinatorOutcome> {
    c.on_report(TaskReport::Ack { id, part }).await.expect("report")
}

#[tokio::test]
async fn a_snapshot_completes_when_every_task_acked_then_its_sinks_commit() {
    let mut h = harness(|_| {}).await;
    let id = h.coordinator.trigger(SnapshotKind::Checkpoint, false).expect("triggered");
    assert_eq!(h.barriers.try_recv().expect("the source got the barrier").id, id);
    assert!(h.coordinator.trigger(SnapshotKind::Checkpoint, false).is_none(), "one snapshot at a time");
    assert!(ack(&mut h.coordinator, id, source(10)).await.is_none());
    assert!(ack(&mut h.coordinator, id, operator(false)).await.is_none());
    assert!(h.committed.0.lock().expect("lock").is_empty(), "nothing commits before the manifest");
    let done = ack(&mut h.coordinator, id, sink(7, false)).await.expect("complete");
    assert_eq!((done.id, done.kind), (id, SnapshotKind::Checkpoint));
    assert!(done.latency_ms.is_some(), "the barrier passed the sink");
    assert_eq!(*h.committed.0.lock().expect("lock"), vec![7]);
    assert!(h.ledger.is_complete(id));
    let m = crate::load_manifest(&h.storage, &snapshot_dir(SnapshotKind::Checkpoint, id)).await.expect("manifest");
    assert_eq!((m.sources.len(), m.operators.len(), m.sinks.len(), m.finished), (1, 1, 1, false));
    assert!(!h.coordinator.busy());
}

#[tokio::test]
async fn a_decline_aborts_and_too_many_failures_fail_the_job() {
    let mut h = harness(|c| c.tolerable_failures = 1).await;
    for round in 0..2 {
        let id = h.coordinator.trigger(SnapshotKind::Checkpoint, false).expect("triggered");
        let r = h.coordinator.on_report(TaskReport::Decline { id, task: "op[0]".into(), reason: "disk full".into() }).await;
        if round == 0 {
            assert!(r.expect("tolerated").is_none());
            assert_eq!(h.coordinator.failures, vec![(id, "task op[0]: disk full".to_owned())]);
        } else {
            let e = r.expect_err("past the tolerance");
            assert!(e.to_string().contains("2 consecutive checkpoints failed (tolerable: 1)"), "{e}");
        }
    }
    assert!(h.committed.0.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn a_snapshot_past_its_timeout_is_aborted() {
    let mut h = harness(|c| c.timeout = std::time::Duration::from_millis(1)).await;
    let id = h.coordinator.trigger(SnapshotKind::Checkpoint, false).expect("triggered");
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    h.coordinator.check_timeout().await.expect("tolerated");
    assert!(h.coordinator.failures[0].1.contains("timed out"), "{:?}", h.coordinator.failures);
    assert!(h.coordinator.failures[0].1.contains("src[0]"), "it names who was missing: {:?}", h.coordinator.failures);
    assert!(!h.coordinator.busy());
    assert!(ack(&mut h.coordinator, id, source(1)).await.is_none(), "acks of an aborted snapshot are ignored");
}

#[tokio::test]
async fn finished_tasks_stand_in_and_the_final_checkpoint_is_marked_finished() {
    let mut h = harness(|c| c.retain = 1).await;
    let first = h.coordinator.trigger(SnapshotKind::Checkpoint, false).expect("triggered");
    for part in [source(1), operator(false), sink(1, false)] {
        ack(&mut h.coordinator, first, part).await;
    }
    // The source finishes after barrier `first`: its final part stands in for later ones.
    h.coordinator.on_report(TaskReport::Finished { part: source_at(SourcePosition::finished()), after: first }).await.expect("report");
    let second = h.coordinator.trigger(SnapshotKind::Checkpoint, false).expect("triggered");
    ack(&mut h.coordinator, second, operator(false)).await;
    let done = ack(&mut h.coordinator, second, sink(2, false)).await.expect("complete without the source's ack");
    assert_eq!(done.id, second);
    for part in [operator(true), sink(3, true)] {
        h.coordinator.on_report(TaskReport::Finished { part, after: second }).await.expect("report");
    }
    assert!(h.coordinator.all_finished());
    let last = h.coordinator.finish().await.expect("final checkpoint");
    let m = crate::load_manifest(&h.storage, &snapshot_dir(SnapshotKind::Checkpoint, last.id)).await.expect("manifest");
    assert!(m.finished, "the final checkpoint says the job had finished");
    assert_eq!(*h.committed.0.lock().expect("lock"), vec![1, 2, 3]);
    // Only the newest checkpoint is retained.
    let dirs: std::collections::BTreeSet<String> =
        h.storage.list("").await.expect("list").into_iter().filter_map(|(p, _)| p.split('/').next().map(str::to_owned)).collect();
    assert_eq!(dirs.into_iter().collect::<Vec<_>>(), vec![snapshot_dir(SnapshotKind::Checkpoint, last.id)]);
}
