//! Shared helpers: paths, running a job in-process, reading JSON-lines output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rivulet_job::{JobGraph, JobSpec};
use rivulet_plugin::{Limits, PluginEngine};
use rivulet_runtime::JobError;
use rivulet_runtime::{JobReport, RunOptions, run_job};
use rivulet_state::BackendKind;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf()
}

/// A built `.wasm`; panics with how to build it when missing.
pub fn wasm(rel: &str) -> PathBuf {
    let p = repo().join(rel);
    assert!(p.exists(), "{} is missing: run `make plugins` first", p.display());
    p
}

pub fn fixture(name: &str) -> PathBuf {
    wasm(&format!("tests/fixtures/wasm/{name}.wasm"))
}

pub fn engine() -> Arc<PluginEngine> {
    static ENGINE: OnceLock<Arc<PluginEngine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let cache = std::env::temp_dir().join("rivulet-test-compile-cache");
            PluginEngine::new(Some(cache)).expect("engine")
        })
        .clone()
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().expect("runtime")
}

/// Run a spec (YAML text, relative paths against `base`) with params.
pub fn run_spec(yaml: &str, base: &Path, params: &[(&str, &str)], parallelism: Option<u32>, backend: BackendKind) -> Result<JobReport, JobError> {
    let params: BTreeMap<String, String> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let spec = JobSpec::parse(yaml, "test.yaml", &rivulet_job::Params::new(params))?;
    let graph = JobGraph::build(&spec, base, parallelism)?;
    let data = tempfile::tempdir().expect("tempdir");
    let mut opts = RunOptions::new(backend, data.path().to_path_buf());
    opts.limits = Limits::default();
    runtime().block_on(run_job(&graph, &engine(), &opts))
}

/// Run an example's own job.yaml.
pub fn run_example(dir: &str, params: &[(&str, &str)], parallelism: u32, backend: BackendKind) -> JobReport {
    let base = repo().join("plugins-examples").join(dir);
    let yaml = std::fs::read_to_string(base.join("job.yaml")).expect("job.yaml");
    run_spec(&yaml, &base, params, Some(parallelism), backend).unwrap_or_else(|e| panic!("{dir} failed: {e}"))
}

/// The committed output of a file sink: every visible part file of the directory (in
/// name order), or a plain file.
pub fn read_output(path: &Path) -> String {
    if path.is_dir() {
        let mut names: Vec<PathBuf> = std::fs::read_dir(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| !n.starts_with('.')))
            .collect();
        names.sort();
        names.iter().map(|p| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).collect()
    } else {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}

pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    read_output(path)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad output line {l:?}: {e}")))
        .collect()
}

/// A small deterministic PRNG for generating test inputs.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub const BACKENDS: [BackendKind; 2] = [BackendKind::Memory, BackendKind::Rocksdb];

/// Run a job to its end, `kill -9`ing it at up to `max_kills` random moments first: a run
/// is killed `base_ms` plus up to `first_spread_ms` (the first) or `spread_ms` (later
/// ones) after it starts, if still running. `make` builds each run's command afresh
/// (with `--restore latest`). The schedule's seed is printed (`RIVULET_FAULT_SEED`
/// replays it). Returns the kills; asserts there was at least one and the last run
/// succeeded.
pub fn kill_loop(
    what: &str,
    max_kills: u32,
    base_ms: u64,
    first_spread_ms: u64,
    spread_ms: u64,
    mut make: impl FnMut() -> std::process::Command,
) -> u32 {
    use std::os::unix::process::ExitStatusExt as _;
    use std::process::Stdio;
    let mut rng = Rng(crate::fault::seed() ^ 0x6b69_6c6c);
    let (mut kills, mut runs) = (0, 0);
    loop {
        runs += 1;
        let mut cmd = make();
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn");
        if kills < max_kills {
            let spread = if kills == 0 { first_spread_ms } else { spread_ms };
            std::thread::sleep(std::time::Duration::from_millis(base_ms + rng.below(spread.max(1))));
            if child.try_wait().expect("poll").is_none() {
                child.kill().expect("kill -9"); // SIGKILL on Unix
                let out = child.wait_with_output().expect("reap");
                if out.status.signal() == Some(9) {
                    kills += 1;
                    continue;
                }
                // It ended by itself between the poll and the kill: that was the last run.
                assert!(out.status.success(), "{what}, run {runs}: {}", String::from_utf8_lossy(&out.stderr));
                println!("{what}: {kills} kills, {runs} runs");
                assert!(kills > 0, "{what}: the schedule never killed a run");
                return kills;
            }
        }
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success(), "{what}, run {runs}: {}", String::from_utf8_lossy(&out.stderr));
        println!("{what}: {kills} kills, {runs} runs");
        assert!(kills > 0, "{what}: the schedule never killed a run");
        return kills;
    }
}
