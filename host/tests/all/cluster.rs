//! Jobs across worker processes (`rivulet run --scheduler process`): the coordinator
//! starts real `rivulet worker` processes, places subtasks into their slots, and the
//! subtasks exchange data over loopback TCP. Checked against the same independent
//! oracles as on one process: the committed output equals a failure-free run, at
//! parallelism 3 and 4 on three workers, both state backends, and after `kill -9` of
//! workers at random moments (seed printed; `RIVULET_FAULT_SEED` replays).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::fault::{hidden_files, rivulet, seed, seq_expected, seq_job, sorted_lines, wordcount_case};
use crate::support::Rng;

/// The worker processes the coordinator `pid` started (its children).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.filter_map(|t| t.ok()) {
            let text = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            out.extend(text.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn sigkill(pid: u32) {
    let status = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().expect("kill");
    assert!(status.success(), "kill -9 {pid}");
}

#[test]
fn a_job_runs_across_three_worker_processes_with_exact_output() {
    let seed = seed();
    for (backend, parallelism, slots) in [("memory", "3", "1"), ("rocksdb", "3", "1"), ("rocksdb", "4", "2")] {
        let case = wordcount_case(20_000, seed);
        let what = format!("{backend} p={parallelism} on 3 workers with {slots} slots");
        let out = case
            .command(backend, &["--scheduler", "process", "--workers", "3", "--slots-per-worker", slots, "--parallelism", parallelism])
            .env("RIVULET_LOG", "warn,rivulet_cluster=info")
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{what}: {err}");
        assert!(err.contains("3 workers registered"), "{what}: {err}");
        assert!(err.contains("workers={1, 2, 3}"), "{what}: the run did not use all three workers: {err}");
        case.check(&what);
    }
}

/// Run the `seq_check` job on three worker processes, `kill -9`ing a random worker at
/// random moments while it runs; the coordinator restarts it from the last checkpoint.
fn kill_workers(dir: &Path, backend: &str, count: u64, seed: u64) -> usize {
    let job = seq_job(dir, count, 5_000, "");
    let mut child = rivulet()
        .args(["run", &job.display().to_string(), "--quiet", "--state-backend", backend, "--checkpoint-interval", "200ms"])
        .args(["--restart-attempts", "50", "--restart-delay", "200ms", "--scheduler", "process", "--workers", "3", "--parallelism", "3"])
        .arg("--checkpoint-dir")
        .arg(dir.join("ck"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut rng = Rng(seed);
    let mut kills = 0;
    let started = Instant::now();
    while kills < 4 && started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(700 + rng.below(1_300)));
        if child.try_wait().expect("poll").is_some() {
            break;
        }
        let workers = children(child.id());
        if workers.len() < 3 {
            continue; // one is being replaced
        }
        let victim = workers[rng.below(workers.len() as u64) as usize];
        sigkill(victim);
        kills += 1;
        println!("{backend}: killed worker {victim} at {:?}", started.elapsed());
    }
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{backend}: {err}");
    let failures = err.matches("failure on attempt").count();
    for line in err.lines().filter(|l| l.contains("failure on attempt")) {
        println!("{backend}: {line}");
    }
    assert!(failures >= 1.min(kills), "{backend}: {kills} kills but no failure reported: {err}");
    kills
}

#[test]
fn kill_9_of_workers_at_random_moments_loses_and_duplicates_nothing() {
    let seed = seed();
    for backend in ["memory", "rocksdb"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let count = 30_000;
        let kills = kill_workers(dir.path(), backend, count, seed ^ backend.len() as u64);
        println!("{backend}: {kills} workers killed");
        assert!(kills > 0, "{backend}: the job ended before any worker was killed");
        let out = dir.path().join("out");
        let got = sorted_lines(&out);
        let expected = seq_expected(count);
        assert_eq!(got.len(), expected.len(), "{backend}: row count after {kills} worker kills (lost or duplicated rows)");
        assert!(got == expected, "{backend}: committed output differs from a failure-free run after {kills} worker kills");
        assert!(hidden_files(&out).is_empty(), "{backend}: uncommitted files left: {:?}", hidden_files(&out));
    }
}

/// Processes whose command line mentions `needle` (workers of a test's data directory).
fn processes_with(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().filter_map(|e| e.ok()) {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(needle) {
            out.push(pid);
        }
    }
    out
}

#[test]
fn kill_9_of_the_coordinator_ends_its_workers_and_the_job_resumes_exactly() {
    let seed = seed();
    for (backend, parallelism) in [("memory", "3"), ("rocksdb", "3")] {
        let case = wordcount_case(60_000, seed);
        let what = format!("{backend} p={parallelism}, coordinator killed");
        let data = case.dir.path().join("data").display().to_string();
        crate::support::kill_loop(&what, 3, 600, 400, 1_200, || {
            let mut c = case.command(backend, &["--restore", "latest", "--scheduler", "process", "--workers", "3", "--parallelism", parallelism]);
            c.env("RIVULET_LOG", "error");
            c
        });
        case.check(&what);
        // The killed coordinators' workers noticed and exited.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !processes_with(&data).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(processes_with(&data).is_empty(), "{what}: workers outlived their coordinator: {:?}", processes_with(&data));
    }
}
