//! `cargo bench -p rivulet --bench joins`: two-input operators and CEP.
//!
//! 1. Interval join (the `interval-join` example: orders meet payments of the same id
//!    within 15 minutes) and window co-group (`ad-attribution`: impressions and clicks
//!    per ad and minute) as `rivulet run` jobs at parallelism 1, memory and RocksDB,
//!    checkpoints every second, from JSON-lines files — against the same logic written
//!    natively in this process (parse, key, buffer/assign, pair/count, serialize, write),
//!    interleaved. Events/s, CPU-seconds (the job process's own rusage), events per
//!    CPU-second, peak RSS, and the Rivulet/native ratio per CPU-second.
//! 2. CEP: the `cep-login` example on 1,000,000 logins (Rust SDK's `cep`).
//! 3. State over time: an interval join of two rate-limited generators (±2 s of event
//!    time, 2,000 records/s each, 40 s) checkpointed every second; the size of each
//!    checkpoint's state files while input keeps growing — the buffers stay bounded.
//!
//! Prints markdown tables (copied into `docs/benchmarks.md`). Needs `make plugins`.
//! `RIVULET_BENCH_ROUNDS=N` (default 3) sets the rounds of part 1.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo").to_path_buf()
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn write_jsonl(path: &Path, rows: &[Value]) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    for r in rows {
        writeln!(f, "{r}").expect("write");
    }
}

/// Orders and payments (the interval-join example's input), time-ordered.
fn orders_and_payments(n: usize, dir: &Path) -> (PathBuf, PathBuf, usize) {
    let mut rng = Rng(0x5eed);
    let (mut orders, mut payments) = (Vec::new(), Vec::new());
    let mut t = 1_700_000_000_000i64;
    for i in 0..n {
        t += rng.below(200) as i64;
        orders.push(json!({"order_id": format!("o{i}"), "amount": rng.below(100_000) as f64 / 100.0, "timestamp": t}));
        for _ in 0..rng.below(3) + 1 {
            payments
                .push(json!({"order_id": format!("o{i}"), "paid": rng.below(100_000) as f64 / 100.0, "timestamp": t + rng.below(1_000_000) as i64}));
        }
    }
    payments.sort_by_key(|p| p["timestamp"].as_i64());
    let (o, p) = (dir.join("orders.jsonl"), dir.join("payments.jsonl"));
    write_jsonl(&o, &orders);
    write_jsonl(&p, &payments);
    (o, p, orders.len() + payments.len())
}

/// Impressions and clicks (the ad-attribution example's input), time-ordered.
fn impressions_and_clicks(n: usize, dir: &Path) -> (PathBuf, PathBuf, usize) {
    let mut rng = Rng(0xad5);
    let (mut imps, mut clicks) = (Vec::new(), Vec::new());
    let mut t = 1_700_000_000_000i64;
    for _ in 0..n {
        t += rng.below(20) as i64;
        let row = json!({"ad": format!("ad-{}", rng.below(1_000)), "user": format!("u{}", rng.below(100_000)), "timestamp": t});
        if rng.below(10) == 0 { clicks.push(row) } else { imps.push(row) }
    }
    let (i, c) = (dir.join("impressions.jsonl"), dir.join("clicks.jsonl"));
    write_jsonl(&i, &imps);
    write_jsonl(&c, &clicks);
    (i, c, n)
}

/// Logins (the cep-login example's input), time-ordered.
fn logins(n: usize, dir: &Path) -> PathBuf {
    let mut rng = Rng(0x1091);
    let mut t = 1_700_000_000_000i64;
    let rows: Vec<Value> = (0..n)
        .map(|_| {
            t += rng.below(10) as i64 + 1;
            json!({"user": format!("user-{}", rng.below(5_000)), "type": if rng.below(3) == 0 { "success" } else { "fail" }, "timestamp": t})
        })
        .collect();
    let p = dir.join("logins.jsonl");
    write_jsonl(&p, &rows);
    p
}

struct Sample {
    wall: f64,
    cpu: f64,
    rss_mb: f64,
}

/// Run `rivulet run job` with `params` to its end; its own rusage (wait4).
#[allow(unsafe_code, reason = "wait4 fills a status and an rusage we own")]
fn run_job(job: &str, params: &[(&str, &Path)], backend: &str, dir: &Path, extra: &[&str]) -> Sample {
    let _ = std::fs::remove_dir_all(dir.join("run"));
    let mut c = Command::new(env!("CARGO_BIN_EXE_rivulet"));
    c.args(["run", job, "--quiet", "--parallelism", "1", "--state-backend", backend, "--checkpoint-interval", "1s"]).current_dir(repo());
    for (k, v) in params {
        c.arg("--param").arg(format!("{k}={}", v.display()));
    }
    c.arg("--param").arg(format!("output={}", dir.join("run/out").display()));
    c.arg("--checkpoint-dir").arg(dir.join("run/ck")).arg("--data-dir").arg(dir.join("run/data")).args(extra);
    c.env("RIVULET_LOG", "error").stdout(Stdio::null()).stderr(Stdio::null());
    let t = Instant::now();
    #[allow(clippy::zombie_processes, reason = "reaped below with wait4, which also gives its rusage")]
    let child = c.spawn().expect("rivulet");
    // Peak RSS from the child's own high-water mark (its rusage's ru_maxrss would count
    // the pages of this process it was forked from).
    let pid = child.id();
    let peak = std::thread::spawn(move || {
        let mut kb = 0u64;
        while let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            let Some(hwm) = status.lines().find_map(|l| l.strip_prefix("VmHWM:")) else { break };
            kb = kb.max(hwm.trim().trim_end_matches("kB").trim().parse().unwrap_or(0));
            std::thread::sleep(Duration::from_millis(20));
        }
        kb
    });
    let mut status = 0;
    // SAFETY: `status` and `u` are valid out-pointers for this child's pid.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut u) };
    let wall = t.elapsed().as_secs_f64();
    assert!(pid > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "{job} failed ({status})");
    let tv = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    let rss_kb = peak.join().unwrap_or(0);
    Sample { wall, cpu: tv(u.ru_utime) + tv(u.ru_stime), rss_mb: rss_kb as f64 / 1024.0 }
}

/// CPU-seconds of this thread.
#[allow(unsafe_code, reason = "clock_gettime into a struct we own")]
fn thread_cpu() -> f64 {
    // SAFETY: `ts` is a valid, writable timespec.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).expect("read").lines().map(|l| serde_json::from_str(l).expect("json")).collect()
}

/// The interval join natively: both sides buffered per key by time, each arriving
/// record paired with the other side's records in range, buffers dropped by watermark.
/// Buffered records of one key: (time, record) of the left and of the right side.
type Sides = (Vec<(i64, Value)>, Vec<(i64, Value)>);

fn native_interval_join(orders: &Path, payments: &Path, out: &Path) -> usize {
    let (o, p) = (lines(orders), lines(payments));
    let mut buffers: HashMap<String, Sides> = HashMap::new();
    let mut w = std::io::BufWriter::new(std::fs::File::create(out).expect("out"));
    let (mut i, mut j, mut pairs, mut watermark) = (0, 0, 0, i64::MIN);
    while i < o.len() || j < p.len() {
        let take_left = j >= p.len() || (i < o.len() && o[i]["timestamp"].as_i64() <= p[j]["timestamp"].as_i64());
        let (rec, left) = if take_left { (&o[i], true) } else { (&p[j], false) };
        if take_left {
            i += 1
        } else {
            j += 1
        }
        let ts = rec["timestamp"].as_i64().unwrap_or_default();
        let key = rec["order_id"].as_str().unwrap_or_default().to_owned();
        let entry = buffers.entry(key).or_default();
        let others = if left { &entry.1 } else { &entry.0 };
        for (t, other) in others {
            let (ot, pt, order, payment) = if left { (ts, *t, rec, other) } else { (*t, ts, other, rec) };
            if ot <= pt && pt <= ot + 900_000 {
                let row = json!({"order_id": order["order_id"], "amount": order["amount"], "paid": payment["paid"], "order_timestamp": ot, "payment_timestamp": pt});
                writeln!(w, "{row}").expect("write");
                pairs += 1;
            }
        }
        if left {
            entry.0.push((ts, rec.clone()))
        } else {
            entry.1.push((ts, rec.clone()))
        }
        // Drop what the watermark makes unmatchable, every 1,000 records.
        watermark = watermark.max(ts - 5_001);
        if (i + j) % 1_000 == 0 {
            buffers.retain(|_, (l, r)| {
                l.retain(|(t, _)| t + 900_000 >= watermark);
                r.retain(|(t, _)| *t >= watermark);
                !(l.is_empty() && r.is_empty())
            });
        }
    }
    pairs
}

/// The co-group natively: impressions and clicks counted per ad and minute.
fn native_co_group(impressions: &Path, clicks: &Path, out: &Path) -> usize {
    let mut windows: BTreeMap<(String, i64), (u64, u64)> = BTreeMap::new();
    for (path, click) in [(impressions, false), (clicks, true)] {
        for r in lines(path) {
            let ts = r["timestamp"].as_i64().unwrap_or_default();
            let e = windows.entry((r["ad"].as_str().unwrap_or_default().to_owned(), ts - ts.rem_euclid(60_000))).or_default();
            if click { e.1 += 1 } else { e.0 += 1 }
        }
    }
    let mut w = std::io::BufWriter::new(std::fs::File::create(out).expect("out"));
    let mut n = 0;
    for ((ad, start), (i, c)) in windows.iter().filter(|(_, (i, _))| *i > 0) {
        let row = json!({"ad": ad, "window_start": start, "window_end": start + 60_000, "impressions": i, "clicks": c, "ctr": *c as f64 / *i as f64});
        writeln!(w, "{row}").expect("write");
        n += 1;
    }
    n
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn part1(rounds: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (orders, payments, join_events) = orders_and_payments(200_000, dir.path());
    let (imps, clicks, ad_events) = impressions_and_clicks(500_000, dir.path());
    println!("### Two-input operators vs the same logic native (parallelism 1, checkpoints every 1 s, {rounds} interleaved rounds, medians)\n");
    println!("| job | events | engine | wall s | CPU s | events/s | events per CPU-s | peak RSS MB | Rivulet/native per CPU-s |");
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|");
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a Path)>, usize, Box<dyn Fn(&Path) -> usize + 'a>);
    let cases: Vec<Case<'_>> = vec![
        (
            "interval join",
            "plugins-examples/interval-join/job.yaml",
            vec![("orders", orders.as_path()), ("payments", payments.as_path())],
            join_events,
            Box::new(|out: &Path| native_interval_join(&orders, &payments, out)),
        ),
        (
            "window co-group",
            "plugins-examples/ad-attribution/job.yaml",
            vec![("impressions", imps.as_path()), ("clicks", clicks.as_path())],
            ad_events,
            Box::new(|out: &Path| native_co_group(&imps, &clicks, out)),
        ),
    ];
    for (name, job, params, events, native) in &cases {
        let mut runs: BTreeMap<&str, Vec<Sample>> = BTreeMap::new();
        for _ in 0..rounds {
            for backend in ["memory", "rocksdb"] {
                runs.entry(backend).or_default().push(run_job(job, params, backend, dir.path(), &[]));
            }
            let (t, c) = (Instant::now(), thread_cpu());
            let rows = native(&dir.path().join("native.jsonl"));
            assert!(rows > 0);
            runs.entry("native").or_default().push(Sample { wall: t.elapsed().as_secs_f64(), cpu: thread_cpu() - c, rss_mb: 0.0 });
        }
        let native_cpu = median(runs["native"].iter().map(|s| s.cpu).collect());
        for engine in ["memory", "rocksdb", "native"] {
            let s = &runs[engine];
            let (wall, cpu) = (median(s.iter().map(|x| x.wall).collect()), median(s.iter().map(|x| x.cpu).collect()));
            let rss = median(s.iter().map(|x| x.rss_mb).collect());
            let label = if engine == "native" { "native Rust, in-process".to_owned() } else { format!("Rivulet, {engine}") };
            let ratio = if engine == "native" { "1".to_owned() } else { format!("{:.2}", native_cpu / cpu) };
            let rss = if engine == "native" { "–".to_owned() } else { format!("{rss:.0}") };
            println!(
                "| {name} | {events} | {label} | {wall:.2} | {cpu:.2} | {:.0} | {:.0} | {rss} | {ratio} |",
                *events as f64 / wall,
                *events as f64 / cpu
            );
        }
    }
}

fn part2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = logins(1_000_000, dir.path());
    println!("\n### CEP: cep-login on 1,000,000 logins (5,000 users, parallelism 1, checkpoints every 1 s)\n");
    println!("| backend | wall s | CPU s | events/s | events per CPU-s | peak RSS MB | matches |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for backend in ["memory", "rocksdb"] {
        let s = run_job("plugins-examples/cep-login/job.yaml", &[("input", &input)], backend, dir.path(), &[]);
        let matches = std::fs::read_dir(dir.path().join("run/out"))
            .map(|rd| rd.flatten().map(|e| std::fs::read_to_string(e.path()).map_or(0, |t| t.lines().count())).sum::<usize>())
            .unwrap_or(0);
        println!("| {backend} | {:.2} | {:.2} | {:.0} | {:.0} | {:.0} | {matches} |", s.wall, s.cpu, 1e6 / s.wall, 1e6 / s.cpu, s.rss_mb);
    }
}

/// Sum of the state files' sizes in a checkpoint's manifest.
fn state_bytes(manifest: &Path) -> Option<u64> {
    let m: Value = serde_json::from_str(&std::fs::read_to_string(manifest).ok()?).ok()?;
    let mut total = 0;
    for op in m["operators"].as_array()? {
        for st in op["subtasks"].as_array()? {
            total += st["state"]["size"].as_u64().unwrap_or(0);
        }
    }
    Some(total)
}

fn part3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ops = repo().join("tests/fixtures/wasm/fixture_test_ops.wasm");
    let (rate, seconds) = (2_000u64, 40u64);
    let source = |id: &str| {
        format!(
            "  - {{id: {id}, type: generator, count: {}, keys: 1000, rate: {rate}, interval_ms: 1, event_time: {{field: timestamp, max_out_of_orderness_ms: 0}}}}\n",
            rate * seconds
        )
    };
    let yaml = format!(
        "name: join-state\nsources:\n{}{}operators:\n  - {{uid: pairs, plugin: {}, config: {{mode: join}}, key_by: {{field: key}}, inputs: {{left: [left], right: [right]}}, interval_join: {{lower_ms: -2000, upper_ms: 2000}}}}\nsinks:\n  - {{id: out, type: file, path: out, inputs: [pairs]}}\n",
        source("left"),
        source("right"),
        ops.display()
    );
    let job = dir.path().join("job.yaml");
    std::fs::write(&job, yaml).expect("job");
    let ck = dir.path().join("ck");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rivulet"))
        .args(["run", &job.display().to_string(), "--quiet", "--checkpoint-interval", "1s", "--state-backend", "memory"])
        .arg("--checkpoint-dir")
        .arg(&ck)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .current_dir(dir.path())
        .env("RIVULET_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rivulet");
    let started = Instant::now();
    let mut seen: BTreeMap<String, (f64, u64)> = BTreeMap::new();
    while child.try_wait().expect("poll").is_none() {
        for e in std::fs::read_dir(ck.join("join-state")).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("chk-")
                && !seen.contains_key(&name)
                && let Some(b) = state_bytes(&e.path().join("_manifest.json"))
            {
                seen.insert(name, (started.elapsed().as_secs_f64(), b));
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "\n### Interval join state over time (±2 s of event time, two generators at {rate} records/s each, checkpoints every 1 s, memory backend)\n"
    );
    println!("| checkpoint | at s | records in so far (both inputs) | state files, bytes |");
    println!("|---|---:|---:|---:|");
    for (i, (name, (at, bytes))) in seen.iter().enumerate() {
        if i % 4 == 0 || i + 1 == seen.len() {
            println!("| {name} | {at:.1} | ~{} | {bytes} |", (*at * 2.0 * rate as f64).min((2 * rate * seconds) as f64) as u64);
        }
    }
}

fn main() {
    let rounds = std::env::var("RIVULET_BENCH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(3);
    let only = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    match only.as_deref() {
        Some("state") => part3(),
        Some("cep") => part2(),
        _ => {
            part1(rounds);
            part2();
            part3();
        }
    }
}
