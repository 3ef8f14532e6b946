//! `cargo bench -p rivulet --bench server [-- --quick]`: what server mode costs.
//!
//! 1. Hot-swap downtime (counter v1 → v2, RocksDB): from the stop request to the first
//!    record the new version's sink receives, for small state and for a job that also
//!    holds ~1 GB of keyed state (1M keys × 1 KiB in another operator, all of it in the
//!    savepoint the swap goes through). With `--quick`: 100k keys (~100 MB).
//! 2. REST latency: 100 clients asking `GET /v1/jobs/{id}` concurrently.
//!
//! Runs a real `rivulet server` on 127.0.0.1 and prints markdown tables (copied into
//! `docs/benchmarks.md`). Needs `make plugins`.

mod support;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::dir_size;

use serde_json::{Value, json};

struct Server {
    child: Child,
    url: String,
    agent: ureq::Agent,
}

impl Server {
    fn start(data: &Path) -> Server {
        let log = data.with_extension("log");
        let child = Command::new(env!("CARGO_BIN_EXE_rivulet"))
            .args(["server", "--listen", "127.0.0.1:0", "--state-backend", "rocksdb", "--checkpoint-interval", "5s", "--data-dir"])
            .arg(data)
            // Outputs go next to the data directory.
            .arg("--allow-path")
            .arg(data.parent().expect("the data dir's parent"))
            // The swap's phases are logged at info.
            .env("RIVULET_LOG", "warn,rivulet::guest=info,rivulet_server::upgrade=info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("server");
        let url = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(rest) = text.split("server listening on ").nth(1) {
                break rest.lines().next().unwrap_or_default().trim().to_owned();
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let agent: ureq::Agent =
            ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(900))).build().into();
        Server { child, url, agent }
    }

    fn get(&self, path: &str) -> Value {
        let mut r = self.agent.get(&format!("{}{path}", self.url)).call().expect("GET");
        let mut text = String::new();
        let _ = r.body_mut().as_reader().read_to_string(&mut text);
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    fn post(&self, path: &str, ctype: &str, body: Vec<u8>) -> Value {
        let mut r = self.agent.post(&format!("{}{path}", self.url)).header("Content-Type", ctype).send(&body[..]).expect("POST");
        let mut text = String::new();
        let _ = r.body_mut().as_reader().read_to_string(&mut text);
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        assert!(r.status().is_success(), "POST {path}: {v}");
        v
    }

    fn node_in(&self, id: &str, node: &str) -> u64 {
        let v = self.get(&format!("/v1/jobs/{id}"));
        v["nodes"].as_array().and_then(|n| n.iter().find(|n| n["id"] == node)).and_then(|n| n["records_in"].as_u64()).unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo").to_path_buf()
}

fn job(out: &Path, ballast_keys: u64) -> Value {
    let mut sources = vec![json!({"id": "gen", "type": "generator", "keys": 10, "rate": 2000})];
    let mut operators = vec![json!({"uid": "counter", "plugin": "counter@1", "inputs": ["gen"], "key_by": {"field": "key"}})];
    if ballast_keys > 0 {
        sources.push(json!({"id": "fill", "type": "generator", "count": ballast_keys, "keys": ballast_keys}));
        // Also fed by the unbounded `gen`, so it never finishes and its state stays live.
        operators.push(json!({"uid": "ballast", "plugin": "ops@1", "inputs": ["fill", "gen"], "key_by": {"field": "key"}, "config": {"mode": "ballast", "bytes": 1024}}));
    }
    json!({
        "name": "swap-bench",
        "sources": sources,
        "operators": operators,
        "sinks": [{"id": "out", "type": "file", "path": out.display().to_string(), "inputs": ["counter"]}],
    })
}

/// Submit, wait for steady output (and the ballast to be loaded), swap, return the
/// swap's answer.
fn swap_once(srv: &Server, tmp: &Path, n: usize, ballast_keys: u64) -> Value {
    let out = tmp.join(format!("out-{n}"));
    let sub = json!({"spec": job(&out, ballast_keys)});
    let id = srv.post("/v1/jobs", "application/json", sub.to_string().into_bytes())["id"].as_str().expect("id").to_owned();
    let loaded = Instant::now();
    while srv.node_in(&id, "out") < 500 || (ballast_keys > 0 && srv.node_in(&id, "ballast") < ballast_keys + 500) {
        std::thread::sleep(Duration::from_millis(50));
    }
    if ballast_keys > 0 {
        eprintln!("ballast of {ballast_keys} keys loaded in {:.1}s", loaded.elapsed().as_secs_f64());
    }
    let started = Instant::now();
    let v = srv.post(&format!("/v1/jobs/{id}/upgrade"), "application/json", json!({"plugins": {"counter": "counter@2"}}).to_string().into_bytes());
    eprintln!("swap answered in {:.2}s: {v}", started.elapsed().as_secs_f64());
    let sp_bytes = v["savepoint"].as_str().map_or(0, |p| dir_size(Path::new(p)));
    srv.post(&format!("/v1/jobs/{id}/stop"), "application/json", b"{}".to_vec());
    json!({"downtime_ms": v["downtime_ms"], "result": v["result"], "savepoint_bytes": sp_bytes})
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let srv = Server::start(&tmp.path().join("data"));
    let upload = |name: &str, version: &str, path: &str| {
        let bytes = std::fs::read(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e} (run `make plugins`)"));
        srv.post(&format!("/v1/plugins?name={name}&version={version}"), "application/wasm", bytes);
    };
    upload("counter", "1", "plugins-examples/counter-v1/counter_v1.wasm");
    upload("counter", "2", "plugins-examples/counter-v2/counter_v2.wasm");
    upload("ops", "1", "tests/fixtures/wasm/fixture_test_ops.wasm");

    println!("| state | savepoint size | swap downtime (stop request → first output of v2) |");
    println!("|---|---|---|");
    let mut small = Vec::new();
    for n in 0..3 {
        let r = swap_once(&srv, tmp.path(), n, 0);
        small.push((r["downtime_ms"].as_u64().unwrap_or(0), r["savepoint_bytes"].as_u64().unwrap_or(0)));
    }
    small.sort_unstable();
    println!("| small (10 keys), median of 3 | {:.1} KB | {} ms |", small[1].1 as f64 / 1024.0, small[1].0);
    let keys = if quick { 100_000 } else { 1_000_000 };
    let r = swap_once(&srv, tmp.path(), 9, keys);
    println!(
        "| {keys} keys × 1 KiB in another operator | {:.0} MB | {} ms |",
        r["savepoint_bytes"].as_u64().unwrap_or(0) as f64 / (1 << 20) as f64,
        r["downtime_ms"]
    );
    // The server's own account of the phases (the last swap's line of its log).
    let log = std::fs::read_to_string(tmp.path().join("data").with_extension("log")).unwrap_or_default();
    if let Some(line) = log.lines().filter(|l| l.contains("swap phases")).last() {
        println!("phases of that swap (from t0, the stop request): {}", line.split("swap phases").nth(1).unwrap_or(line).trim());
    }

    // REST latency: 100 concurrent clients on the status of a running job.
    let out = tmp.path().join("out-rest");
    let id = srv.post("/v1/jobs", "application/json", json!({"spec": job(&out, 0)}).to_string().into_bytes())["id"].as_str().expect("id").to_owned();
    std::thread::sleep(Duration::from_millis(500));
    let per_client = if quick { 10 } else { 50 };
    let started = Instant::now();
    let handles: Vec<_> = (0..100)
        .map(|_| {
            let url = format!("{}/v1/jobs/{id}", srv.url);
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
                let mut lat = Vec::new();
                for _ in 0..per_client {
                    let t = Instant::now();
                    let mut r = agent.get(&url).call().expect("GET");
                    let mut text = String::new();
                    let _ = r.body_mut().as_reader().read_to_string(&mut text);
                    assert!(r.status().is_success());
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat: Vec<Duration> = handles.into_iter().flat_map(|h| h.join().expect("client")).collect();
    let wall = started.elapsed();
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1e3;
    println!();
    println!("| REST `GET /v1/jobs/{{id}}`, 100 concurrent clients | requests | p50 | p99 | max | requests/s |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| running job, 3 nodes | {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.0} |",
        lat.len(),
        pct(0.5),
        pct(0.99),
        pct(1.0),
        lat.len() as f64 / wall.as_secs_f64()
    );
    srv.post(&format!("/v1/jobs/{id}/stop"), "application/json", b"{}".to_vec());
}
