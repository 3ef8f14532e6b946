//! `cargo bench -p rivulet --bench engine`: the Wasm boundary and state costs that
//! shape Rivulet's design, each measured against native code in the same run.
//!
//! Prints a markdown table (copied into `docs/benchmarks.md`). Needs the example
//! plugins built (`make plugins`). `-- --profile passthrough|keyed-memory|keyed-rocksdb`
//! runs only that Wasm side, at batch 1024, for 10 s: the process to hand `perf record`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rivulet_dataflow::Batch;
use rivulet_plugin::{InstanceSetup, Limits, OperatorInstance, PluginEngine};
use rivulet_sdk::{RecordIter, encode_record};
use rivulet_state::{BackendKind, CurrentKey, KeyedStateStore, StateKind, key_group};

const VALUE: &[u8] = &[b'x'; 100];

fn batch(n: usize, keys: u64, offset: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(n * 130);
    for i in 0..n as u64 {
        let k = format!("key-{}", (i + offset) % keys);
        encode_record(&mut b, Some(k.as_bytes()), VALUE, i as i64);
    }
    b
}

/// Native passthrough: decode every record and re-encode it, as the guest does.
fn native_passthrough(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    for r in RecordIter::new(input) {
        let r = r.expect("valid batch");
        encode_record(&mut out, r.key, r.value, r.timestamp);
    }
    out
}

/// Native forward: visit every record (as an operator's loop does), then pass the
/// batch on shared — what a host-side operator that keeps every record would do.
fn native_forward(input: &Batch) -> Batch {
    let mut n = 0usize;
    for r in RecordIter::new(input.as_slice()) {
        n += usize::from(r.expect("valid batch").timestamp >= 0);
    }
    std::hint::black_box(n);
    input.clone()
}

/// Run `f` repeatedly for about `budget`; returns ns per record (best of 3 rounds).
fn measure(records_per_call: usize, budget: Duration, mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    let mut best = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        let mut calls = 0u64;
        while start.elapsed() < budget / 3 {
            f();
            calls += 1;
        }
        let ns = start.elapsed().as_nanos() as f64 / (calls as f64 * records_per_call as f64);
        best = best.min(ns);
    }
    best
}

fn instance(rt: &tokio::runtime::Runtime, engine: &Arc<PluginEngine>, wasm: &Path, backend: BackendKind, dir: &Path) -> OperatorInstance {
    let plugin = engine.load_file(wasm).unwrap_or_else(|e| panic!("{e} (run `make plugins`)"));
    let state = KeyedStateStore::new(backend.open(dir).expect("backend"), 128);
    let setup = InstanceSetup {
        uid: "bench".into(),
        subtask: 0,
        parallelism: 1,
        attempt: 0,
        state,
        limits: Limits::default(),
        config: "{}".into(),
        log: None,
        input_names: vec!["main".into()],
    };
    rt.block_on(async {
        let mut i = OperatorInstance::new(engine, plugin, setup).await.expect("instantiate");
        i.open().await.expect("open");
        i
    })
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let budget = if quick { Duration::from_millis(300) } else { Duration::from_secs(3) };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo").to_path_buf();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    let engine = PluginEngine::new(None).expect("engine");
    let tmp = tempfile::tempdir().expect("tmp");
    let args: Vec<String> = std::env::args().collect();
    if let Some(what) = args.iter().position(|a| a == "--profile").and_then(|i| args.get(i + 1)) {
        let (wasm, backend, keys) = match what.as_str() {
            "passthrough" => ("plugins-examples/passthrough/passthrough.wasm", BackendKind::Memory, 1000),
            "keyed-memory" => ("plugins-examples/keyed-count/keyed_count.wasm", BackendKind::Memory, 10_000),
            "keyed-rocksdb" => ("plugins-examples/keyed-count/keyed_count.wasm", BackendKind::Rocksdb, 10_000),
            other => panic!("--profile {other}: one of passthrough, keyed-memory, keyed-rocksdb"),
        };
        let mut inst = instance(&rt, &engine, &repo.join(wasm), backend, &tmp.path().join("profile"));
        let batches: Vec<Batch> = (0..8).map(|i| Batch::counted(batch(1024, keys, i * 1024))).collect();
        let mut i = 0;
        let ns = measure(1024, Duration::from_secs(10), || {
            i = (i + 1) % batches.len();
            std::hint::black_box(rt.block_on(inst.process(0, &batches[i])).expect("process"));
        });
        println!("{what}: {ns:.1} ns/record (Wasm side only, batch 1024)");
        return;
    }

    println!("| benchmark | batch | Wasm ns/record | native ns/record | Wasm / native throughput | Wasm events/s/core |");
    println!("|---|---|---|---|---|---|");
    let passthrough = repo.join("plugins-examples/passthrough/passthrough.wasm");
    let mut inst = instance(&rt, &engine, &passthrough, BackendKind::Memory, &tmp.path().join("p"));
    for n in [1usize, 64, 256, 1024] {
        let b = Batch::counted(batch(n, 1000, 0));
        let out = rt.block_on(inst.process(0, &b)).expect("process");
        assert_eq!(out.main.as_slice(), b.as_slice(), "the passthrough's output is its input");
        let wasm = measure(n, budget, || {
            let out = rt.block_on(inst.process(0, &b)).expect("process");
            std::hint::black_box(out);
        });
        let native = measure(n, budget, || {
            std::hint::black_box(native_passthrough(std::hint::black_box(b.as_slice())));
        });
        println!("| passthrough | {n} | {wasm:.1} | {native:.1} | {:.0}% | {:.2}M |", 100.0 * native / wasm, 1e3 / wasm);
        let forward = measure(n, budget, || {
            std::hint::black_box(native_forward(std::hint::black_box(&b)));
        });
        println!("| passthrough vs native forward | {n} | {wasm:.1} | {forward:.1} | {:.0}% | {:.2}M |", 100.0 * forward / wasm, 1e3 / wasm);
    }

    // Keyed count: ValueState<u64> get + set per record through WIT, vs the same
    // get + put natively on the host's keyed state (no boundary).
    let keyed = repo.join("plugins-examples/keyed-count/keyed_count.wasm");
    for backend in [BackendKind::Memory, BackendKind::Rocksdb] {
        let mut inst = instance(&rt, &engine, &keyed, backend, &tmp.path().join(format!("k-{backend:?}")));
        let n = 1024;
        let batches: Vec<Batch> = (0..8).map(|i| Batch::counted(batch(n, 10_000, i * 1024))).collect();
        let mut i = 0;
        let wasm = measure(n, budget, || {
            i = (i + 1) % batches.len();
            std::hint::black_box(rt.block_on(inst.process(0, &batches[i])).expect("process"));
        });
        let mut store = KeyedStateStore::new(backend.open(&tmp.path().join(format!("n-{backend:?}"))).expect("backend"), 128);
        let id = store.declare("count", StateKind::Value, None).expect("declare");
        let mut j = 0;
        let native = measure(n, budget, || {
            j = (j + 1) % batches.len();
            let mut out = Vec::new();
            for r in batches[j].records() {
                let r = r.expect("valid");
                let key = r.key.expect("keyed");
                let ck = CurrentKey { key: Some(key.to_vec()), group: key_group(key, 128) };
                let c: u64 = store.get(id, &ck, 0).expect("get").map_or(0, |v| serde_json_u64(&v)) + 1;
                store.put(id, &ck, c.to_string().as_bytes(), 0).expect("put");
                encode_record(&mut out, Some(key), &c.to_le_bytes(), r.timestamp);
            }
            std::hint::black_box(out);
        });
        println!("| keyed count ({backend:?}) | {n} | {wasm:.1} | {native:.1} | {:.0}% | {:.2}M |", 100.0 * native / wasm, 1e3 / wasm);
    }

    // Whole pipeline: generator → passthrough (Wasm) → file sink, parallelism 1.
    println!();
    println!("| pipeline (generator → Wasm passthrough → file sink, p=1) | records | seconds | events/s |");
    println!("|---|---|---|---|");
    let count = if quick { 200_000 } else { 2_000_000 };
    let yaml = format!(
        "name: bench\nsources:\n  - {{id: gen, type: generator, count: {count}}}\noperators:\n  - {{uid: p, plugin: {}, inputs: [gen]}}\nsinks:\n  - {{id: out, type: file, path: out, inputs: [p]}}\n",
        passthrough.display()
    );
    let spec = rivulet_job::JobSpec::parse(&yaml, "bench", &Default::default()).expect("spec");
    let graph = rivulet_job::JobGraph::build(&spec, tmp.path(), None).expect("graph");
    let opts = rivulet_runtime::RunOptions::new(BackendKind::Memory, tmp.path().join("data"));
    let mt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("rt");
    let report = mt.block_on(rivulet_runtime::run_job(&graph, &engine, &opts)).expect("pipeline");
    let secs = report.elapsed.as_secs_f64();
    println!("| generator → passthrough → file | {count} | {secs:.2} | {:.0} |", count as f64 / secs);

    println!();
    println!("Machine: {} cores; one core used per measurement.", std::thread::available_parallelism().map_or(0, |n| n.get()));
    // Peak resident memory of this whole benchmark process (engine, instances, state).
    if let Some(hwm) = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| s.lines().find(|l| l.starts_with("VmHWM")).map(str::to_owned)) {
        println!("Peak memory (VmHWM): {}", hwm.trim_start_matches("VmHWM:").trim());
    }
}

fn serde_json_u64(v: &[u8]) -> u64 {
    std::str::from_utf8(v).ok().and_then(|s| s.parse().ok()).unwrap_or(0)
}
