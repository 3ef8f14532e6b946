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

/// `kill SIG pid`; whether the process was there to get it.
pub(crate) fn signal(sig: &str, pid: u32) -> bool {
    std::process::Command::new("kill").args([sig, &pid.to_string()]).status().expect("kill").success()
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
        assert!(out.status.success(), "{what}: {}: {err}", out.status);
        // The coordinator's log lines (one write each; the workers' logs share the pipe
        // and may split a line printed in pieces, like "[rivulet] 3 workers registered").
        assert_eq!(err.matches("cluster: worker registered worker=").count(), 3, "{what}: {err}");
        assert!(err.contains("workers={1, 2, 3}"), "{what}: the run did not use all three workers: {err}");
        case.check(&what);
    }
}

/// Cluster TLS (`scripts/cluster-certs.sh`): the control and exchange connections of three
/// worker processes are mutually authenticated TLS, the output exact; a worker without
/// the cluster's certificate cannot join a TLS coordinator.
#[test]
fn a_job_runs_across_workers_over_tls_and_a_worker_without_the_certificate_cannot_join() {
    let case = wordcount_case(10_000, seed());
    let certs = case.dir.path().join("certs");
    let made = std::process::Command::new("bash").arg(crate::support::repo().join("scripts/cluster-certs.sh")).arg(&certs).output().expect("bash");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let file = |f: &str| certs.join(f).display().to_string();
    let tls = ["--cluster-tls-cert", &file("tls.crt"), "--cluster-tls-key", &file("tls.key"), "--cluster-tls-ca", &file("ca.crt")];
    let mut args = vec!["--scheduler", "process", "--workers", "3", "--parallelism", "3"];
    args.extend(tls);
    let out = case.command("rocksdb", &args).env("RIVULET_LOG", "warn,rivulet_cluster=info").output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {err}", out.status);
    assert!(err.contains("workers={1, 2, 3}"), "{err}");
    case.check("over TLS");

    // A plain worker at a TLS coordinator: refused before the token is even asked for.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let listen = format!("127.0.0.1:{port}");
    let token = "a-cluster-token-for-the-tls-test";
    let mut standalone = vec!["--scheduler", "standalone", "--workers", "1", "--cluster-listen", &listen];
    standalone.extend(tls);
    let mut coordinator = case
        .command("memory", &standalone)
        .env("RIVULET_CLUSTER_TOKEN", token)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("coordinator");
    let mut worker = rivulet()
        .args(["worker", "--coordinator", &listen, "--data-dir"])
        .arg(case.dir.path().join("plain-worker"))
        .env("RIVULET_CLUSTER_TOKEN", token)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("worker");
    std::thread::sleep(Duration::from_secs(3));
    let _ = worker.kill();
    let _ = coordinator.kill();
    let (w, c) = (worker.wait_with_output().expect("worker"), coordinator.wait_with_output().expect("coordinator"));
    let (w, c) = (String::from_utf8_lossy(&w.stderr), String::from_utf8_lossy(&c.stderr));
    assert!(!c.contains("worker registered") && !c.contains("workers registered"), "a plain worker joined a TLS cluster: {c}");
    assert!(c.contains("waiting for 1 workers"), "the coordinator did not start: {c}");
    // (It may try before the coordinator listens; then each try fails its handshake.)
    assert!(w.contains("handshake"), "{w}");
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
        assert!(signal("-9", victim), "kill -9 {victim}");
        kills += 1;
        println!("{backend}: killed worker {victim} at {:?}", started.elapsed());
    }
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{backend}: {}: {err}", out.status);
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
        check_seq_output(dir.path(), count, &format!("{backend} after {kills} worker kills"));
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
        // Long enough to outlast the first kill (600-1000 ms) on a fast machine.
        let case = wordcount_case(150_000, seed);
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

/// The `seq_check` job on three worker processes (not quiet: snapshot failures and the
/// summary are printed), with `extra` flags.
fn seq_on_workers(dir: &Path, count: u64, extra: &[&str]) -> std::process::Child {
    let job = seq_job(dir, count, 5_000, "");
    rivulet()
        .args(["run", &job.display().to_string(), "--state-backend", "rocksdb", "--checkpoint-interval", "200ms"])
        .args(["--restart-attempts", "10", "--restart-delay", "200ms", "--scheduler", "process", "--workers", "3", "--parallelism", "3"])
        .args(extra)
        .arg("--checkpoint-dir")
        .arg(dir.join("ck"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("RIVULET_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

/// Three workers up and the job running for a moment: one of them.
fn a_running_worker(child: &mut std::process::Child) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(child.try_wait().expect("poll").is_none(), "the job ended before a worker could be stopped");
        let workers = children(child.id());
        if workers.len() == 3 {
            std::thread::sleep(Duration::from_millis(1_500));
            return workers[1];
        }
        assert!(Instant::now() < deadline, "three workers never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn check_seq_output(dir: &Path, count: u64, what: &str) {
    let out = dir.join("out");
    let got = sorted_lines(&out);
    let expected = seq_expected(count);
    assert_eq!(got.len(), expected.len(), "{what}: row count (lost or duplicated rows)");
    assert!(got == expected, "{what}: committed output differs from a failure-free run");
    assert!(hidden_files(&out).is_empty(), "{what}: uncommitted files left: {:?}", hidden_files(&out));
}

/// A worker that stops answering without closing anything (SIGSTOP: what a partition
/// looks like from the other side) is declared lost by missed heartbeats; the job fails
/// over to the workers left instead of hanging, exactly.
#[test]
fn a_worker_that_falls_silent_is_declared_lost_and_the_job_fails_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let count = 30_000;
    let mut child = seq_on_workers(dir.path(), count, &[]);
    let silent = a_running_worker(&mut child);
    assert!(signal("-STOP", silent));
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().expect("poll").is_none() {
        if Instant::now() > deadline {
            signal("-CONT", silent);
            let _ = child.kill();
            panic!("the job hung with a silent worker");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    signal("-CONT", silent);
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {err}", out.status);
    assert!(err.contains("failure on attempt 0"), "the silent worker was never noticed: {err}");
    assert!(err.contains("no heartbeat") || err.contains("no frame") || err.contains("exchange"), "{err}");
    check_seq_output(dir.path(), count, "a silent worker");
}

/// A worker stalled for longer than the checkpoint timeout but less than the heartbeat
/// timeout: the checkpoints in flight are aborted, nothing restarts, later checkpoints
/// complete, and the output is exact.
#[test]
fn a_worker_stalled_during_checkpoints_aborts_them_and_a_later_one_completes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let count = 30_000;
    let mut child = seq_on_workers(dir.path(), count, &["--checkpoint-timeout", "1s", "--checkpoints-retained", "1000"]);
    let slow = a_running_worker(&mut child);
    assert!(signal("-STOP", slow));
    std::thread::sleep(Duration::from_millis(2_500));
    signal("-CONT", slow);
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {err}", out.status);
    assert!(!err.contains("failure on attempt"), "a stall shorter than the heartbeat timeout restarted the job: {err}");
    let failed: Vec<u64> =
        err.lines().filter(|l| l.contains("timed out")).filter_map(|l| l.split("snapshot ").nth(1)?.split(' ').next()?.parse().ok()).collect();
    let first_failed = *failed.iter().min().unwrap_or_else(|| panic!("no checkpoint timed out during the stall: {err}"));
    let completed: Vec<u64> = std::fs::read_dir(dir.path().join("ck").join("seqcheck"))
        .expect("checkpoints")
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("chk-")?.parse().ok())
        .collect();
    assert!(
        completed.iter().any(|id| *id > first_failed + 1 && !failed.contains(id)),
        "no checkpoint completed after the aborted {failed:?}: {completed:?}"
    );
    check_seq_output(dir.path(), count, "a stalled worker");
}

/// Three network namespaces on a bridge, as three hosts: `10.231.N.11..13`, the
/// coordinator at `10.231.N.1` on the bridge. Removed on drop.
struct TestHosts {
    tag: String,
    subnet: String,
}

fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip").args(args).output().expect("ip");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

impl TestHosts {
    fn new() -> TestHosts {
        let n = std::process::id() % 200 + 20;
        let hosts = TestHosts { tag: format!("rv{}", std::process::id() % 100_000), subnet: format!("10.231.{n}") };
        let (tag, subnet) = (&hosts.tag, &hosts.subnet);
        let bridge = format!("{tag}b");
        ip(&["link", "add", &bridge, "type", "bridge"]);
        ip(&["addr", "add", &format!("{subnet}.1/24"), "dev", &bridge]);
        ip(&["link", "set", &bridge, "up"]);
        for i in 1..=3 {
            let (ns, outer, inner) = (format!("{tag}w{i}"), format!("{tag}h{i}"), format!("{tag}n{i}"));
            ip(&["netns", "add", &ns]);
            ip(&["link", "add", &outer, "type", "veth", "peer", "name", &inner]);
            ip(&["link", "set", &inner, "netns", &ns]);
            ip(&["link", "set", &outer, "master", &bridge]);
            ip(&["link", "set", &outer, "up"]);
            ip(&["-n", &ns, "addr", "add", &format!("{subnet}.{}/24", 10 + i), "dev", &inner]);
            ip(&["-n", &ns, "link", "set", &inner, "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        hosts
    }

    fn ns(&self, i: u32) -> String {
        format!("{}w{i}", self.tag)
    }

    fn addr(&self, i: u32) -> String {
        format!("{}.{}", self.subnet, 10 + i)
    }

    /// Drop every packet between hosts `a` and `b` (both still reach the coordinator).
    fn partition(&self, a: u32, b: u32, on: bool) {
        let verb = if on { "add" } else { "del" };
        ip(&["-n", &self.ns(a), "route", verb, "blackhole", &format!("{}/32", self.addr(b))]);
        ip(&["-n", &self.ns(b), "route", verb, "blackhole", &format!("{}/32", self.addr(a))]);
    }
}

impl Drop for TestHosts {
    fn drop(&mut self) {
        for i in 1..=3 {
            // The veth pair goes with its outer end (a namespace can outlive its name while
            // closing sockets still hold it).
            let _ = std::process::Command::new("ip").args(["link", "del", &format!("{}h{i}", self.tag)]).status();
            let _ = std::process::Command::new("ip").args(["netns", "del", &self.ns(i)]).status();
        }
        let _ = std::process::Command::new("ip").args(["link", "del", &format!("{}b", self.tag)]).status();
    }
}

/// Two workers on different hosts (network namespaces) stop reaching each other while
/// both still reach the coordinator: the exchange's heartbeats time out, the job fails
/// over instead of hanging, runs again once the partition heals, and its output is exact.
#[test]
fn a_partition_between_two_workers_fails_the_job_over_and_it_recovers_exactly() {
    use std::io::BufRead as _;
    let hosts = TestHosts::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let count = 30_000;
    let job = seq_job(dir.path(), count, 5_000, "");
    let token = "partition-test-cluster-token-0123456789";
    let mut coordinator = rivulet()
        .args(["run", &job.display().to_string(), "--quiet", "--state-backend", "rocksdb", "--checkpoint-interval", "200ms"])
        .args(["--restart-attempts", "40", "--restart-delay", "500ms", "--parallelism", "3", "--scheduler", "standalone", "--workers", "3"])
        .args(["--cluster-listen", &format!("{}.1:0", hosts.subnet)])
        .arg("--checkpoint-dir")
        .arg(dir.path().join("ck"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("RIVULET_CLUSTER_TOKEN", token)
        .env("RIVULET_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("coordinator");
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let reader = {
        let (lines, stderr) = (lines.clone(), coordinator.stderr.take().expect("stderr"));
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().expect("lines").push(l);
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let cluster = loop {
        if let Some(a) = lines.lock().expect("lines").iter().find_map(|l| l.split("waiting for 3 workers at ").nth(1).map(str::to_owned)) {
            break a;
        }
        assert!(Instant::now() < deadline, "the coordinator did not listen: {:?}", lines.lock().expect("lines"));
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut workers: Vec<std::process::Child> = (1..=3)
        .map(|i| {
            std::process::Command::new("ip")
                .args(["netns", "exec", &hosts.ns(i), env!("CARGO_BIN_EXE_rivulet"), "worker", "--coordinator", &cluster])
                .args(["--advertise", &hosts.addr(i), "--slots", "1", "--name", &format!("host-{i}")])
                .arg("--data-dir")
                .arg(dir.path().join(format!("worker-{i}")))
                .env("RIVULET_CLUSTER_TOKEN", token)
                .env("RIVULET_CACHE_DIR", std::env::temp_dir().join("rivulet-test-compile-cache"))
                .env("RIVULET_LOG", "error")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("worker")
        })
        .collect();
    // Running for a moment on all three, then hosts 1 and 2 lose each other for 8 s.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lines.lock().expect("lines").iter().any(|l| l.contains("3 workers registered")) {
        assert!(Instant::now() < deadline, "workers did not register");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(1_500));
    hosts.partition(1, 2, true);
    std::thread::sleep(Duration::from_secs(8));
    hosts.partition(1, 2, false);
    let status = loop {
        if let Some(s) = coordinator.try_wait().expect("poll") {
            break s;
        }
        if Instant::now() > deadline + Duration::from_secs(120) {
            let _ = coordinator.kill();
            panic!("the job hung: {:?}", lines.lock().expect("lines"));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for w in &mut workers {
        let _ = w.kill();
        let _ = w.wait();
    }
    let _ = reader.join();
    let err = lines.lock().expect("lines").join("\n");
    assert!(status.success(), "{err}");
    for l in err.lines().filter(|l| l.contains("failure on attempt")) {
        println!("{l}");
    }
    assert!(err.contains("failure on attempt 0"), "the partition was never noticed: {err}");
    // (Which worker's report reaches the coordinator first decides the reported cause:
    // the silent peer, or a task that lost its input or output to it.)
    check_seq_output(dir.path(), count, "a partition between two workers");
    drop(hosts);
}
