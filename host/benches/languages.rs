//! `cargo bench -p rivulet --bench languages [-- --quick]`: the same operator (the
//! fraud detector) in Rust, Python and JavaScript — per-record cost (and its ratio to
//! Rust), component size, compile time, instantiation time and memory per instance.
//! Prints a markdown table (copied into `docs/benchmarks.md`). Needs `make plugins`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rivulet_dataflow::Batch;
use rivulet_plugin::{InstanceSetup, Limits, OperatorInstance, PluginEngine};
use rivulet_sdk::encode_record;
use rivulet_state::{BackendKind, KeyedStateStore};

fn batch(n: usize, offset: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(n * 100);
    for i in 0..n as u64 {
        let id = i + offset;
        let acct = format!("acct-{}", id % 50);
        let amount = match id % 10 {
            0..=2 => 0.5,
            3..=5 => 750.0,
            _ => 42.0,
        };
        let ts = 1_700_000_000_000i64 + id as i64 * 1000;
        let value = format!(r#"{{"account_id":"{acct}","amount":{amount},"timestamp":{ts}}}"#);
        encode_record(&mut b, Some(acct.as_bytes()), value.as_bytes(), ts);
    }
    b
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn setup(subtask: u32) -> InstanceSetup {
    let state = KeyedStateStore::new(BackendKind::Memory.open(Path::new("/nonexistent")).expect("memory backend"), 128);
    InstanceSetup {
        uid: "fraud".into(),
        subtask,
        parallelism: 1,
        attempt: 0,
        state,
        limits: Limits::default(),
        config: "{}".into(),
        log: None,
        input_names: vec!["main".into()],
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let budget = if quick { Duration::from_millis(500) } else { Duration::from_secs(4) };
    let instances = if quick { 4 } else { 16 };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo").to_path_buf();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    println!(
        "| fraud detector in | component size | compile (s) | instantiate + open (ms) | memory per instance | ns/record (batch 1024) | events/s/core | time per record vs Rust |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut rust_ns = 0.0;
    for (lang, file) in [
        ("Rust", "plugins-examples/fraud-detection/fraud_detection.wasm"),
        ("Python", "plugins-examples/python-fraud-detection/python_fraud_detection.wasm"),
        ("JavaScript", "plugins-examples/js-fraud-detection/js_fraud_detection.wasm"),
    ] {
        let bytes = std::fs::read(repo.join(file)).unwrap_or_else(|e| panic!("{file}: {e} (run `make plugins`)"));
        // A fresh engine without the disk cache: this is the cold compile.
        let engine: Arc<PluginEngine> = PluginEngine::new(None).expect("engine");
        let t = Instant::now();
        let plugin = engine.load_bytes(lang, &bytes).expect("load");
        let compile = t.elapsed();
        // Many instances of one compiled component (as subtasks are): time and memory each.
        let before = rss_kb();
        let t = Instant::now();
        let mut all = Vec::new();
        for s in 0..instances {
            let mut inst = rt.block_on(OperatorInstance::new(&engine, plugin.clone(), setup(s))).expect("instantiate");
            rt.block_on(inst.open()).expect("open");
            all.push(inst);
        }
        let per_instance = t.elapsed() / instances;
        let mem = (rss_kb().saturating_sub(before)) / u64::from(instances);
        let mut inst = all.pop().expect("instance");
        let batches: Vec<Batch> = (0..8).map(|i| Batch::counted(batch(1024, i * 1024))).collect();
        for b in &batches {
            rt.block_on(inst.process(0, b)).expect("warm up");
        }
        let mut best = f64::MAX;
        for _ in 0..3 {
            let start = Instant::now();
            let mut n = 0u64;
            let mut i = 0;
            while start.elapsed() < budget / 3 {
                std::hint::black_box(rt.block_on(inst.process(0, &batches[i % batches.len()])).expect("process"));
                n += 1024;
                i += 1;
            }
            best = best.min(start.elapsed().as_nanos() as f64 / n as f64);
        }
        if lang == "Rust" {
            rust_ns = best;
        }
        println!(
            "| {lang} | {:.1} MB | {:.2} | {:.1} | {:.1} MB | {best:.0} | {:.0} | {:.1}× |",
            bytes.len() as f64 / 1e6,
            compile.as_secs_f64(),
            per_instance.as_secs_f64() * 1e3,
            mem as f64 / 1024.0,
            1e9 / best,
            best / rust_ns
        );
    }
    println!();
    println!(
        "Machine: {} cores; one core per measurement; {instances} instances per component share its compiled code.",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
}
