//! Fault tolerance against the exactly-once oracles: the committed output
//! equals a failure-free run (computed here from the input), nothing is duplicated, and
//! per-key sequences are unbroken (the `seq_check` fixture also verifies its restored
//! state itself). Faults are real: `kill -9` of the `rivulet` process at random moments
//! (seed printed, `RIVULET_FAULT_SEED` replays), SIGKILL at exact protocol points
//! (failpoints), damaged snapshot files, an object store that fails for a while, a guest
//! that traps.

use std::collections::{BTreeMap, HashSet};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};

use rivulet_checkpoint::{CheckpointConfig, CheckpointStorage, FaultPlan, load_manifest};
use rivulet_job::{JobGraph, JobSpec};
use rivulet_runtime::{RunOptions, run_job};
use rivulet_state::BackendKind;

use crate::support::*;

pub fn rivulet() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rivulet"));
    c.env("RIVULET_CACHE_DIR", std::env::temp_dir().join("rivulet-test-compile-cache"));
    c.current_dir(repo());
    c
}

pub fn seed() -> u64 {
    let seed = std::env::var("RIVULET_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64));
    println!("seed = {seed} (RIVULET_FAULT_SEED={seed} replays this schedule)");
    seed
}

pub(crate) fn sorted_lines(path: &Path) -> Vec<String> {
    let mut rows: Vec<String> = read_jsonl(path).iter().map(Value::to_string).collect();
    rows.sort();
    rows
}

pub(crate) fn hidden_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with('.')).collect())
        .unwrap_or_default()
}

/// A wordcount input and the rows a failure-free run produces: per word, counts 1..n.
pub(crate) struct WordcountCase {
    pub(crate) dir: tempfile::TempDir,
    input: PathBuf,
    expected: Vec<String>,
}

pub(crate) fn wordcount_case(lines: usize, seed: u64) -> WordcountCase {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng(seed);
    let mut text = String::new();
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    for _ in 0..lines {
        let words: Vec<String> = (0..8).map(|_| format!("w{}", rng.below(300))).collect();
        for w in &words {
            *totals.entry(w.clone()).or_default() += 1;
        }
        text.push_str(&words.join(" "));
        text.push('\n');
    }
    let input = dir.path().join("in.txt");
    std::fs::write(&input, text).expect("write input");
    let mut expected: Vec<String> = totals.iter().flat_map(|(w, n)| (1..=*n).map(move |i| json!({"word": w, "count": i}).to_string())).collect();
    expected.sort();
    WordcountCase { dir, input, expected }
}

impl WordcountCase {
    pub(crate) fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }
    fn ck(&self) -> PathBuf {
        self.dir.path().join("ck")
    }
    /// The contract command of the issue.
    pub(crate) fn command(&self, backend: &str, extra: &[&str]) -> Command {
        self.command_every(backend, "200ms", extra)
    }
    fn command_every(&self, backend: &str, interval: &str, extra: &[&str]) -> Command {
        let mut c = rivulet();
        c.args(["run", "plugins-examples/wordcount/job.yaml", "--quiet", "--state-backend", backend, "--checkpoint-interval", interval])
            .arg("--param")
            .arg(format!("input={}", self.input.display()))
            .arg("--param")
            .arg(format!("output={}", self.out().display()))
            .arg("--checkpoint-dir")
            .arg(self.ck())
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args(extra);
        c
    }
    pub(crate) fn check(&self, what: &str) {
        let got = sorted_lines(&self.out());
        assert_eq!(got.len(), self.expected.len(), "{what}: row count (lost or duplicated rows)");
        assert!(got == self.expected, "{what}: committed output differs from a failure-free run");
        assert!(hidden_files(&self.out()).is_empty(), "{what}: uncommitted files left: {:?}", hidden_files(&self.out()));
    }
}

#[test]
fn kill_9_at_random_moments_loses_and_duplicates_nothing() {
    let seed = seed();
    for (backend, parallelism) in [("memory", "1"), ("rocksdb", "2"), ("memory", "3")] {
        // Long enough to outlast the first kill (100–400 ms) on a fast machine: 40k lines
        // ran to the end before it at parallelism 3.
        let case = wordcount_case(150_000, seed);
        let mut rng = Rng(seed ^ 0x5eed);
        let (mut kills, mut runs) = (0, 0);
        loop {
            runs += 1;
            let mut child = case
                .command(backend, &["--restore", "latest", "--parallelism", parallelism])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn");
            if kills < 8 {
                // The first kill comes early so every case is killed at least once.
                std::thread::sleep(Duration::from_millis(100 + rng.below(if kills == 0 { 300 } else { 1200 })));
                if child.try_wait().expect("poll").is_none() {
                    child.kill().expect("kill -9"); // SIGKILL on Unix
                    let status = child.wait().expect("reap");
                    assert_eq!(status.signal(), Some(9));
                    kills += 1;
                    continue;
                }
            }
            let out = child.wait_with_output().expect("wait");
            assert!(out.status.success(), "{backend} p={parallelism} run {runs}: {}", String::from_utf8_lossy(&out.stderr));
            break;
        }
        println!("{backend} p={parallelism}: {kills} kills, {runs} runs");
        assert!(kills > 0, "the schedule never killed a run");
        case.check(&format!("{backend} p={parallelism} after {kills} kills"));
    }
}

#[test]
fn kill_at_protocol_points_upload_before_manifest_and_manifest_before_commit() {
    for point in ["before-manifest=2", "before-commit=2"] {
        // Long enough that checkpoint 2 holds live state on a fast machine: a run that
        // ended before it stores finished subtasks without state files.
        let case = wordcount_case(150_000, 11);
        let out = case.command_every("rocksdb", "100ms", &["--parallelism", "2"]).env("RIVULET_FAILPOINTS", point).output().expect("run");
        assert_eq!(out.status.signal(), Some(9), "{point}: expected SIGKILL; stderr: {}", String::from_utf8_lossy(&out.stderr));
        let root = case.ck().join("wordcount");
        let chk2 = root.join("chk-0000000002");
        if point.starts_with("before-manifest") {
            assert!(chk2.join("count/0/state.bin").exists(), "the upload happened");
            assert!(!chk2.join("_manifest.json").exists(), "no manifest: the checkpoint is incomplete");
        } else {
            assert!(chk2.join("_manifest.json").exists());
            assert!(!hidden_files(&case.out()).is_empty(), "pending files not yet committed");
        }
        let out = case.command("rocksdb", &["--restore", "latest", "--parallelism", "2"]).output().expect("restart");
        assert!(out.status.success(), "{point}: {}", String::from_utf8_lossy(&out.stderr));
        case.check(point);
        // Incomplete snapshots are never used and are cleaned up.
        for e in std::fs::read_dir(&root).expect("root") {
            let p = e.expect("entry").path();
            if p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("chk-")) {
                assert!(p.join("_manifest.json").exists(), "{point}: {} has no manifest", p.display());
            }
        }
    }
}

#[test]
fn damaged_snapshots_are_detected_and_the_previous_checkpoint_is_used() {
    for damage in ["flip-byte", "truncate", "delete", "garbage-manifest"] {
        // Long enough to still run at checkpoint 3 (50 ms apart) on a fast machine: the
        // damaged checkpoint must hold live state, not be the final one.
        let case = wordcount_case(150_000, 23);
        let out = case
            .command_every("memory", "50ms", &["--checkpoints-retained", "3"])
            .env("RIVULET_FAILPOINTS", "after-checkpoint=3")
            .output()
            .expect("run");
        assert_eq!(out.status.signal(), Some(9), "{damage}: {}", String::from_utf8_lossy(&out.stderr));
        let newest = case.ck().join("wordcount/chk-0000000003");
        let state = newest.join("count/0/state.bin");
        match damage {
            "flip-byte" => {
                let mut b = std::fs::read(&state).expect("state");
                let i = b.len() / 2;
                b[i] ^= 0x40;
                std::fs::write(&state, b).expect("write");
            }
            "truncate" => {
                let b = std::fs::read(&state).expect("state");
                std::fs::write(&state, &b[..b.len() / 3]).expect("write");
            }
            "delete" => std::fs::remove_file(&state).expect("delete"),
            _ => std::fs::write(newest.join("_manifest.json"), b"{ not a manifest").expect("write"),
        }
        // Asked for explicitly, the damaged checkpoint is refused with a clear error.
        let out = case.command("memory", &["--restore", newest.to_str().expect("utf8")]).output().expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{damage}: a damaged checkpoint was restored");
        assert!(err.contains("checkpoint corrupt"), "{damage}: {err}");
        let named = if damage == "garbage-manifest" { "_manifest.json" } else { "state.bin" };
        assert!(err.contains(named), "{damage}: the error names the file: {err}");
        // `latest` falls back to checkpoint 2 and the output is still exact.
        let out = case.command("memory", &["--restore", "latest"]).output().expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{damage}: {err}");
        assert!(err.contains("falling back") && err.contains("chk-0000000002"), "{damage}: {err}");
        case.check(damage);
    }
}

/// A generator → `seq_check` job (keys 50, sequence ids, 1 ms apart).
pub(crate) fn seq_job(dir: &Path, count: u64, rate: u64, extra_config: &str) -> PathBuf {
    let yaml = format!(
        r#"name: seqcheck
sources:
  - id: gen
    type: generator
    count: {count}
    keys: 50
    rate: {rate}
    event_time: {{ max_out_of_orderness_ms: 0 }}
operators:
  - uid: check
    plugin: {plugin}
    inputs: [gen]
    key_by: {{ field: key }}
    config: {{ keys: 50 {extra_config} }}
sinks:
  - id: out
    type: file
    path: out
    inputs: [check]
"#,
        plugin = fixture("fixture_seq_check").display()
    );
    let path = dir.join("job.yaml");
    std::fs::write(&path, yaml).expect("write job");
    path
}

/// What a failure-free `seq_check` run over ids `0..count` emits.
pub fn seq_expected(count: u64) -> Vec<String> {
    let mut rows = Vec::new();
    let mut windows: BTreeMap<(u64, i64), u64> = BTreeMap::new();
    let (mut seq, mut sum) = (vec![0u64; 50], vec![0i64; 50]);
    for id in 0..count {
        let k = (id % 50) as usize;
        seq[k] += 1;
        sum[k] += id as i64;
        rows.push(json!({"key": format!("k{k}"), "seq": seq[k], "sum": sum[k]}).to_string());
        *windows.entry((k as u64, (id as i64).div_euclid(1000) * 1000)).or_default() += 1;
    }
    for ((k, w), c) in windows {
        rows.push(json!({"key": format!("k{k}"), "window": w, "count": c}).to_string());
    }
    rows.sort();
    rows
}

#[test]
fn a_guest_trap_restarts_the_job_from_its_last_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let job = seq_job(dir.path(), 6_000, 6_000, ", trap_after: 3000");
    let out = rivulet()
        .args(["run", "--quiet", "--checkpoint-interval", "100ms", "--restart-attempts", "2", "--restart-delay", "100ms"])
        .arg(&job)
        .arg("--checkpoint-dir")
        .arg(dir.path().join("ck"))
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("failure on attempt 0: operator check plugin fixture_seq_check"), "the failure names operator and plugin: {err}");
    assert!(err.contains("deliberate trap after 3000 records"), "{err}");
    let got = sorted_lines(&dir.path().join("out"));
    assert!(got == seq_expected(6_000), "output after a trap and restart differs from a failure-free run");
}

#[test]
fn rescale_1_to_4_to_2_through_savepoints() {
    for backend in ["memory", "rocksdb"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let job = seq_job(dir.path(), 12_000, 8_000, "");
        let ck = dir.path().join("ck");
        let mut savepoint: Option<String> = None;
        for (p, stop) in [(1, Some("3000")), (4, Some("4000")), (2, None)] {
            let mut c = rivulet();
            c.args(["run", "--quiet", "--state-backend", backend, "--parallelism", &p.to_string()]).arg(&job).arg("--checkpoint-dir").arg(&ck);
            if let Some(sp) = &savepoint {
                c.args(["--restore", sp]);
            }
            if let Some(n) = stop {
                c.args(["--stop-with-savepoint-after-records", n]);
            }
            let out = c.output().expect("run");
            assert!(out.status.success(), "{backend} p={p}: {}", String::from_utf8_lossy(&out.stderr));
            if stop.is_some() {
                let sp = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                assert!(Path::new(&sp).join("_manifest.json").exists(), "{backend}: savepoint path printed: {sp:?}");
                savepoint = Some(sp);
            }
        }
        let got = sorted_lines(&dir.path().join("out"));
        assert!(got == seq_expected(12_000), "{backend}: output across 1→4→2 differs from a failure-free run");
    }
}

#[test]
fn upgrade_from_a_v1_savepoint_migrates_state_and_unmatched_state_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("out");
    let ck = dir.path().join("ck");
    let run = |version: u32, extra: &[&str]| {
        rivulet()
            .args(["run", "--quiet", &format!("plugins-examples/counter-v{version}/job.yaml")])
            .args(["--param", "count=3000", "--param", "rate=3000"])
            .arg("--param")
            .arg(format!("output={}", out_dir.display()))
            .arg("--checkpoint-dir")
            .arg(&ck)
            .args(extra)
            .output()
            .expect("run")
    };
    let out = run(1, &["--stop-with-savepoint-after-records", "1000"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let taken = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    // A savepoint is self-contained: moved away from its job's folder as a whole, it
    // still inspects and restores.
    let moved = dir.path().join("elsewhere").join(taken.file_name().expect("savepoint dir"));
    std::fs::create_dir_all(moved.parent().expect("parent")).expect("mkdir");
    std::fs::rename(&taken, &moved).expect("move the savepoint");
    let sp = moved.display().to_string();

    let inspect = rivulet().args(["savepoint", "inspect", &sp, "--entries"]).output().expect("inspect");
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(inspect.status.success(), "{}", String::from_utf8_lossy(&inspect.stderr));
    for needle in
        ["savepoint", "operator counter: plugin counter_v1", "state version 1", "state count (value): 10 entries", "count[k0] = ", "source gen[0/1]"]
    {
        assert!(text.contains(needle), "inspect output lacks {needle:?}:\n{text}");
    }

    let out = run(2, &["--restore", &sp]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = read_jsonl(&out_dir);
    let mut per_key: BTreeMap<String, Vec<(u64, bool)>> = BTreeMap::new();
    for r in &rows {
        per_key.entry(r["key"].as_str().expect("key").to_owned()).or_default().push((r["count"].as_u64().expect("count"), r["version"] == 2));
    }
    assert_eq!(per_key.len(), 10);
    for (k, mut v) in per_key {
        v.sort();
        let counts: Vec<u64> = v.iter().map(|x| x.0).collect();
        assert_eq!(counts, (1..=300).collect::<Vec<_>>(), "{k}: counts continue across the upgrade, each once");
        let first_v2 = v.iter().position(|x| x.1).expect("v2 rows");
        assert!(first_v2 > 0 && v[first_v2..].iter().all(|x| x.1), "{k}: v1 rows, then v2 rows");
    }

    // A savepoint with state for an operator the job lacks: refused, naming the uid…
    let renamed = dir.path().join("renamed.yaml");
    let yaml = std::fs::read_to_string(repo().join("plugins-examples/counter-v1/job.yaml"))
        .expect("job")
        .replace("uid: counter", "uid: counter-renamed")
        .replace("inputs: [counter]", "inputs: [counter-renamed]");
    std::fs::write(
        &renamed,
        yaml.replace("plugin: counter_v1.wasm", &format!("plugin: {}", repo().join("plugins-examples/counter-v1/counter_v1.wasm").display())),
    )
    .expect("write");
    let run_renamed = |extra: &[&str]| {
        rivulet()
            .args(["run", "--quiet"])
            .arg(&renamed)
            .args(["--param", "count=100", "--param", "rate=10000", "--restore", &sp])
            .arg("--param")
            .arg(format!("output={}", dir.path().join("out2").display()))
            .args(extra)
            .output()
            .expect("run")
    };
    let out = run_renamed(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("operator uid 'counter'") && err.contains("--allow-non-restored-state"), "{err}");
    // …and dropped on request.
    let out = run_renamed(&["--allow-non-restored-state"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn savepoint_on_a_control_file_while_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let job = seq_job(dir.path(), 8_000, 4_000, "");
    let trigger = dir.path().join("savepoint-now");
    let child = rivulet()
        .args(["run", "--quiet"])
        .arg(&job)
        .arg("--checkpoint-dir")
        .arg(dir.path().join("ck"))
        .arg("--savepoint-trigger-file")
        .arg(&trigger)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(400));
    std::fs::write(&trigger, b"").expect("trigger");
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("savepoint") && err.contains("complete"), "{err}");
    assert!(!trigger.exists(), "the trigger file is consumed");
    let sps: Vec<_> = std::fs::read_dir(dir.path().join("ck/seqcheck/savepoints")).expect("savepoints").collect();
    assert_eq!(sps.len(), 1);
    assert!(sorted_lines(&dir.path().join("out")) == seq_expected(8_000));
}

#[test]
fn an_object_store_outage_aborts_checkpoints_the_job_continues_and_orphans_go() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().expect("tempdir");
        let job = seq_job(dir.path(), 6_000, 4_000, "");
        let spec = JobSpec::from_file(&job, &rivulet_job::Params::default()).expect("spec");
        let graph = JobGraph::build(&spec, dir.path(), None).expect("graph");
        let plan = Arc::new(FaultPlan::default());
        let root = CheckpointStorage::open(dir.path().join("ck").to_str().expect("utf8")).expect("storage").child("seqcheck");
        let mut cfg = CheckpointConfig::new(root.clone().with_faults(plan.clone()));
        cfg.interval = Some(Duration::from_millis(60));
        cfg.tolerable_failures = 1000;
        cfg.retain = 2;
        let mut opts = RunOptions::new(backend, dir.path().join("data"));
        opts.checkpoint = Some(cfg);
        let outage = {
            let plan = plan.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(500));
                plan.fail_next_puts.store(25, Ordering::SeqCst);
            })
        };
        let rt = runtime();
        let report = rt.block_on(run_job(&graph, &engine(), &opts)).expect("the job survives the outage");
        outage.join().expect("outage thread");
        assert!(!report.snapshot_failures.is_empty(), "{backend:?}: the outage aborted no checkpoint");
        let last_failed = report.snapshot_failures.iter().map(|f| f.0).max().unwrap_or(0);
        assert!(report.snapshots.iter().any(|s| s.id > last_failed), "{backend:?}: no checkpoint succeeded after the outage");
        assert!(sorted_lines(&dir.path().join("out")) == seq_expected(6_000), "{backend:?}: output");
        // Every stored file belongs to a retained checkpoint.
        rt.block_on(async {
            let files = root.list("").await.expect("list");
            let mut manifests = Vec::new();
            for (p, _) in &files {
                if let Some(d) = p.strip_suffix("/_manifest.json") {
                    manifests.push(load_manifest(&root, d).await.expect("manifest"));
                }
            }
            let referenced: HashSet<String> = manifests.iter().flat_map(|m| m.files().map(|f| f.path.clone())).collect();
            for (p, _) in &files {
                assert!(p.ends_with("_manifest.json") || referenced.contains(p), "{backend:?}: orphaned file {p}");
            }
        });
    }
}

fn seq_graph(dir: &Path, count: u64, rate: u64) -> JobGraph {
    let job = seq_job(dir, count, rate, "");
    let spec = JobSpec::from_file(&job, &rivulet_job::Params::default()).expect("spec");
    JobGraph::build(&spec, dir, None).expect("graph")
}

#[test]
fn incremental_rocksdb_checkpoints_upload_only_new_sst_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let graph = seq_graph(dir.path(), 20_000, 10_000);
    let root = CheckpointStorage::open(dir.path().join("ck").to_str().expect("utf8")).expect("storage").child("seqcheck");
    let mut cfg = CheckpointConfig::new(root.clone());
    cfg.interval = Some(Duration::from_millis(100));
    cfg.retain = 100;
    let mut opts = RunOptions::new(BackendKind::Rocksdb, dir.path().join("data"));
    opts.checkpoint = Some(cfg);
    let rt = runtime();
    let report = rt.block_on(run_job(&graph, &engine(), &opts)).expect("run");
    assert!(sorted_lines(&dir.path().join("out")) == seq_expected(20_000));
    let manifests = rt.block_on(async {
        let mut ms = Vec::new();
        for (p, _) in root.list("").await.expect("list") {
            if let Some(d) = p.strip_suffix("/_manifest.json") {
                ms.push(load_manifest(&root, d).await.expect("manifest"));
            }
        }
        ms
    });
    let with_db: Vec<_> = manifests.iter().filter(|m| m.files().any(|f| f.path.starts_with("shared/"))).collect();
    assert!(with_db.len() >= 3, "expected several incremental checkpoints, got {}", with_db.len());
    let mut seen_in: BTreeMap<String, usize> = BTreeMap::new();
    for m in &with_db {
        for f in m.files().filter(|f| f.path.starts_with("shared/")) {
            *seen_in.entry(f.path.clone()).or_default() += 1;
        }
    }
    assert!(seen_in.values().any(|&n| n >= 2), "no SST file is shared between checkpoints: {seen_in:?}");
    // A later checkpoint wrote fewer bytes than it references: the rest was reused.
    let reused =
        report.snapshots.iter().any(|s| manifests.iter().find(|m| m.id == s.id).is_some_and(|m| s.bytes < m.files().map(|f| f.size).sum::<u64>()));
    assert!(reused, "no checkpoint reused earlier uploads");
}

#[test]
fn checkpoint_timeouts_and_the_failure_tolerance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime();
    // Every checkpoint times out: tolerated, the job finishes and its output is exact.
    let graph = seq_graph(dir.path(), 3_000, 6_000);
    let root = CheckpointStorage::open(dir.path().join("ck").to_str().expect("utf8")).expect("storage").child("seqcheck");
    let mut cfg = CheckpointConfig::new(root.clone());
    cfg.interval = Some(Duration::from_millis(50));
    cfg.timeout = Duration::from_millis(1);
    cfg.tolerable_failures = 10_000;
    let mut opts = RunOptions::new(BackendKind::Memory, dir.path().join("data"));
    opts.checkpoint = Some(cfg.clone());
    let report = rt.block_on(run_job(&graph, &engine(), &opts)).expect("run");
    assert!(report.snapshot_failures.iter().any(|(_, r)| r.contains("timed out")), "{:?}", report.snapshot_failures);
    assert!(sorted_lines(&dir.path().join("out")) == seq_expected(3_000));
    // A store that keeps failing: past the tolerance the job fails, saying why.
    let plan = Arc::new(FaultPlan::default());
    plan.fail_next_puts.store(1_000_000, Ordering::SeqCst);
    let mut cfg = CheckpointConfig::new(root.with_faults(plan));
    cfg.interval = Some(Duration::from_millis(50));
    cfg.tolerable_failures = 2;
    opts.checkpoint = Some(cfg);
    let graph = seq_graph(dir.path(), 6_000, 3_000);
    let err = rt.block_on(run_job(&graph, &engine(), &opts)).expect_err("the job must fail");
    let msg = err.to_string();
    assert!(msg.contains("3 consecutive checkpoints failed (tolerable: 2)") && msg.contains("injected fault"), "{msg}");
}

/// Counts per key 1..n, each once, summing to `total` (the exactly-once oracle of counter jobs).
pub fn assert_counts_exact(out: &Path, total: u64) {
    let mut per_key: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for r in crate::support::read_jsonl(out) {
        per_key.entry(r["key"].as_str().expect("key").to_owned()).or_default().push(r["count"].as_u64().expect("count"));
    }
    let mut sum = 0;
    for (k, mut c) in per_key {
        c.sort_unstable();
        let n = c.len() as u64;
        assert_eq!(c, (1..=n).collect::<Vec<_>>(), "{}: key {k}", out.display());
        sum += n;
    }
    assert_eq!(sum, total, "{}", out.display());
}

#[test]
fn a_savepoint_with_a_finished_branch_restores() {
    // One branch's source ends early, so its operator has finished (and holds no state)
    // when the savepoint is taken; the job must still start from that savepoint.
    let v1 = repo().join("plugins-examples/counter-v1/counter_v1.wasm");
    for backend in ["memory", "rocksdb"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let job = dir.path().join("job.yaml");
        std::fs::write(
            &job,
            format!(
                "name: branches\nsources:\n  - {{id: short, type: generator, count: 20, keys: 5}}\n  - {{id: long, type: generator, count: 3000, keys: 10, rate: 3000}}\n\
                 operators:\n  - {{uid: early, plugin: {p}, inputs: [short], key_by: {{field: key}}}}\n  - {{uid: late, plugin: {p}, inputs: [long], key_by: {{field: key}}}}\n\
                 sinks:\n  - {{id: a, type: file, path: out-early, inputs: [early]}}\n  - {{id: b, type: file, path: out-late, inputs: [late]}}\n",
                p = v1.display()
            ),
        )
        .expect("job");
        let ck = dir.path().join("ck");
        let run = |extra: &[&str]| {
            let out = rivulet()
                .args(["run", "--quiet", "--state-backend", backend])
                .arg(&job)
                .arg("--checkpoint-dir")
                .arg(&ck)
                .args(extra)
                .output()
                .expect("run");
            assert!(out.status.success(), "{backend} {extra:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        let sp = run(&["--stop-with-savepoint-after-records", "1500"]);
        assert!(Path::new(&sp).join("_manifest.json").exists(), "{backend}: {sp}");
        run(&["--restore", &sp]);
        assert_counts_exact(&dir.path().join("out-early"), 20);
        assert_counts_exact(&dir.path().join("out-late"), 3000);
    }
}
