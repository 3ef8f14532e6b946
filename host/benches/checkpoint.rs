//! `cargo bench -p rivulet --bench checkpoint [-- --quick] [--only snapshots|dip|recovery]`:
//! what checkpoints cost.
//!
//! 1. State snapshots of a RocksDB subtask holding N keys (100-byte values): a full
//!    (canonical) snapshot vs incremental ones (only new SST files), each after 1% of
//!    the keys changed; upload to a local directory; and the restore of that state.
//! 2. Throughput of a keyed pipeline with and without checkpointing (the dip).
//! 3. Recovery: time from restarting a `kill -9`ed job to its first output record.
//!
//! Prints markdown tables (copied into `docs/benchmarks.md`). Needs `make plugins`.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::dir_size;

use rivulet_checkpoint::manifest::{Manifest, OperatorEntry};
use rivulet_checkpoint::{Barrier, CheckpointStorage, Ledger, SnapshotKind, TaskCheckpointing, find_restore_point, native_fast_path, write_db_files};
use rivulet_checkpoint::{SubtaskMeta, capture, upload};
use rivulet_job::{JobGraph, JobSpec};
use rivulet_state::TimerService;
use rivulet_state::{BackendKind, CurrentKey, KeyGroupRange, KeyedStateStore, key_group};

fn mb(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

/// SplitMix64, for values that do not compress away.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn put_keys(store: &mut KeyedStateStore, id: u16, keys: std::ops::Range<u64>, round: u64) {
    let mut value = [0u8; 100];
    for i in keys {
        for (c, chunk) in value.chunks_mut(8).enumerate() {
            let r = mix(i ^ (round << 40) ^ ((c as u64) << 56)).to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
        let k = format!("key-{i:010}");
        let ck = CurrentKey { group: key_group(k.as_bytes(), 128), key: Some(k.into_bytes()) };
        store.put(id, &ck, &value, 0).expect("put");
    }
}

fn state_snapshots(rt: &tokio::runtime::Runtime, keys: u64, rounds: usize, tmp: &Path) {
    let db_dir = tmp.join(format!("db-{keys}"));
    let mut store = KeyedStateStore::new(BackendKind::Rocksdb.open(&db_dir).expect("rocksdb"), 128);
    let id = store.declare("value", rivulet_state::StateKind::Value, None).expect("declare");
    let t = Instant::now();
    put_keys(&mut store, id, 0..keys, 0);
    let load = t.elapsed();
    let ck_dir = tmp.join(format!("ck-{keys}"));
    let storage = CheckpointStorage::open(ck_dir.to_str().expect("utf8")).expect("storage").child("bench");
    let (reports, _rx) = tokio::sync::mpsc::unbounded_channel();
    let ledger = std::sync::Arc::new(Ledger::default());
    let meta = SubtaskMeta {
        uid: "op".into(),
        plugin: "bench".into(),
        plugin_digest: "sha256:bench".into(),
        subtask: 0,
        parallelism: 1,
        max_parallelism: 128,
        range: KeyGroupRange::for_subtask(0, 1, 128),
        state_version: 1,
        instance: "bench".into(),
    };
    let uploaded = Default::default();
    let timers = TimerService::default();
    let last_state = std::cell::RefCell::new(None);
    let snapshot = |store: &KeyedStateStore, id_: u64, kind: SnapshotKind, incremental: bool| -> (Duration, Duration, u64) {
        let ctx = TaskCheckpointing { storage: storage.clone(), reports: reports.clone(), ledger: ledger.clone(), incremental };
        let before = dir_size(&ck_dir);
        let t = Instant::now();
        let staging = tmp.join(format!("staging-{keys}-{id_}"));
        let native = incremental.then_some(staging.as_path());
        let captured = capture(&meta, store, &timers, Default::default(), 0, native).expect("capture");
        let sync = t.elapsed();
        let state = rt.block_on(upload(&ctx, Barrier { id: id_, kind, stop: false, format: rivulet_checkpoint::SnapshotFormat::Canonical }, &meta, captured, &uploaded)).expect("upload");
        *last_state.borrow_mut() = Some((id_, state));
        ledger.complete(id_);
        (sync, t.elapsed(), dir_size(&ck_dir) - before)
    };
    println!("| {keys} keys | load {:.1} s | state on disk {:.0} MB | | |", load.as_secs_f64(), mb(dir_size(&db_dir)));
    let (s, total, bytes) = snapshot(&store, 1, SnapshotKind::Savepoint, false);
    println!("| full (canonical) | {:.0} | {:.0} | {:.1} MB | |", s.as_secs_f64() * 1e3, total.as_secs_f64() * 1e3, mb(bytes));
    let (s, total, bytes) = snapshot(&store, 2, SnapshotKind::Checkpoint, true);
    println!("| incremental, first (every SST) | {:.0} | {:.0} | {:.1} MB | |", s.as_secs_f64() * 1e3, total.as_secs_f64() * 1e3, mb(bytes));
    let mut times = Vec::new();
    let mut sizes = Vec::new();
    let mut syncs = Vec::new();
    for r in 0..rounds as u64 {
        let start = (r * keys / 100 * 7) % keys;
        put_keys(&mut store, id, start..(start + keys / 100).min(keys), r + 1);
        let (s, total, bytes) = snapshot(&store, 3 + r, SnapshotKind::Checkpoint, true);
        syncs.push(s);
        times.push(total);
        sizes.push(bytes);
    }
    times.sort();
    syncs.sort();
    let p50 = times[times.len() / 2];
    let max = times[times.len() - 1];
    println!(
        "| incremental after 1% changed ({rounds} rounds) | {:.0} (p50) | {:.0} p50 / {:.0} max | {:.1} MB avg | |",
        syncs[syncs.len() / 2].as_secs_f64() * 1e3,
        p50.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        mb(sizes.iter().sum::<u64>() / sizes.len() as u64)
    );
    // Restore the last incremental checkpoint the way a restarted job does: find it,
    // verify every file (size + sha256), write the RocksDB files into a fresh directory
    // (same key groups: no re-insertion) and open the database.
    drop(store);
    let Some((last_id, state)) = last_state.borrow_mut().take() else { panic!("no checkpoint") };
    let manifest = Manifest {
        format: rivulet_checkpoint::manifest::FORMAT.into(),
        version: rivulet_checkpoint::manifest::VERSION,
        kind: SnapshotKind::Checkpoint,
        id: last_id,
        job: "bench".into(),
        created_ms: 0,
        finished: false,
        max_parallelism: 128,
        operators: vec![OperatorEntry {
            uid: "op".into(),
            plugin: "bench".into(),
            plugin_digest: "sha256:bench".into(),
            parallelism: 1,
            state_version: 1,
            subtasks: vec![state],
        }],
        sources: Vec::new(),
        sinks: Vec::new(),
    };
    let bytes: u64 = manifest.files().map(|f| f.size).sum();
    rt.block_on(storage.put(&format!("chk-{last_id:010}/_manifest.json"), serde_json::to_vec(&manifest).expect("json").into())).expect("manifest");
    let t = Instant::now();
    let point = rt.block_on(find_restore_point(&storage, "bench", &Default::default())).expect("restore point").expect("found");
    let verified = t.elapsed();
    let restore = point.operator("op", 0, 1).expect("operator").expect("state");
    let range = KeyGroupRange::for_subtask(0, 1, 128);
    assert!(native_fast_path(&restore.parts, range));
    let target = tmp.join(format!("restored-{keys}"));
    write_db_files(&target, &restore.parts[0].1).expect("write");
    let db = BackendKind::Rocksdb.open(&target).expect("open");
    let restored = KeyedStateStore::new(db, 128);
    std::hint::black_box(restored.scan_key_group(0).expect("read"));
    let total = t.elapsed();
    println!(
        "| restore of that checkpoint ({:.0} MB): verify {:.0} ms, then write + open | | {:.0} | | {:.1} s/GB |",
        mb(bytes),
        verified.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3,
        total.as_secs_f64() / (bytes as f64 / (1u64 << 30) as f64)
    );
    drop(restored);
    let _ = std::fs::remove_dir_all(&target);
    let _ = std::fs::remove_dir_all(&db_dir);
    let _ = std::fs::remove_dir_all(&ck_dir);
}

fn keyed_job(repo: &Path, dir: &Path, count: u64, keys: u64, rate: Option<u64>) -> JobGraph {
    let rate = rate.map(|r| format!("\n    rate: {r}")).unwrap_or_default();
    let yaml = format!(
        "name: keyed\nsources:\n  - id: gen\n    type: generator\n    count: {count}\n    keys: {keys}{rate}\noperators:\n  - uid: count\n    plugin: {}\n    inputs: [gen]\n    key_by: {{ field: key }}\nsinks:\n  - {{ id: out, type: file, path: out, inputs: [count] }}\n",
        repo.join("plugins-examples/keyed-count/keyed_count.wasm").display()
    );
    std::fs::write(dir.join("job.yaml"), &yaml).expect("job");
    let spec = JobSpec::parse(&yaml, "bench", &Default::default()).expect("spec");
    JobGraph::build(&spec, dir, None).expect("graph")
}

/// Each configuration runs as a fresh `rivulet run` process, rounds interleaved so
/// drift of the machine hits every configuration alike; the best round of each counts.
fn throughput_dip(repo: &Path, count: u64, rounds: usize, tmp: &Path) {
    let bin = env!("CARGO_BIN_EXE_rivulet");
    println!("| keyed count pipeline, {count} records, 100k keys | backend | checkpoints | seconds (best of {rounds}) | events/s | vs none |");
    println!("|---|---|---|---|---|---|");
    for backend in ["rocksdb", "memory"] {
        let configs: [Option<u64>; 3] = [None, Some(1000), Some(200)];
        let mut best = [f64::MAX; 3];
        for _ in 0..rounds {
            for (i, interval) in configs.iter().enumerate() {
                let dir = tmp.join(format!("dip-{backend}-{i}"));
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir).expect("dir");
                let _ = keyed_job(repo, &dir, count, 100_000, None);
                let mut c = Command::new(bin);
                c.args(["run", "--quiet", "--state-backend", backend])
                    .arg(dir.join("job.yaml"))
                    .arg("--data-dir")
                    .arg(dir.join("data"))
                    .env("RIVULET_CACHE_DIR", tmp.join("compile-cache"));
                if let Some(ms) = interval {
                    c.arg("--checkpoint-dir").arg(dir.join("ck")).args(["--checkpoint-interval", &format!("{ms}ms")]);
                }
                let t = Instant::now();
                let out = c.output().expect("run");
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                best[i] = best[i].min(t.elapsed().as_secs_f64());
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        for (i, interval) in configs.iter().enumerate() {
            let label = interval.map_or("none".to_owned(), |ms| format!("every {ms} ms"));
            println!("| | {backend} | {label} | {:.2} | {:.0} | {:+.1}% |", best[i], count as f64 / best[i], 100.0 * (best[0] / best[i] - 1.0));
        }
    }
}

fn recovery(repo: &Path, keys: u64, tmp: &Path) {
    let bin = env!("CARGO_BIN_EXE_rivulet");
    let dir = tmp.join(format!("recovery-{keys}"));
    std::fs::create_dir_all(&dir).expect("dir");
    // Every key gets state in the first `keys` records; the job goes on updating them.
    // Kill it right after a checkpoint that holds every key, restart, and time the first
    // record reaching the sink.
    let _ = keyed_job(repo, &dir, keys * 100, keys, None);
    let run = |failpoint: Option<&str>, restore: bool| {
        let mut c = Command::new(bin);
        c.args(["run", "--quiet", "--state-backend", "rocksdb", "--checkpoint-interval", "1s"])
            .arg(dir.join("job.yaml"))
            .arg("--checkpoint-dir")
            .arg(dir.join("ck"))
            .arg("--data-dir")
            .arg(dir.join("data"))
            .env("RIVULET_CACHE_DIR", dir.join("cache"))
            .stderr(std::process::Stdio::null());
        if let Some(f) = failpoint {
            c.env("RIVULET_FAILPOINTS", f);
        }
        if restore {
            c.args(["--restore", "latest"]);
        }
        c
    };
    // At ~150k records/s, `keys` records take keys/150k seconds; checkpoints come every second.
    let after = keys / 150_000 + 3;
    let out = run(Some(&format!("after-checkpoint={after}")), false).output().expect("run");
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&out.status), Some(9), "the job ended before checkpoint {after}");
    let state = dir_size(&dir.join("ck"));
    let out_dir = dir.join("out");
    // The killed run's in-progress file: the restarted run discards it; don't mistake it
    // for new output.
    for e in std::fs::read_dir(&out_dir).map(|rd| rd.flatten().collect::<Vec<_>>()).unwrap_or_default() {
        if e.file_name().to_string_lossy().starts_with('.') {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let t = Instant::now();
    let mut child = run(None, true).spawn().expect("restart");
    let first = loop {
        let hidden =
            std::fs::read_dir(&out_dir).map(|rd| rd.flatten().any(|e| e.file_name().to_string_lossy().ends_with(".inprogress"))).unwrap_or(false);
        if hidden {
            break t.elapsed();
        }
        if t.elapsed() > Duration::from_secs(300) {
            panic!("no output after restart");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "| {keys} keys, killed after checkpoint {after} | {:.0} MB | {:.2} | {:.1} s/GB |",
        mb(state),
        first.as_secs_f64(),
        first.as_secs_f64() / (state as f64 / (1u64 << 30) as f64)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `--only snapshots|dip|recovery` runs one part.
    let only = args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1)).cloned();
    let part = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo").to_path_buf();
    let tmp = tempfile::tempdir_in(std::env::var("RIVULET_BENCH_DIR").unwrap_or_else(|_| std::env::temp_dir().display().to_string())).expect("tmp");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("rt");

    if part("snapshots") {
        println!("| RocksDB state snapshot | sync part (ms) | total (ms) | uploaded | |");
        println!("|---|---|---|---|---|");
        let sizes: &[u64] = if quick { &[100_000] } else { &[1_000_000, 10_000_000] };
        for &keys in sizes {
            state_snapshots(&rt, keys, if quick { 3 } else { 10 }, tmp.path());
        }
        println!();
    }
    if part("dip") {
        throughput_dip(&repo, if quick { 300_000 } else { 3_000_000 }, if quick { 1 } else { 3 }, tmp.path());
        println!();
    }
    if part("recovery") {
        println!("| recovery after kill -9 (keyed count, RocksDB) | checkpoint size | restart → first output (s) | per GB |");
        println!("|---|---|---|---|");
        for &keys in if quick { &[100_000u64][..] } else { &[1_000_000u64, 3_000_000][..] } {
            recovery(&repo, keys, tmp.path());
        }
    }
    println!();
    println!("Machine: {} cores.", std::thread::available_parallelism().map_or(0, |n| n.get()));
}
