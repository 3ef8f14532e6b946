//! A chain task with real guests (needs `make plugins`): records through two chained
//! operators counted once each, timers fired by the watermark, barriers snapshotting each
//! operator before they go on, and the end reported before it goes downstream.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rivulet_checkpoint::{CheckpointStorage, Ledger, SnapshotPart, SubtaskMeta, TaskCheckpointing, TaskReport, UploadedFiles};
use rivulet_dataflow::{
    Batch, BatchBuilder, ChannelSender, Envelope, Exchange, KeyGroupRange, LocalExchange, NodeMetrics, OutputEdge, Partitioning, SnapshotKind,
    SubtaskId,
};
use rivulet_plugin::{InstanceSetup, Limits, OperatorInstance, PluginEngine};
use rivulet_state::{KeyedStateStore, MemoryBackend};
use tokio::sync::mpsc;

use super::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One operator subtask running `file` (from the repository) with `config`, sending its
/// main output into channel 0 of subtask `out` of `exchange` if given.
async fn operator(engine: &Arc<PluginEngine>, uid: &str, file: &str, config: &str, out: Option<(&LocalExchange, SubtaskId)>) -> ChainedOperator {
    let plugin = engine.load_file(&repo().join(file)).unwrap_or_else(|e| panic!("{file}: {e} (run `make plugins`)"));
    let setup = InstanceSetup {
        uid: uid.into(),
        subtask: 0,
        parallelism: 1,
        attempt: 0,
        state: KeyedStateStore::new(Box::new(MemoryBackend::default()), 128),
        limits: Limits::default(),
        config: config.into(),
        log: None,
        input_names: vec!["main".into()],
    };
    let mut instance = OperatorInstance::new(engine, plugin.clone(), setup).await.expect("instance");
    instance.open().await.expect("open");
    let outputs = match out {
        Some((ex, to)) => vec![OutputEdge::new(None, Partitioning::Forward, vec![ex.sender(to, 0).expect("sender")], 128, "sink".into())],
        None => Vec::new(),
    };
    let meta = SubtaskMeta {
        uid: uid.into(),
        plugin: plugin.label(),
        plugin_digest: plugin.digest.clone(),
        subtask: 0,
        parallelism: 1,
        max_parallelism: 128,
        range: KeyGroupRange::for_subtask(0, 1, 128),
        state_version: 1,
        instance: format!("test-{uid}"),
    };
    let dir = std::env::temp_dir().join(format!("rivulet-chain-test-{}-{uid}", std::process::id()));
    ChainedOperator::new(instance, Default::default(), outputs, Arc::new(NodeMetrics::new(uid)), meta, dir, UploadedFiles::default(), i64::MIN)
}

struct Wiring {
    exchange: LocalExchange,
    input: Box<dyn ChannelSender>,
    gate: InputGate,
    sink: InputGate,
}

/// A chain's input (one channel) and a downstream "sink" input (one channel).
fn wiring() -> Wiring {
    let exchange = LocalExchange::new(64);
    let (head, sink) = (SubtaskId { node: 1, subtask: 0 }, SubtaskId { node: 9, subtask: 0 });
    let gate = InputGate::new(exchange.input(head, 1), 1);
    let sink = InputGate::new(exchange.input(sink, 1), 1);
    let input = exchange.sender(head, 0).expect("input");
    Wiring { exchange, input, gate, sink }
}

fn keyed(records: &[(&str, i64)]) -> Message {
    let mut b = BatchBuilder::new();
    for (k, ts) in records {
        b.push(Some(k.as_bytes()), format!(r#"{{"k":"{k}","t":{ts}}}"#).as_bytes(), *ts);
    }
    Message::Batch(b.take())
}

/// Everything that reaches the sink's input until End.
async fn drain(sink: &mut InputGate) -> Vec<Message> {
    let mut out = Vec::new();
    while let Some(ev) = sink.next().await {
        match ev {
            GateEvent::Message(Envelope { msg: Message::End, .. }) => {
                out.push(Message::End);
                break;
            }
            GateEvent::Message(env) => out.push(env.msg),
            GateEvent::Aligned(b) => out.push(Message::Barrier(b)),
        }
    }
    out
}

fn batches(msgs: &[Message]) -> Vec<Batch> {
    msgs.iter().filter_map(|m| if let Message::Batch(b) = m { Some(b.clone()) } else { None }).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_cross_a_chain_of_two_guests_counted_once_at_each() {
    let engine = PluginEngine::new(None).expect("engine");
    let w = wiring();
    let sink_id = SubtaskId { node: 9, subtask: 0 };
    let count = operator(&engine, "count", "plugins-examples/keyed-count/keyed_count.wasm", "{}", None).await;
    let pass = operator(&engine, "pass", "plugins-examples/passthrough/passthrough.wasm", "{}", Some((&w.exchange, sink_id))).await;
    let (m_count, m_pass) = (count.metrics.clone(), pass.metrics.clone());
    let task = ChainTask {
        ops: vec![count, pass],
        input: w.gate,
        channel_inputs: vec![0],
        inputs: InputWatermarks::new(1),
        checkpointing: None,
        restored_finished: false,
        last_barrier: 0,
    };
    let running = tokio::spawn(task.run());
    w.input.send(keyed(&[("a", 1), ("b", 2), ("a", 3)])).await.expect("send");
    w.input.send(keyed(&[("a", 4)])).await.expect("send");
    w.input.send(Message::End).await.expect("send");
    let mut sink = w.sink;
    let out = drain(&mut sink).await;
    running.await.expect("join").expect("the chain ends cleanly");
    let mut counts: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for b in batches(&out) {
        for r in b.records() {
            let r = r.expect("record");
            let n = u64::from_le_bytes(r.value.try_into().expect("8 bytes"));
            counts.entry(String::from_utf8_lossy(r.key.expect("keyed")).into_owned()).or_default().push(n);
        }
    }
    assert_eq!(counts, BTreeMap::from([("a".into(), vec![1, 2, 3]), ("b".into(), vec![1])]));
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!((m_count.records_in.load(Relaxed), m_count.records_out.load(Relaxed)), (4, 4));
    assert_eq!((m_pass.records_in.load(Relaxed), m_pass.records_out.load(Relaxed)), (4, 4));
    assert_eq!(m_count.batches_in.load(Relaxed), 2, "the head counts batches of its input");
    assert!(matches!(out.last(), Some(Message::End)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watermark_fires_event_timers_before_it_goes_on() {
    let engine = PluginEngine::new(None).expect("engine");
    let w = wiring();
    let op = operator(
        &engine,
        "timers",
        "tests/fixtures/wasm/fixture_test_ops.wasm",
        r#"{"mode":"timers"}"#,
        Some((&w.exchange, SubtaskId { node: 9, subtask: 0 })),
    )
    .await;
    let task = ChainTask {
        ops: vec![op],
        input: w.gate,
        channel_inputs: vec![0],
        inputs: InputWatermarks::new(1),
        checkpointing: None,
        restored_finished: false,
        last_barrier: 0,
    };
    let running = tokio::spawn(task.run());
    w.input.send(keyed(&[("a", 5)])).await.expect("send");
    w.input.send(Message::Watermark(2000)).await.expect("send");
    w.input.send(Message::End).await.expect("send");
    let mut sink = w.sink;
    let out = drain(&mut sink).await;
    running.await.expect("join").expect("ends");
    let wm = out.iter().position(|m| *m == Message::Watermark(2000)).expect("the watermark went on");
    let fired = batches(&out[..wm])
        .iter()
        .flat_map(|b| b.records().map(|r| r.expect("r").value.to_vec()).collect::<Vec<_>>())
        .find(|v| serde_json::from_slice::<serde_json::Value>(v).is_ok_and(|j| j["domain"] == "event" && j["timer"] == 1005));
    assert!(fired.is_some(), "the event-time timer at 1005 fired before watermark 2000 went downstream: {out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_barrier_snapshots_each_operator_then_goes_on_and_the_end_is_reported_first() {
    let engine = PluginEngine::new(None).expect("engine");
    let dir = tempfile::tempdir().expect("tempdir");
    let w = wiring();
    let count = operator(&engine, "count", "plugins-examples/keyed-count/keyed_count.wasm", "{}", None).await;
    let pass =
        operator(&engine, "pass", "plugins-examples/passthrough/passthrough.wasm", "{}", Some((&w.exchange, SubtaskId { node: 9, subtask: 0 })))
            .await;
    let (reports, mut rx) = mpsc::unbounded_channel();
    let storage = CheckpointStorage::open(dir.path().to_str().expect("utf8")).expect("storage");
    let checkpointing = TaskCheckpointing { storage, reports, ledger: Arc::new(Ledger::default()), incremental: false };
    let task = ChainTask {
        ops: vec![count, pass],
        input: w.gate,
        channel_inputs: vec![0],
        inputs: InputWatermarks::new(1),
        checkpointing: Some(checkpointing),
        restored_finished: false,
        last_barrier: 0,
    };
    let running = tokio::spawn(task.run());
    let barrier = Barrier { id: 1, kind: SnapshotKind::Checkpoint, stop: false, format: rivulet_dataflow::SnapshotFormat::Canonical };
    w.input.send(keyed(&[("a", 1)])).await.expect("send");
    w.input.send(Message::Barrier(barrier)).await.expect("send");
    w.input.send(Message::End).await.expect("send");
    let mut sink = w.sink;
    let out = drain(&mut sink).await;
    running.await.expect("join").expect("ends");
    let b = out.iter().position(|m| *m == Message::Barrier(barrier)).expect("the barrier went on");
    assert!(batches(&out[..b]).iter().map(Batch::len).sum::<usize>() == 1, "the record before the barrier went out before it");
    let mut acked = Vec::new();
    let mut finished = Vec::new();
    while acked.len() < 2 || finished.len() < 2 {
        match rx.recv().await.expect("a report") {
            TaskReport::Ack { id: 1, part: SnapshotPart::Operator(p) } => {
                assert!(p.state.state.is_some(), "{}: its state file was uploaded", p.uid);
                acked.push(p.uid);
            }
            TaskReport::Finished { part: SnapshotPart::Operator(p), after } => {
                assert_eq!(after, 1);
                assert!(p.state.finished);
                finished.push(p.uid);
            }
            other => panic!("unexpected report {other:?}"),
        }
    }
    acked.sort();
    assert_eq!(acked, vec!["count", "pass"]);
    assert_eq!(finished, vec!["count", "pass"], "in chain order");
}
