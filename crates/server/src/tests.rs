//! The job lifecycle without HTTP: real plugins, real runs, the exactly-once oracle on
//! the output (needs `make plugins`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rivulet_job::JobSpec;
use rivulet_plugin::PluginEngine;
use rivulet_state::BackendKind;

use crate::{HistoryKind, JobDefaults, JobManager, JobStatus, PluginRegistry, SavepointStatus, Submission, UpgradeResult};

const STOP: crate::StopMode = crate::StopMode::Savepoint { timeout: Duration::from_secs(60), cancel_on_failure: false };

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Server {
    dir: tempfile::TempDir,
    jobs: Arc<JobManager>,
}

async fn server() -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = PluginEngine::new(Some(dir.path().join("cache"))).expect("engine");
    let registry = Arc::new(PluginRegistry::open(dir.path(), engine).expect("registry"));
    for (name, version, file) in [
        ("counter", "1", "plugins-examples/counter-v1/counter_v1.wasm"),
        ("counter", "2", "plugins-examples/counter-v2/counter_v2.wasm"),
        ("counter", "broken", "tests/fixtures/wasm/fixture_trap_in_open.wasm"),
    ] {
        let bytes = std::fs::read(repo().join(file)).unwrap_or_else(|e| panic!("{file}: {e} (run `make plugins`)"));
        registry.upload(name, version, bytes).await.expect("upload");
    }
    // Outputs go below the test's directory: an allowed root.
    let access = crate::AccessPolicy::new(dir.path(), &[dir.path().to_path_buf()], Vec::new()).expect("access");
    let defaults = JobDefaults {
        checkpoint_interval: Duration::from_millis(100),
        state_backend: BackendKind::Memory,
        access,
        guest_memory_mb: 1 << 20,
        hosts: None,
    };
    let jobs = JobManager::open(dir.path(), registry, defaults).await.expect("jobs");
    Server { dir, jobs }
}

fn counter_job(out: &Path, count: u64, rate: Option<u64>) -> Submission {
    let rate = rate.map(|r| format!(", rate: {r}")).unwrap_or_default();
    let yaml = format!(
        "name: counter\nsources:\n  - {{id: gen, type: generator, count: {count}, keys: 10{rate}}}\n\
         operators:\n  - {{uid: counter, plugin: counter@1, inputs: [gen], key_by: {{field: key}}}}\n\
         sinks:\n  - {{id: out, type: file, path: \"{}\", inputs: [counter]}}\n",
        out.display()
    );
    let spec = JobSpec::parse(&yaml, "test", &rivulet_job::Params::default()).expect("spec");
    Submission { spec, savepoint: None, allow_non_restored_state: false, parallelism: None, state_backend: None }
}

async fn wait_for(jobs: &JobManager, id: &str, what: &str, done: impl Fn(&crate::JobDetail) -> bool) -> crate::JobDetail {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let d = jobs.detail(id).expect("detail");
        if done(&d) {
            return d;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {:?} {:?}", d.record.status, d.record.error);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every key's counts are 1..n, each once, and they sum to `total`.
fn assert_exact_counts(out: &Path, total: u64) {
    let mut per_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for entry in std::fs::read_dir(out).expect("output").map(|e| e.expect("entry").path()) {
        if entry.file_name().is_some_and(|n| n.to_string_lossy().starts_with("part-")) {
            for line in std::fs::read_to_string(&entry).expect("part").lines() {
                let v: serde_json::Value = serde_json::from_str(line).expect("json");
                per_key.entry(v["key"].as_str().expect("key").to_owned()).or_default().push(v["count"].as_u64().expect("count"));
            }
        }
    }
    let mut sum = 0;
    for (k, mut c) in per_key {
        c.sort_unstable();
        let n = c.len() as u64;
        assert_eq!(c, (1..=n).collect::<Vec<_>>(), "key {k}");
        sum += n;
    }
    assert_eq!(sum, total);
}

fn kinds(jobs: &JobManager, id: &str) -> Vec<HistoryKind> {
    jobs.record(id).expect("record").history.iter().map(|h| h.kind).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_job_finishes_with_its_output_committed_and_its_history() {
    let s = server().await;
    let out = s.dir.path().join("out");
    let record = s.jobs.submit(counter_job(&out, 3000, None)).expect("submit");
    assert_eq!(record.status, JobStatus::Running);
    wait_for(&s.jobs, &record.id, "the end", |d| d.record.status != JobStatus::Running).await;
    assert_eq!(s.jobs.record(&record.id).expect("record").status, JobStatus::Finished);
    assert_eq!(kinds(&s.jobs, &record.id), [HistoryKind::Submitted, HistoryKind::Finished]);
    assert_exact_counts(&out, 3000);
    let d = s.jobs.detail(&record.id).expect("detail");
    assert_eq!(d.nodes.iter().map(|n| n.records_in).sum::<u64>(), 3000 * 2, "the counter and the sink each saw every record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaps_are_dry_run_confirmed_or_rolled_back_without_losing_a_count() {
    let s = server().await;
    let out = s.dir.path().join("out");
    let total = 20_000;
    let id = s.jobs.submit(counter_job(&out, total, Some(2000))).expect("submit").id;
    let plugins = |v: &str| BTreeMap::from([("counter".to_owned(), format!("counter@{v}"))]);
    wait_for(&s.jobs, &id, "a checkpoint", |d| d.last_checkpoint.is_some()).await;
    let dry = s.jobs.check_upgrade(&id, &plugins("2"), None).await.expect("dry run");
    assert_eq!(dry.result, UpgradeResult::DryRunOk);
    // The broken version cannot migrate version 1 state: the dry run refuses it and the
    // job is left alone.
    let refused = s.jobs.upgrade(&id, &plugins("broken"), None).await.expect_err("refused");
    assert!(matches!(refused, crate::ServerError::Unprocessable(_)) && refused.to_string().contains("cannot migrate"), "{refused}");
    assert_eq!(kinds(&s.jobs, &id), [HistoryKind::Submitted], "neither the dry run nor the refusal changed anything");
    let good = s.jobs.upgrade(&id, &plugins("2"), None).await.expect("upgrade");
    assert_eq!(good.result, UpgradeResult::Swapped, "{good:?}");
    assert!(good.downtime_ms.is_some());
    wait_for(&s.jobs, &id, "a checkpoint of version 2", |d| d.last_checkpoint.is_some()).await;
    // v2 → broken passes the dry run (same state version) but traps in `open`: rolled back.
    let broken = s.jobs.upgrade(&id, &plugins("broken"), None).await.expect("upgrade");
    assert_eq!(broken.result, UpgradeResult::RolledBack, "{broken:?}");
    assert!(broken.rollback_reason.as_deref().is_some_and(|r| r.contains("deliberate trap in open")), "{broken:?}");
    assert_eq!(broken.versions["counter"], "counter@2");
    wait_for(&s.jobs, &id, "the end", |d| d.record.status == JobStatus::Finished).await;
    assert_eq!(kinds(&s.jobs, &id), [HistoryKind::Submitted, HistoryKind::Swap, HistoryKind::Swap, HistoryKind::Rollback, HistoryKind::Finished]);
    assert_exact_counts(&out, total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_with_a_savepoint_commits_and_records_it_and_a_restarted_server_keeps_the_job() {
    let s = server().await;
    let out = s.dir.path().join("out");
    let id = s.jobs.submit(counter_job(&out, 100_000, Some(2000))).expect("submit").id;
    wait_for(&s.jobs, &id, "a checkpoint", |d| d.last_checkpoint.is_some()).await;
    let stopped = s.jobs.stop(&id, STOP).await.expect("stop");
    assert_eq!(stopped.status, JobStatus::Stopped);
    let sp = stopped.savepoints.last().expect("the stop's savepoint");
    assert_eq!((sp.status, sp.stop), (SavepointStatus::Completed, true));
    assert!(s.jobs.stop(&id, STOP).await.is_err(), "a stopped job cannot be stopped again");
    // Its output up to the savepoint is committed and exact.
    let committed: u64 = std::fs::read_dir(&out)
        .expect("out")
        .map(|e| e.expect("e").path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("part-")))
        .map(|p| std::fs::read_to_string(p).expect("part").lines().count() as u64)
        .sum();
    assert!(committed > 0);
    assert_exact_counts(&out, committed);
    // A new manager on the same directory knows the job and does not run it again.
    let registry = s.jobs.registry.clone();
    let again = JobManager::open(s.dir.path(), registry, s.jobs.defaults.clone()).await.expect("reopen");
    assert_eq!(again.record(&id).expect("record").status, JobStatus::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_job_whose_spec_no_longer_parses_is_listed_and_failed_not_fatal() {
    let s = server().await;
    let out = s.dir.path().join("out");
    let mut record = s.jobs.submit(counter_job(&out, 100, None)).expect("submit");
    wait_for(&s.jobs, &record.id, "the end", |d| d.record.status == JobStatus::Finished).await;
    // A record from a future version (or damaged by hand), marked running.
    record.id = "0123456789abcdef".into();
    record.spec = serde_json::json!({"name": "x", "sources": "not a list"});
    record.status = JobStatus::Running;
    crate::store::write_json(&s.dir.path().join("jobs/0123456789abcdef.json"), &record).expect("write");
    let again = JobManager::open(s.dir.path(), s.jobs.registry.clone(), s.jobs.defaults.clone()).await.expect("the server still opens");
    let bad = again.record("0123456789abcdef").expect("listed");
    assert_eq!(bad.status, JobStatus::Failed);
    assert!(bad.error.as_deref().is_some_and(|e| e.contains("stored spec")), "{:?}", bad.error);
    assert_eq!(again.list().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_components_do_not_wait_behind_large_compiles_and_deleted_ones_leave_the_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let engine = PluginEngine::new(Some(cache.clone())).expect("engine");
    let registry = Arc::new(PluginRegistry::open(dir.path(), engine).expect("registry"));
    let read = |file: &str| std::fs::read(repo().join(file)).unwrap_or_else(|e| panic!("{file}: {e} (run `make plugins`)"));
    let cached =
        || std::fs::read_dir(&cache).expect("cache").filter_map(Result::ok).filter(|e| e.path().extension().is_some_and(|x| x == "cwasm")).count();
    // Two large compiles (Python, JavaScript: several seconds each) are under way...
    let mut large = Vec::new();
    for (name, file) in [
        ("py", "plugins-examples/python-fraud-detection/python_fraud_detection.wasm"),
        ("js", "plugins-examples/js-fraud-detection/js_fraud_detection.wasm"),
    ] {
        let (r, bytes) = (registry.clone(), read(file));
        large.push(tokio::spawn(async move { r.upload(name, "1", bytes).await.map(|_| Instant::now()) }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // ...and a small one uploaded after them is done first.
    registry.upload("counter", "1", read("plugins-examples/counter-v1/counter_v1.wasm")).await.expect("small upload");
    let small_done = Instant::now();
    for l in large {
        let done = l.await.expect("task").expect("large upload");
        assert!(done > small_done, "the small component waited behind a large compile");
    }
    assert_eq!(cached(), 3);
    registry.delete("counter", "1").expect("delete");
    assert_eq!(cached(), 2, "the deleted component's compiled code is gone");
}
