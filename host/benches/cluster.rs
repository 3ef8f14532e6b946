//! `cargo bench -p rivulet --bench cluster [-- --quick]`: one job on one process versus
//! on worker processes.
//!
//! 1. A keyed count (generator → `keyed_count.wasm` keyed by `key` → file), parallelism
//!    2, checkpoints every second, run as `rivulet run` with `--scheduler embedded` (one
//!    process), `process` with one worker of two slots (every channel in memory, the
//!    control plane only), and `process` with two one-slot workers (the hash exchange
//!    crosses loopback TCP for half the records). Interleaved rounds; wall time and the
//!    CPU-seconds of the whole process tree (this process is a child subreaper, so the
//!    workers' CPU is counted when they are reaped).
//! 2. Scale-out with pinned cores: the same job on one worker pinned to core 0 versus two
//!    workers pinned to cores 0 and 1 (`taskset`, every thread of each worker; the
//!    coordinator on the workers' cores), and one process pinned to core 0 for reference;
//!    records/s and records/s per core.
//! 3. Recovery: the same job on three workers, one `kill -9`ed; time from the kill to
//!    the next completed checkpoint (the first output committed after recovery).
//! 4. The coordinator's work per checkpoint as the cluster grows: the checkpoint
//!    coordinator alone, fed N subtask reports (each with a state file and four RocksDB
//!    files, as incremental checkpoints send), from the first report to the manifest
//!    written (local directory) — what one process does per checkpoint for N subtasks.
//!
//! Prints markdown tables (copied into `docs/benchmarks.md`). Needs `make plugins`.
//! `-- coordinator` runs part 4 alone; `RIVULET_BENCH_ROUNDS=N` sets the rounds of 1 and 2.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo").to_path_buf()
}

fn job(dir: &Path, count: u64, rate: Option<u64>) -> PathBuf {
    let plugin = repo().join("plugins-examples/keyed-count/keyed_count.wasm");
    let rate = rate.map(|r| format!("\n    rate: {r}")).unwrap_or_default();
    let yaml = format!(
        "name: keyed-count\nsources:\n  - id: gen\n    type: generator\n    count: {count}\n    keys: 10000{rate}\noperators:\n  - uid: keyed-count\n    plugin: {}\n    inputs: [gen]\n    key_by: {{ field: key }}\n    config: {{}}\nsinks:\n  - id: out\n    type: file\n    path: out\n    inputs: [keyed-count]\n",
        plugin.display()
    );
    let path = dir.join("job.yaml");
    std::fs::write(&path, yaml).expect("job");
    path
}

#[allow(unsafe_code, reason = "becoming a child subreaper and reading rusage: plain syscalls")]
fn subreaper() {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes no pointers.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
}

/// CPU-seconds of every reaped descendant so far.
#[allow(unsafe_code, reason = "getrusage fills a struct we own")]
fn children_cpu() -> f64 {
    // SAFETY: `u` is a valid, writable rusage.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// Reap orphaned workers (reparented to this subreaper) until none is left.
#[allow(unsafe_code, reason = "waitpid on any child")]
fn reap_all() {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid < 0 || Instant::now() > deadline {
            return; // no children left
        }
        if pid == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn rivulet(dir: &Path, job: &Path, scheduler: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rivulet"));
    c.args(["run", &job.display().to_string(), "--quiet", "--parallelism", "2", "--checkpoint-interval", "1s"])
        .arg("--checkpoint-dir")
        .arg(dir.join("ck"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(scheduler)
        .env("RIVULET_LOG", "error")
        .stdout(Stdio::null());
    c
}

struct Sample {
    wall: f64,
    cpu: f64,
}

fn run_once(count: u64, scheduler: &[&str]) -> Sample {
    run_pinned(count, scheduler, &[])
}

/// `taskset` every thread of `pid` onto `cores` (e.g. "0" or "0,1").
fn pin(pid: u32, cores: &str) {
    let _ = Command::new("taskset").args(["-a", "-p", "-c", cores, &pid.to_string()]).stdout(Stdio::null()).stderr(Stdio::null()).status();
}

/// One run; with `cores` non-empty, the coordinator is pinned to all of them and its
/// `i`th worker to `cores[i]` as soon as it appears (before the job starts: the
/// coordinator waits for every worker to register), or an embedded run to `cores[0]`.
fn run_pinned(count: u64, scheduler: &[&str], cores: &[u32]) -> Sample {
    let dir = tempfile::tempdir().expect("tempdir");
    let job = job(dir.path(), count, None);
    let cpu0 = children_cpu();
    let t = Instant::now();
    let mut cmd = rivulet(dir.path(), &job, scheduler);
    let child = cmd.stderr(Stdio::piped()).spawn().expect("run");
    if !cores.is_empty() {
        let all: Vec<String> = cores.iter().map(u32::to_string).collect();
        pin(child.id(), &all.join(","));
        let workers = scheduler.iter().position(|a| *a == "--workers").and_then(|i| scheduler.get(i + 1)?.parse::<usize>().ok()).unwrap_or(0);
        let mut pinned = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while pinned.len() < workers && Instant::now() < deadline {
            for w in workers_of(child.id()) {
                if !pinned.contains(&w) {
                    pin(w, &cores[pinned.len() % cores.len()].to_string());
                    pinned.push(w);
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let out = child.wait_with_output().expect("run");
    let wall = t.elapsed().as_secs_f64();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    reap_all();
    Sample { wall, cpu: children_cpu() - cpu0 }
}

fn scale_out(count: u64, rounds: usize) {
    let configs: [(&str, Vec<&str>, Vec<u32>); 3] = [
        ("embedded (1 process), core 0", vec![], vec![0]),
        ("1 worker × 2 slots, core 0", vec!["--scheduler", "process", "--workers", "1", "--slots-per-worker", "2"], vec![0]),
        ("2 workers × 1 slot, cores 0 and 1", vec!["--scheduler", "process", "--workers", "2"], vec![0, 1]),
    ];
    let mut samples: Vec<Vec<Sample>> = configs.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for (i, (_, args, cores)) in configs.iter().enumerate() {
            samples[i].push(run_pinned(count, args, cores));
        }
    }
    println!(
        "\n| keyed count, {count} records, p=2, pinned with taskset | cores | wall (s) | records/s | records/s per core | CPU-s | speed-up vs 1 worker |"
    );
    println!("|---|---|---|---|---|---|---|");
    let one = median(samples[1].iter().map(|s| s.wall).collect());
    for ((name, _, cores), s) in configs.iter().zip(&samples) {
        let wall = median(s.iter().map(|x| x.wall).collect());
        let cpu = median(s.iter().map(|x| x.cpu).collect());
        let rate = count as f64 / wall;
        println!("| {name} | {} | {wall:.2} | {rate:.0} | {:.0} | {cpu:.2} | {:.2}× |", cores.len(), rate / cores.len() as f64, one / wall);
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn throughput(count: u64, rounds: usize) {
    let configs: [(&str, Vec<&str>); 3] = [
        ("embedded (1 process)", vec![]),
        ("process: 1 worker × 2 slots", vec!["--scheduler", "process", "--workers", "1", "--slots-per-worker", "2"]),
        ("process: 2 workers × 1 slot", vec!["--scheduler", "process", "--workers", "2"]),
    ];
    let mut samples: Vec<Vec<Sample>> = configs.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for (i, (_, args)) in configs.iter().enumerate() {
            samples[i].push(run_once(count, args));
        }
    }
    println!(
        "\n| keyed count, {count} records, p=2, memory state, checkpoints 1 s | wall (s) | records/s | CPU-s (all processes) | records per CPU-s | CPU vs embedded |"
    );
    println!("|---|---|---|---|---|---|");
    let base = median(samples[0].iter().map(|s| s.cpu).collect());
    for ((name, _), s) in configs.iter().zip(&samples) {
        let wall = median(s.iter().map(|x| x.wall).collect());
        let cpu = median(s.iter().map(|x| x.cpu).collect());
        println!("| {name} | {wall:.2} | {:.0} | {cpu:.2} | {:.0} | {:.2}× |", count as f64 / wall, count as f64 / cpu, cpu / base);
    }
    let local = median(samples[1].iter().map(|x| x.cpu).collect());
    let remote = median(samples[2].iter().map(|x| x.cpu).collect());
    // With two workers, hash partitioning sends about half the records across.
    let per_record_ns = (remote - local) / (count as f64 / 2.0) * 1e9;
    println!(
        "\nnetwork exchange: ~{per_record_ns:.0} ns of CPU per record crossing workers (2 workers vs 1 worker with both slots, half the records cross)"
    );
}

/// Completed checkpoint ids under the job's root.
fn checkpoints(dir: &Path) -> Vec<u64> {
    std::fs::read_dir(dir.join("ck").join("keyed-count"))
        .map(|rd| rd.filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("chk-")?.parse().ok()).collect())
        .unwrap_or_default()
}

fn workers_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        out.extend(text.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
    }
    out
}

fn recovery(rounds: usize) {
    println!(
        "\n| recovery on 3 workers (keyed count, p=3, checkpoints every 200 ms) | kill -9 of a worker → first checkpoint of the restarted run (s) |"
    );
    println!("|---|---|");
    for round in 0..rounds {
        let dir = tempfile::tempdir().expect("tempdir");
        let job = job(dir.path(), 2_000_000, Some(100_000));
        let mut child = Command::new(env!("CARGO_BIN_EXE_rivulet"))
            .args(["run", &job.display().to_string(), "--quiet", "--parallelism", "3", "--checkpoint-interval", "200ms"])
            .args(["--restart-delay", "100ms", "--restart-attempts", "5", "--scheduler", "process", "--workers", "3"])
            .arg("--checkpoint-dir")
            .arg(dir.path().join("ck"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .env("RIVULET_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        // Running with a few checkpoints done.
        let deadline = Instant::now() + Duration::from_secs(60);
        while checkpoints(dir.path()).len() < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let workers = workers_of(child.id());
        let victim = workers[round % workers.len()];
        let _ = Command::new("kill").args(["-9", &victim.to_string()]).status();
        let t = Instant::now();
        // Recovery has begun once the replacement worker runs; a checkpoint completed
        // after that belongs to the restarted run (the old run's was aborted with it).
        let mut existing = None;
        let mut recovered = None;
        while Instant::now() < deadline + Duration::from_secs(60) {
            if existing.is_none() && workers_of(child.id()).iter().any(|w| !workers.contains(w)) {
                existing = Some(checkpoints(dir.path()));
            }
            if let Some(old) = &existing
                && checkpoints(dir.path()).iter().any(|id| !old.contains(id))
            {
                recovered = Some(t.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = child.kill();
        let _ = child.wait();
        reap_all();
        match recovered {
            Some(d) => println!("| round {round} | {:.2} |", d.as_secs_f64()),
            None => println!("| round {round} | did not recover within the time limit |"),
        }
    }
}

/// One checkpoint's reports for `n` operator subtasks, handled by the coordinator: time
/// from the first report to completion (manifest written), and the manifest's size.
async fn coordinator_checkpoint(n: u32) -> (f64, u64) {
    use rivulet_checkpoint::manifest::{DbFile, SubtaskState};
    use rivulet_checkpoint::{
        CheckpointConfig, CheckpointStorage, Committers, Coordinator, FileEntry, Ledger, OperatorPart, SnapshotKind, SnapshotPart, TaskKey,
        TaskReport,
    };
    use rivulet_dataflow::NodeRole;
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = CheckpointStorage::open(dir.path().to_str().expect("utf8")).expect("storage");
    let (tx, _barriers) = tokio::sync::mpsc::unbounded_channel();
    let expected = (0..n).map(|i| TaskKey { role: NodeRole::Operator, id: "op".into(), subtask: i }).collect();
    let mut c = Coordinator::start(
        CheckpointConfig::new(storage.clone()),
        "job",
        32768,
        vec![tx],
        expected,
        std::sync::Arc::new(Ledger::default()),
        Committers::new(),
    )
    .await
    .expect("coordinator");
    let id = c.trigger(SnapshotKind::Checkpoint, false).expect("triggered");
    let file = |name: String| FileEntry { path: name, size: 4 << 20, sha256: "0".repeat(64) };
    let parts: Vec<SnapshotPart> = (0..n)
        .map(|i| {
            let kg = (i % 32000) as u16;
            SnapshotPart::Operator(OperatorPart {
                uid: "op".into(),
                plugin: "keyed-count@1".into(),
                plugin_digest: format!("sha256:{}", "a".repeat(64)),
                parallelism: n,
                state_version: 1,
                state: SubtaskState {
                    subtask: i,
                    key_groups: (kg, kg + 1),
                    finished: false,
                    state: Some(file(format!("chk-{id:010}/op-{i}.state"))),
                    db: (0..4).map(|f| DbFile { name: format!("{:06}.sst", i * 4 + f), file: file(format!("shared/op-{i}-{f}.sst")) }).collect(),
                },
            })
        })
        .collect();
    let t = Instant::now();
    let mut done = None;
    for part in parts {
        done = c.on_report(TaskReport::Ack { id, part }).await.expect("report");
    }
    let elapsed = t.elapsed().as_secs_f64();
    assert!(done.is_some(), "the checkpoint did not complete");
    let manifest = storage.list("").await.expect("list").into_iter().filter(|(p, _)| p.ends_with("_manifest.json")).map(|(_, s)| s).sum();
    (elapsed, manifest)
}

fn coordinator_scaling() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    println!(
        "\n| subtask reports per checkpoint (≈ workers × slots × chained tasks) | coordinator time per checkpoint (ms) | µs per report | manifest (KiB) |"
    );
    println!("|---|---|---|---|");
    for n in [100u32, 1_000, 3_000, 10_000] {
        let runs: Vec<(f64, u64)> = (0..3).map(|_| runtime.block_on(coordinator_checkpoint(n))).collect();
        let ms = median(runs.iter().map(|r| r.0 * 1e3).collect());
        println!("| {n} | {ms:.1} | {:.1} | {} |", ms * 1e3 / f64::from(n), runs[0].1 / 1024);
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    if std::env::args().any(|a| a == "coordinator") {
        // `-- coordinator`: only the coordinator's per-checkpoint work.
        coordinator_scaling();
        return;
    }
    subreaper();
    let (count, rounds) = if quick { (200_000, 1) } else { (2_000_000, 3) };
    // More interleaved rounds narrow the medians on a drifting machine.
    let rounds = std::env::var("RIVULET_BENCH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(rounds);
    println!("machine: {} CPUs", std::thread::available_parallelism().map_or(0, |n| n.get()));
    throughput(count, rounds);
    if Command::new("taskset").arg("-V").output().is_ok_and(|o| o.status.success()) {
        scale_out(count, rounds);
    } else {
        println!("\n(taskset not found: the pinned scale-out table is skipped)");
    }
    recovery(if quick { 1 } else { 3 });
    coordinator_scaling();
}
