//! `rivulet server` over real HTTP on 127.0.0.1: auth on every route of the OpenAPI
//! document, bad uploads refused with nothing stored, the job lifecycle, hot swap v1 → v2
//! under continuous input with exact counts, a failed swap rolled back, rescale, and a
//! `kill -9` of the server with the job resuming after a restart.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::Digest as _;

use crate::fault::rivulet;
use crate::support::{fixture, read_jsonl, read_output, repo, wasm};

pub(crate) const TOKEN: &str = "test-token-0123456789abcdef";

/// A `rivulet server` process bound to 127.0.0.1 on a free port; killed on drop.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) url: String,
    log: PathBuf,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Server {
    pub(crate) fn start(data: &Path, token: Option<&str>, extra: &[&str]) -> Server {
        let mut srv = Server::launch(data, token, extra, &[]);
        srv.wait_listening(Duration::from_secs(60));
        srv
    }

    /// Start the process in the working directory `cwd` and wait until it listens.
    pub(crate) fn start_in(cwd: &Path, data: &Path, token: Option<&str>, extra: &[&str]) -> Server {
        let mut srv = Server::launch_with(data, token, extra, &[], Some(cwd));
        srv.wait_listening(Duration::from_secs(60));
        srv
    }

    /// Start the process with `envs` without waiting for it to listen.
    pub(crate) fn launch(data: &Path, token: Option<&str>, extra: &[&str], envs: &[(&str, &str)]) -> Server {
        Server::launch_with(data, token, extra, envs, None)
    }

    fn launch_with(data: &Path, token: Option<&str>, extra: &[&str], envs: &[(&str, &str)], cwd: Option<&Path>) -> Server {
        let log =
            data.with_extension(format!("log-{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rivulet"));
        cmd.args(["server", "--listen", "127.0.0.1:0", "--data-dir"]).arg(data).args(["--checkpoint-interval", "200ms"]).args(extra);
        // The tests' inputs and outputs live next to the data directory.
        cmd.arg("--allow-path").arg(data.parent().expect("the data dir's parent"));
        if let Some(t) = token {
            let f = data.with_extension("token");
            std::fs::write(&f, format!("{t}\n")).expect("token file");
            cmd.arg("--auth-token-file").arg(f);
        }
        cmd.env("RIVULET_CACHE_DIR", std::env::temp_dir().join("rivulet-test-compile-cache"));
        cmd.envs(envs.iter().copied());
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        let child = cmd.stdout(Stdio::null()).stderr(std::fs::File::create(&log).expect("log")).spawn().expect("start rivulet server");
        // A new connection per request: a server at its connection cap closes the
        // connection idle longest, which would otherwise be a pooled keep-alive one of
        // this client, and a request sent on it would meet a reset.
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(300)))
            .max_idle_connections_per_host(0)
            .build()
            .into();
        Server { child, url: String::new(), log, token: token.map(str::to_owned), agent }
    }

    /// Wait until it says where it listens (its URL then is set).
    pub(crate) fn wait_listening(&mut self, within: Duration) {
        self.url = listening_url(&mut self.child, &self.log, within);
        assert!(self.url.starts_with("http://127.0.0.1:"), "{}", self.url);
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its exit status, if it exits within `within`.
    pub(crate) fn exit_within(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    pub(crate) fn request(&self, method: &str, path: &str, token: Option<&str>, body: Option<(&str, Vec<u8>)>) -> (u16, Value) {
        let url = format!("{}{path}", self.url);
        let auth = token.map(|t| format!("Bearer {t}"));
        let resp = match method {
            "GET" | "DELETE" => {
                let mut r = if method == "GET" { self.agent.get(&url) } else { self.agent.delete(&url) };
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            _ => {
                let mut r = self.agent.post(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                let (ctype, bytes) = body.unwrap_or(("application/json", b"{}".to_vec()));
                r.header("Content-Type", ctype).send(&bytes[..])
            }
        };
        let mut resp = resp.unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.log_text()));
        let status = resp.status().as_u16();
        let mut text = String::new();
        let _ = resp.body_mut().as_reader().read_to_string(&mut text);
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub(crate) fn get(&self, path: &str) -> (u16, Value) {
        self.request("GET", path, self.token.as_deref(), None)
    }

    pub(crate) fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.request("POST", path, self.token.as_deref(), Some(("application/json", body.to_string().into_bytes())))
    }

    pub(crate) fn upload(&self, name: &str, version: &str, bytes: Vec<u8>) -> (u16, Value) {
        self.request("POST", &format!("/v1/plugins?name={name}&version={version}"), self.token.as_deref(), Some(("application/wasm", bytes)))
    }

    pub(crate) fn job(&self, id: &str) -> Value {
        let (s, v) = self.get(&format!("/v1/jobs/{id}"));
        assert_eq!(s, 200, "{v}");
        v
    }

    pub(crate) fn wait_status(&self, id: &str, want: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let v = self.job(id);
            if v["status"] == want {
                return v;
            }
            assert!(Instant::now() < deadline, "job {id} is {} not {want}: {v:#}\n{}", v["status"], self.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Records the job's sink has received in its current run.
    pub(crate) fn sink_in(&self, id: &str) -> u64 {
        let v = self.job(id);
        v["nodes"].as_array().and_then(|n| n.iter().find(|n| n["kind"] == "sink")).and_then(|n| n["records_in"].as_u64()).unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub(crate) fn counter_job(out: &Path, count: u64, rate: u64, plugin: &str) -> Value {
    json!({
        "name": "counter",
        "sources": [{"id": "gen", "type": "generator", "count": count, "keys": 10, "rate": rate}],
        "operators": [{"uid": "counter", "plugin": plugin, "inputs": ["gen"], "key_by": {"field": "key"}}],
        "sinks": [{"id": "out", "type": "file", "path": out.display().to_string(), "inputs": ["counter"]}],
    })
}

/// The exactly-once oracle for counter jobs: for each key, the committed counts are
/// 1..n, each once; the n add up to the records generated.
pub(crate) fn assert_exact_counts(out: &Path, total: u64) -> Vec<Value> {
    let rows = read_jsonl(out);
    let mut per_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in &rows {
        per_key.entry(r["key"].as_str().expect("key").to_owned()).or_default().push(r["count"].as_u64().expect("count"));
    }
    let mut sum = 0;
    for (k, mut counts) in per_key {
        counts.sort_unstable();
        let n = counts.len() as u64;
        assert_eq!(counts, (1..=n).collect::<Vec<_>>(), "key {k}: counts are not exactly 1..{n} (lost or duplicated records)");
        sum += n;
    }
    assert_eq!(sum, total, "records lost or duplicated");
    rows
}

pub(crate) fn counter_v1() -> Vec<u8> {
    std::fs::read(wasm("plugins-examples/counter-v1/counter_v1.wasm")).expect("counter v1")
}

fn counter_v2() -> Vec<u8> {
    std::fs::read(wasm("plugins-examples/counter-v2/counter_v2.wasm")).expect("counter v2")
}

#[test]
fn auth_bad_uploads_and_the_job_lifecycle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let srv = Server::start(&data, Some(TOKEN), &["--max-plugin-mb", "1"]);

    // Auth: /healthz and the web UI's page are open (the page asks for the token);
    // every API route needs the token.
    let (s, health) = srv.request("GET", "/healthz", None, None);
    assert_eq!(s, 200);
    assert_eq!(health["auth"], true, "{health}");
    assert!(health["version"].is_string() && health["uptime_s"].is_number(), "{health}");
    let (s, page) = srv.request("GET", "/", None, None);
    assert_eq!(s, 200);
    assert!(page.as_str().is_some_and(|p| p.contains("<title>Rivulet</title>")), "{page}");
    let (s, page) = srv.request("GET", "/jobs/anything", None, None);
    assert_eq!(s, 200, "app routes get the app: {page}");
    if health["ui"] == true {
        let (s, _) = srv.request("GET", "/assets/no-such-asset.js", None, None);
        assert_eq!(s, 404, "a missing asset is not the app page");
    }
    assert_eq!(srv.request("GET", "/v1/no-such-route", None, None).0, 401);
    assert_eq!(srv.request("GET", "/v1/jobs", None, None).0, 401);
    assert_eq!(srv.request("GET", "/v1/jobs", Some("wrong-token-wrong-token"), None).0, 401);
    let (s, doc) = srv.get("/v1/openapi.json");
    assert_eq!(s, 200);
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 15, "{paths:?}");
    assert_eq!(doc["paths"]["/healthz"]["get"]["security"], json!([]), "/healthz needs no token, and says so");
    for (path, item) in paths {
        for method in item.as_object().expect("methods").keys() {
            if path == "/healthz" {
                continue;
            }
            // The document says what the server does: 401 and 403 come before any handler.
            let documented = &item[method.as_str()]["responses"];
            assert!(documented.get("401").is_some() && documented.get("403").is_some(), "{method} {path}: {documented}");
            let concrete: String = path.split('/').map(|seg| if seg.starts_with('{') { "x" } else { seg }).collect::<Vec<_>>().join("/");
            let (s, v) = srv.request(&method.to_uppercase(), &concrete, None, Some(("application/json", b"{}".to_vec())));
            assert_eq!(s, 401, "{method} {path} without a token: {v}");
            assert!(v["error"].as_str().is_some_and(|e| e.contains("token")), "{v}");
        }
    }

    // Bad uploads: a 4xx naming the problem, nothing stored.
    let mut rng = crate::support::Rng(7);
    let random: Vec<u8> = (0..4096).map(|_| rng.below(256) as u8).collect();
    let bad: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("random", random, 422, "not a WebAssembly file"),
        ("core", b"\0asm\x01\0\0\0".to_vec(), 422, "core WebAssembly module"),
        ("wrongworld", std::fs::read(fixture("fixture_wrong_world")).expect("fixture"), 422, "does not match the world"),
        ("needs-import", std::fs::read(fixture("fixture_unknown_import")).expect("fixture"), 422, "fixture:imports/secrets"),
        ("big", vec![0u8; (1 << 20) + 10], 413, "larger than"),
    ];
    for (name, bytes, status, needle) in bad {
        let (s, v) = srv.upload(name, "1", bytes);
        assert_eq!(s, status, "{name}: {v}");
        assert!(v["error"].as_str().is_some_and(|e| e.contains(needle)), "{name}: {v}");
    }
    let (s, v) = srv.upload("bad%20name%21", "1", counter_v1());
    assert_eq!(s, 400, "{v}");
    let (s, v) = srv.request("POST", "/v1/plugins?name=a&version=1&colour=red", Some(TOKEN), Some(("application/wasm", counter_v1())));
    assert_eq!(s, 400, "unknown query field: {v}");
    assert_eq!(srv.get("/v1/plugins").1, json!([]), "a refused upload must store nothing");
    let stored: Vec<_> = std::fs::read_dir(data.join("plugins")).expect("plugins dir").filter_map(Result::ok).map(|e| e.file_name()).collect();
    assert!(stored.iter().all(|n| n == "index.json"), "{stored:?}");

    // Good uploads: raw and multipart; content-addressed; idempotent; versions immutable.
    let v1 = counter_v1();
    let (s, meta) = srv.upload("counter", "1", v1.clone());
    assert_eq!(s, 201, "{meta}");
    assert_eq!(meta["digest"], format!("sha256:{}", hex::encode(sha2::Sha256::digest(&v1))));
    assert_eq!(meta["wit_version"], "0.4.0");
    assert_eq!(srv.upload("counter", "1", v1.clone()).0, 200);
    assert_eq!(srv.upload("counter", "1", counter_v2()).0, 409);
    let boundary = "rivulet-test-boundary";
    let mut form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"counter_v2.wasm\"\r\nContent-Type: application/wasm\r\n\r\n"
    )
    .into_bytes();
    form.extend(counter_v2());
    form.extend(format!("\r\n--{boundary}--\r\n").into_bytes());
    let ctype = format!("multipart/form-data; boundary={boundary}");
    let (s, v) = srv.request("POST", "/v1/plugins?name=counter&version=2", Some(TOKEN), Some((&ctype, form)));
    assert_eq!(s, 201, "multipart: {v}");
    let (s, v) = srv.get("/v1/plugins/counter/2");
    assert_eq!(s, 200);
    assert!(v["exports"].as_array().is_some_and(|e| e.iter().any(|x| x.as_str().is_some_and(|x| x.starts_with("rivulet:operator/operator")))), "{v}");

    // Broken submissions.
    let out = dir.path().join("out");
    let (s, v) = srv.post("/v1/jobs", json!({"spec": counter_job(&out, 10, 10, "counter@9")}));
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().is_some_and(|e| e.contains("counter@9")), "{v}");
    let (s, v) = srv.post("/v1/jobs", json!({"spec": counter_job(&out, 10, 10, "counter@1"), "colour": "red"}));
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().is_some_and(|e| e.contains("colour")), "{v}");

    // Lifecycle: submit (as YAML), status, savepoint, refused delete, metrics, finish.
    let total = 6000;
    let yaml = serde_yaml::to_string(&counter_job(&out, total, 2000, "counter@1")).expect("yaml");
    let (s, job) = srv.request("POST", "/v1/jobs", Some(TOKEN), Some(("application/yaml", yaml.into_bytes())));
    assert_eq!(s, 201, "{job}");
    let id = job["id"].as_str().expect("id").to_owned();
    let v = srv.wait_status(&id, "running", Duration::from_secs(10));
    let counter = v["nodes"].as_array().and_then(|n| n.iter().find(|n| n["id"] == "counter")).cloned().expect("counter node");
    assert_eq!(counter["plugin"], "counter@1");
    let (s, sp) = srv.post(&format!("/v1/jobs/{id}/savepoints"), json!({}));
    assert_eq!(s, 202, "{sp}");
    let trigger = sp["trigger"].as_str().expect("trigger").to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let sp = loop {
        let (_, v) = srv.get(&format!("/v1/jobs/{id}/savepoints/{trigger}"));
        if v["status"] != "in_progress" {
            break v;
        }
        assert!(Instant::now() < deadline, "savepoint did not complete");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(sp["status"], "completed", "{sp}");
    let (_, all) = srv.get("/v1/savepoints");
    assert!(all.as_array().is_some_and(|a| a.iter().any(|s| s["trigger"] == trigger.as_str())), "{all}");
    let (s, v) = srv.request("DELETE", "/v1/plugins/counter/1", Some(TOKEN), None);
    assert_eq!(s, 409, "a plugin in use must not be deleted: {v}");
    let (s, metrics) = srv.request("GET", "/metrics", Some(TOKEN), None);
    assert_eq!(s, 200);
    let text = metrics.as_str().unwrap_or_default();
    for needle in [
        "rivulet_records_in_total{",
        "node=\"counter\"",
        "rivulet_checkpoints_completed_total",
        "rivulet_plugin_guest_seconds{plugin=\"counter@1\"}",
        "rivulet_jobs{status=\"running\"}",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
    srv.wait_status(&id, "finished", Duration::from_secs(60));
    assert_exact_counts(&out, total);
    let (_, cks) = srv.get(&format!("/v1/jobs/{id}/checkpoints"));
    assert!(cks["retained"].as_array().is_some_and(|a| !a.is_empty()), "{cks}");
    assert!(cks["completed"].as_array().is_some_and(|a| !a.is_empty()), "{cks}");
    let (_, history) = srv.get(&format!("/v1/jobs/{id}/history"));
    let kinds: Vec<&str> = history.as_array().expect("history").iter().filter_map(|h| h["kind"].as_str()).collect();
    assert_eq!(kinds, ["submitted", "savepoint", "finished"], "{history}");
    // A finished job no longer holds its plugin.
    assert_eq!(srv.request("DELETE", "/v1/plugins/counter/2", Some(TOKEN), None).0, 200);
    // A deleted version keeps meaning its bytes: other bytes are refused and leave no
    // file behind; the same bytes may come back.
    let (s, v) = srv.upload("counter", "2", counter_v1());
    assert_eq!(s, 409, "{v}");
    assert!(v["error"].as_str().is_some_and(|e| e.contains("was deleted")), "{v}");
    let stray = std::fs::read_dir(data.join("plugins")).expect("plugins").filter_map(Result::ok).filter(|d| d.path().is_dir()).filter(|d| {
        std::fs::read_dir(d.path()).into_iter().flatten().filter_map(Result::ok).any(|f| f.file_name().to_string_lossy() == "counter@2.wasm")
    });
    assert_eq!(stray.count(), 0, "a refused upload leaves no component file");
    assert_eq!(srv.upload("counter", "2", counter_v2()).0, 201);

    // Stop with a savepoint, then a new job from it: together exactly one run's output.
    let out2 = dir.path().join("out2");
    let (s, job) = srv.post("/v1/jobs", json!({"spec": counter_job(&out2, total, 1000, "counter@1")}));
    assert_eq!(s, 201, "{job}");
    let id = job["id"].as_str().expect("id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    while srv.sink_in(&id) < 1000 {
        assert!(Instant::now() < deadline, "no output");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (s, stopped) = srv.post(&format!("/v1/jobs/{id}/stop"), json!({"savepoint": true}));
    assert_eq!(s, 200, "{stopped}");
    assert_eq!(stopped["status"], "stopped");
    let savepoint = stopped["history"].as_array().and_then(|h| h.last()).and_then(|e| e["savepoint"].as_str()).expect("savepoint").to_owned();
    let committed = read_jsonl(&out2).len() as u64;
    assert!(committed > 0 && committed < total, "{committed}");
    let (s, job) = srv.post("/v1/jobs", json!({"spec": counter_job(&out2, total, 5000, "counter@1"), "savepoint": savepoint}));
    assert_eq!(s, 201, "{job}");
    srv.wait_status(job["id"].as_str().expect("id"), "finished", Duration::from_secs(60));
    assert_exact_counts(&out2, total);

    // Guest logs and traps, per job.
    assert_eq!(srv.upload("ops", "1", std::fs::read(fixture("fixture_test_ops")).expect("fixture")).0, 201);
    assert_eq!(srv.upload("trap", "1", std::fs::read(fixture("fixture_trap")).expect("fixture")).0, 201);
    let small = |plugin: &str, config: Value, restarts: u32| {
        json!({"spec": {
            "name": "small",
            "sources": [{"id": "gen", "type": "generator", "count": 3, "keys": 3}],
            "operators": [{"uid": "op", "plugin": plugin, "inputs": ["gen"], "key_by": {"field": "key"}, "config": config}],
            "sinks": [{"id": "out", "type": "file", "path": dir.path().join(format!("out-{plugin}")).display().to_string(), "inputs": ["op"]}],
            "restart": {"attempts": restarts, "delay_ms": 10},
        }})
    };
    let (s, job) = srv.post("/v1/jobs", small("ops@1", json!({"mode": "wasi"}), 0));
    assert_eq!(s, 201, "{job}");
    let id = job["id"].as_str().expect("id").to_owned();
    srv.wait_status(&id, "finished", Duration::from_secs(60));
    let (_, logs) = srv.get(&format!("/v1/jobs/{id}/logs"));
    let lines = logs.as_array().expect("logs");
    assert!(lines.iter().any(|l| l["level"] == "stdout" && l["message"] == "guest stdout line" && l["operator"] == "op"), "{logs:#}");
    assert!(lines.iter().any(|l| l["level"] == "stderr" && l["message"] == "guest stderr line"), "{logs:#}");
    let (s, job) = srv.post("/v1/jobs", small("trap@1", json!({}), 2));
    assert_eq!(s, 201, "{job}");
    let id = job["id"].as_str().expect("id").to_owned();
    let failed = srv.wait_status(&id, "failed", Duration::from_secs(60));
    assert!(failed["error"].as_str().is_some_and(|e| e.contains("deliberate trap")), "{failed:#}");
    let (_, exceptions) = srv.get(&format!("/v1/jobs/{id}/exceptions"));
    let ex = exceptions.as_array().and_then(|e| e.first()).cloned().expect("an exception");
    assert_eq!(ex["operator"], "op", "{ex}");
    assert!(ex["plugin"].as_str().is_some_and(|p| p.starts_with("trap@1")), "{ex}");
    assert!(ex["reason"].as_str().is_some_and(|r| r.contains("deliberate trap")), "{ex}");
    let (_, metrics) = srv.request("GET", "/metrics", Some(TOKEN), None);
    let metrics = metrics.as_str().unwrap_or_default();
    assert!(metrics.contains("rivulet_plugin_traps_total{plugin=\"trap@1"), "{metrics}");
    // Two restarts, then the third failure ends the job: counted after the run ended.
    assert_eq!(exceptions.as_array().map(Vec::len), Some(3), "{exceptions:#}");
    // Paged from the newest: the last one, then the one before it.
    let (_, newest) = srv.get(&format!("/v1/jobs/{id}/exceptions?limit=1"));
    assert_eq!(newest.as_array().map(|a| (a.len(), a[0]["attempt"].clone())), Some((1, json!(2))), "{newest}");
    let (_, before) = srv.get(&format!("/v1/jobs/{id}/exceptions?offset=1&limit=1"));
    assert_eq!(before[0]["attempt"], 1, "{before}");
    assert_eq!(srv.get(&format!("/v1/jobs/{id}/exceptions?limit=many")).0, 400);
    let restarts = metrics.lines().find(|l| l.starts_with("rivulet_job_restarts_total{") && l.contains(&format!("job=\"{id}\"")));
    assert!(restarts.is_some_and(|l| l.ends_with(" 2")), "{restarts:?} in {metrics}");
}

#[test]
fn hot_swap_under_input_rolls_back_a_failing_version_and_rescales_exactly() {
    hot_swap_case(&[]);
}

/// The same, with the job's tasks on three worker processes the server starts: the
/// swap, the rollback and the rescale move the job between workers.
#[test]
fn hot_swap_and_rescale_across_three_worker_processes() {
    hot_swap_case(&["--scheduler", "process", "--workers", "3"]);
}

fn hot_swap_case(scheduler: &[&str]) {
    let on_workers = !scheduler.is_empty();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = vec!["--state-backend", "rocksdb"];
    args.extend_from_slice(scheduler);
    let srv = Server::start(&dir.path().join("data"), None, &args);
    // On workers: how many ran a share at once, sampled all along.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = on_workers.then(|| {
        let (url, stop) = (srv.url.clone(), stop.clone());
        std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
            let mut most = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(mut r) = agent.get(&format!("{url}/v1/workers")).call() {
                    let v: Value = r.body_mut().read_json().unwrap_or(Value::Null);
                    let busy = v["workers"].as_array().map_or(0, |w| w.iter().filter(|w| w["tasks"].as_u64() > Some(0)).count());
                    most = most.max(busy);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            most
        })
    });
    let (s, workers) = srv.get("/v1/workers");
    assert_eq!(s, 200, "{workers}");
    if on_workers {
        assert_eq!(workers["scheduler"], "cluster", "{workers}");
        assert_eq!(workers["workers"].as_array().map(Vec::len), Some(3), "{workers}");
    } else {
        assert_eq!(workers, json!({"scheduler": "embedded", "cluster_addr": null, "workers": []}));
    }
    assert_eq!(srv.upload("counter", "1", counter_v1()).0, 201);
    assert_eq!(srv.upload("counter", "2", counter_v2()).0, 201);
    assert_eq!(srv.upload("counter", "broken", std::fs::read(fixture("fixture_trap_in_open")).expect("fixture")).0, 201);
    let out = dir.path().join("out");
    // 15 s of input at 2000 records/s: the swaps and the rescale all happen while it flows
    // (50 s on workers, where each swap also moves the job between processes and the
    // steps take about 30 s on a loaded machine).
    let total = if on_workers { 100000 } else { 30000 };
    let (s, job) = srv.post("/v1/jobs", json!({"spec": counter_job(&out, total, 2000, "counter@1"), "parallelism": 2}));
    assert_eq!(s, 201, "{job}");
    let id = job["id"].as_str().expect("id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    while srv.sink_in(&id) < 2000 {
        assert!(Instant::now() < deadline, "no output");
        std::thread::sleep(Duration::from_millis(20));
    }

    // A version whose `migrate-state` fails on v1's state: refused by the dry run, the
    // job untouched.
    let (s, v) = srv.post(&format!("/v1/jobs/{id}/upgrade"), json!({"plugins": {"counter": "counter@broken"}}));
    assert_eq!(s, 422, "{v}");
    assert!(v["error"].as_str().is_some_and(|e| e.contains("dry run") && e.contains("cannot migrate version 1 state")), "{v}");
    let v = srv.job(&id);
    assert_eq!(v["status"], "running", "{v}");
    assert_eq!(v["plugins"]["counter"]["version"], "1", "{v}");

    // The dry run alone (what the web UI shows before the swap): checked, job untouched.
    let (s, dry) = srv.post(&format!("/v1/jobs/{id}/upgrade"), json!({"plugins": {"counter": "counter@2"}, "dry_run": true}));
    assert_eq!(s, 200, "{dry}");
    assert_eq!(dry["result"], "dry_run_ok", "{dry}");
    assert_eq!(dry["versions"]["counter"], "counter@2", "{dry}");
    assert!(dry["detail"].as_str().is_some_and(|d| d.contains("migrate-state") || d.contains("no snapshot")), "{dry}");
    let v = srv.job(&id);
    assert_eq!(v["status"], "running", "{v}");
    assert_eq!(v["plugins"]["counter"]["version"], "1", "{v}");
    assert!(v["history"].as_array().is_some_and(|h| h.iter().all(|e| e["kind"] != "swap")), "{v}");
    let edges = v["edges"].as_array().expect("edges");
    assert!(edges.iter().any(|e| e["to"] == "counter" && e["partitioning"] == "hash"), "{v}");
    if let Some(c) = v["last_checkpoint"].as_object() {
        assert!(c["total_bytes"].as_u64() >= c["bytes"].as_u64() && c["at_ms"].as_i64().is_some(), "{v}");
    }

    // v1 → v2 while input keeps coming.
    let (s, swap) = srv.post(&format!("/v1/jobs/{id}/upgrade"), json!({"plugins": {"counter": "counter@2"}}));
    assert_eq!(s, 200, "{swap}\n{}", srv.log_text());
    eprintln!("swap: {swap}");
    assert_eq!(swap["result"], "swapped", "{swap}");
    assert_eq!(swap["versions"]["counter"], "counter@2");
    assert!(swap["downtime_ms"].as_u64().is_some(), "{swap}");
    // The swap's savepoint is native (RocksDB's files, no entry re-encoded), and still
    // readable: `savepoint inspect` reads the entries out of the files.
    let sp = swap["savepoint"].as_str().expect("savepoint").to_owned();
    let inspect = rivulet().args(["savepoint", "inspect", &sp]).output().expect("inspect");
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(inspect.status.success() && text.contains("RocksDB files"), "{text}{}", String::from_utf8_lossy(&inspect.stderr));
    assert!(text.lines().any(|l| l.contains("state count") && !l.contains(": 0 entries")), "the native savepoint's entries are listed: {text}");

    // v2 → a version that traps in `open`: rolled back to v2 from the same savepoint.
    let (s, failed) = srv.post(&format!("/v1/jobs/{id}/upgrade"), json!({"plugins": {"counter": "counter@broken"}}));
    assert_eq!(s, 200, "{failed}\n{}", srv.log_text());
    eprintln!("failed swap: {failed}");
    assert_eq!(failed["result"], "rolled_back", "{failed}");
    assert_eq!(failed["versions"]["counter"], "counter@2", "{failed}");
    assert!(failed["rollback_reason"].as_str().is_some_and(|r| r.contains("deliberate trap in open")), "{failed}");

    // Unknown operators and plugins are refused before anything stops.
    let (s, v) = srv.post(&format!("/v1/jobs/{id}/upgrade"), json!({"plugins": {"nope": "counter@2"}}));
    assert_eq!(s, 400, "{v}");

    // Rescale 2 → 3 through a savepoint.
    let (s, rescaled) = srv.post(&format!("/v1/jobs/{id}/rescale"), json!({"parallelism": 3}));
    assert_eq!(s, 200, "{rescaled}");
    assert_eq!(rescaled["result"], "swapped", "{rescaled}");
    let v = srv.job(&id);
    let counter = v["nodes"].as_array().and_then(|n| n.iter().find(|n| n["id"] == "counter")).cloned().expect("counter node");
    assert_eq!(counter["parallelism"], 3, "{v}");
    if on_workers {
        // Parallelism 3 on three one-slot workers: each runs a share of the job.
        // (The sampler saw every worker run a share once the job ran at parallelism 3.)
        // The job's view names the worker of each subtask.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v = srv.job(&id);
            let counter = v["nodes"].as_array().and_then(|n| n.iter().find(|n| n["id"] == "counter")).cloned().expect("counter node");
            let mut workers: Vec<u64> = counter["workers"].as_array().map(|w| w.iter().filter_map(Value::as_u64).collect()).unwrap_or_default();
            workers.sort_unstable();
            workers.dedup();
            if workers.len() == 3 {
                break;
            }
            assert!(Instant::now() < deadline, "the rescaled job's subtasks are not on three workers: {counter}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    srv.wait_status(&id, "finished", Duration::from_secs(120));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(most) = sampler.map(|t| t.join().expect("sampler")) {
        assert_eq!(most, 3, "parallelism 3 on three one-slot workers: each runs a share");
    }
    let rows = assert_exact_counts(&out, total);
    let v2 = rows.iter().filter(|r| r["version"] == 2).count();
    assert!(v2 > 0 && v2 < rows.len(), "both versions must have produced output ({v2} of {})", rows.len());
    // Counts continue across the swap: every v2 record of a key counts higher than every v1 record.
    let mut max_v1: BTreeMap<String, u64> = BTreeMap::new();
    let mut min_v2: BTreeMap<String, u64> = BTreeMap::new();
    for r in &rows {
        let k = r["key"].as_str().expect("key").to_owned();
        let c = r["count"].as_u64().expect("count");
        if r["version"] == 2 {
            let e = min_v2.entry(k).or_insert(u64::MAX);
            *e = (*e).min(c);
        } else {
            let e = max_v1.entry(k).or_insert(0);
            *e = (*e).max(c);
        }
    }
    for (k, m) in &min_v2 {
        assert!(max_v1.get(k).is_none_or(|v1| v1 < m), "key {k}: v2 counts must continue after v1's");
    }
    let (_, history) = srv.get(&format!("/v1/jobs/{id}/history"));
    let kinds: Vec<&str> = history.as_array().expect("history").iter().filter_map(|h| h["kind"].as_str()).collect();
    assert_eq!(kinds, ["submitted", "swap", "swap", "rollback", "rescale", "finished"], "{history:#}");
    assert!(history[1]["downtime_ms"].as_u64().is_some(), "{history:#}");
    let (_, exceptions) = srv.get(&format!("/v1/jobs/{id}/exceptions"));
    assert!(
        exceptions.as_array().is_some_and(|e| e.iter().any(|x| x["plugin"].as_str().is_some_and(|p| p.starts_with("counter@broken")))),
        "{exceptions:#}"
    );
}

#[test]
fn a_killed_server_resumes_its_jobs_and_the_cli_drives_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut srv = Server::start(&data, Some(TOKEN), &[]);
    let cli = |args: &[&str], url: &str| {
        let out =
            Command::new(env!("CARGO_BIN_EXE_rivulet")).args(args).args(["--server", url]).env("RIVULET_TOKEN", TOKEN).output().expect("rivulet");
        assert!(out.status.success(), "rivulet {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let v1 = repo().join("plugins-examples/counter-v1/counter_v1.wasm");
    let printed = cli(&["plugin", "upload", &v1.display().to_string(), "--name", "counter", "--version", "1"], &srv.url);
    assert!(printed.contains("registered counter@1 sha256:"), "{printed}");
    assert!(cli(&["plugin", "list"], &srv.url).contains("counter"));
    let out = dir.path().join("out");
    let spec = dir.path().join("job.yaml");
    let total = 8000;
    std::fs::write(&spec, serde_yaml::to_string(&counter_job(&out, total, 1000, "counter@${v}")).expect("yaml")).expect("spec");
    let id = cli(&["job", "submit", &spec.display().to_string(), "--param", "v=1"], &srv.url).trim().to_owned();
    assert_eq!(id.len(), 16, "{id}");
    let listed = cli(&["job", "list"], &srv.url);
    assert!(listed.contains(&id) && listed.contains("running"), "{listed}");
    let status: Value = serde_json::from_str(&cli(&["job", "status", &id, "--json"], &srv.url)).expect("json");
    assert_eq!(status["id"], id.as_str());

    // Let it write and checkpoint, then kill -9 the server.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, cks) = srv.get(&format!("/v1/jobs/{id}/checkpoints"));
        if srv.sink_in(&id) > 1500 && cks["retained"].as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "no checkpoint");
        std::thread::sleep(Duration::from_millis(20));
    }
    srv.kill9();
    let before = read_jsonl(&out).len() as u64;
    assert!(before < total, "the job must not have finished before the kill ({before})");

    let srv = Server::start(&data, Some(TOKEN), &[]);
    let (_, history) = srv.get(&format!("/v1/jobs/{id}/history"));
    assert!(history.as_array().is_some_and(|h| h.iter().any(|e| e["kind"] == "resumed")), "{history}");
    srv.wait_status(&id, "finished", Duration::from_secs(90));
    assert_exact_counts(&out, total);
    let token_file = dir.path().join("client-token");
    std::fs::write(&token_file, TOKEN).expect("token file");
    let out = Command::new(env!("CARGO_BIN_EXE_rivulet"))
        .args(["job", "list", "--server", &srv.url, "--token-file"])
        .arg(&token_file)
        .env_remove("RIVULET_TOKEN")
        .output()
        .expect("rivulet");
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains(&id), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(env!("CARGO_BIN_EXE_rivulet"))
        .args(["job", "list", "--server", &srv.url])
        .env_remove("RIVULET_TOKEN")
        .env_remove("RIVULET_TOKEN_FILE")
        .output()
        .expect("rivulet");
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("401"), "no token: {}", String::from_utf8_lossy(&out.stderr));
    let status = cli(&["job", "status", &id], &srv.url);
    assert!(status.contains("finished") && status.contains("counter"), "{status}");
}

#[test]
fn a_rest_job_touches_only_what_the_server_allows_and_params_are_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let srv = Server::start(&data, Some(TOKEN), &["--allow-connect", "kafka.internal:9092"]);
    let job = |sources: Value, sinks: Value| json!({"spec": {"name": "j", "sources": sources, "sinks": sinks}});
    let generator = json!([{"id": "gen", "type": "generator", "count": 5}]);
    let out = |p: &str| json!([{"id": "out", "type": "file", "path": p, "inputs": ["gen"]}]);
    let refused = |body: Value, needles: &[&str]| {
        let (s, v) = srv.post("/v1/jobs", body.clone());
        assert_eq!(s, 400, "{body}: {v}");
        let e = v["error"].as_str().unwrap_or_default();
        for n in needles {
            assert!(e.contains(n), "{n:?} not in {e:?}");
        }
    };
    let token_file = data.with_extension("token");
    // Files: outside the roots, devices, and the server's own token (outside its files).
    refused(
        job(json!([{"id": "s", "type": "file", "path": "/etc/passwd", "format": "text"}]), out("o")),
        &["sources[0] (id 's').path", "/etc/passwd", "allowed roots", "--allow-path"],
    );
    refused(job(json!([{"id": "s", "type": "file", "path": "/dev/zero", "format": "text"}]), out("o")), &["not a regular file"]);
    refused(job(generator.clone(), out("/etc")), &["sinks[0] (id 'out').path", "/etc"]);
    refused(job(generator.clone(), out("../../../escape")), &["outside the allowed roots"]);
    refused(json!({"spec": {"name": "j", "sources": generator, "sinks": out("o"), "checkpoint": {"dir": "/var/tmp"}}}), &["checkpoint.dir"]);
    let srv2_data = tempfile::tempdir().expect("tempdir");
    let strict = Server::start(&srv2_data.path().join("data"), Some(TOKEN), &[]);
    let secret = srv2_data.path().join("data.token");
    let (s, v) = strict.post("/v1/jobs", job(json!([{"id": "s", "type": "file", "path": secret.display().to_string(), "format": "text"}]), out("o")));
    assert_eq!(s, 400, "the server's token file is not readable by a job: {v}");
    assert!(token_file.exists());
    // Network and client properties.
    let kafka = |servers: &str, props: Value| json!([{"id": "k", "type": "kafka", "bootstrap_servers": servers, "topic": "t", "properties": props}]);
    refused(
        job(kafka("127.0.0.1:22", json!({})), json!([{"id": "o", "type": "stdout", "inputs": ["k"]}])),
        &["connecting to 127.0.0.1:22 is not allowed", "kafka.internal:9092"],
    );
    refused(
        job(kafka("kafka.internal:9092", json!({"plugin.library.paths": "/tmp/evil.so"})), json!([{"id": "o", "type": "stdout", "inputs": ["k"]}])),
        &["'plugin.library.paths' is not allowed"],
    );
    refused(
        job(
            generator.clone(),
            json!([{"id": "p", "type": "postgres", "url": "postgres://u@127.0.0.1:5432/d", "table": "t", "key": ["k"], "inputs": ["gen"]}]),
        ),
        &["sinks[0] (id 'p').url", "connecting to 127.0.0.1:5432"],
    );
    // Numbers that size something.
    refused(job(json!([{"id": "gen", "type": "generator", "parallelism": 1_000_000_000u64}]), out("o")), &["parallelism", "out of range"]);

    // Params are data: a value cannot add a sink, in the YAML string form or the JSON form.
    let hostile = "o\", inputs: [generator]}\n  - {id: extra, type: stdout, inputs: [generator]}\n#";
    let yaml = "name: p\nsources:\n  - {id: generator, type: generator, count: 5}\nsinks:\n  - {id: out, type: file, path: \"${output}\", inputs: [generator]}\n";
    for spec in [json!(yaml), json!({"name": "p", "sources": generator, "sinks": out("${output}")})] {
        let (s, v) = srv.post("/v1/jobs", json!({"spec": spec, "params": {"output": hostile}}));
        assert_eq!(s, 201, "{v}");
        let sinks = v["spec"]["sinks"].as_array().expect("sinks");
        assert_eq!(sinks.len(), 1, "{v:#}");
        // The path is stored resolved: below <data-dir>/files, the value one name in it.
        let files = data.join("files").canonicalize().expect("files dir");
        assert_eq!(sinks[0]["path"], files.join(hostile).display().to_string(), "{v:#}");
        srv.wait_status(v["id"].as_str().expect("id"), "finished", Duration::from_secs(60));
    }
    // A sink location belongs to one running job at a time.
    let forever = json!([{"id": "gen", "type": "generator", "rate": 100}]);
    let (s, first) = srv.post("/v1/jobs", job(forever.clone(), out("shared")));
    assert_eq!(s, 201, "{first}");
    let first_id = first["id"].as_str().expect("id");
    let (s, v) = srv.post("/v1/jobs", job(forever.clone(), out(&data.join("files/shared/").display().to_string())));
    assert_eq!(s, 409, "{v}");
    assert!(v["error"].as_str().is_some_and(|e| e.contains(first_id) && e.contains("sinks[0] (id 'out').path")), "{v}");
    let (s, v) = srv.post("/v1/jobs", job(forever, out("shared/inside")));
    assert_eq!(s, 409, "a location inside another job's: {v}");

    // A relative path is below <data-dir>/files/.
    let (s, v) = srv.post("/v1/jobs", job(generator, out("rel-out")));
    assert_eq!(s, 201, "{v}");
    srv.wait_status(v["id"].as_str().expect("id"), "finished", Duration::from_secs(60));
    assert_eq!(read_output(&data.join("files").join("rel-out")).lines().count(), 5);
}

/// The URL a server process `child` logging to `log` says it listens on, once it says
/// so (within `within`; it must not exit before).
pub(crate) fn listening_url(child: &mut Child, log: &Path, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(rest) = text.split("server listening on ").nth(1) {
            return rest.lines().next().unwrap_or_default().trim().to_owned();
        }
        assert!(Instant::now() < deadline, "server did not start:\n{text}");
        assert!(child.try_wait().expect("poll").is_none(), "server exited:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A server on `data` running a job that never ends (50 records/s into a file sink),
/// and the job's id.
pub(crate) fn server_with_an_endless_job(data: &Path) -> (Server, String) {
    let srv = Server::start(data, Some(TOKEN), &[]);
    let spec = json!({"name": "forever", "sources": [{"id": "gen", "type": "generator", "rate": 50}],
        "sinks": [{"id": "out", "type": "file", "path": "out", "inputs": ["gen"]}]});
    let (s, job) = srv.post("/v1/jobs", json!({"spec": spec}));
    assert_eq!(s, 201, "{job}");
    let id = job["id"].as_str().expect("id").to_owned();
    (srv, id)
}

#[test]
fn a_server_that_keeps_dying_soon_after_resuming_a_job_suspends_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (mut srv, id) = server_with_an_endless_job(&data);
    // Three server deaths each soon after resuming the job: it is still resumed...
    for round in 1..=3 {
        srv.kill9();
        srv = Server::start(&data, Some(TOKEN), &[]);
        let v = srv.job(&id);
        assert_eq!(v["status"], "running", "round {round}: {v:#}");
        assert_eq!(v["quick_resumes"], round, "{v:#}");
    }
    // ...the fourth start suspends it instead, saying why, and keeps it suspended.
    srv.kill9();
    let srv = Server::start(&data, Some(TOKEN), &[]);
    let v = srv.job(&id);
    assert_eq!(v["status"], "suspended", "{v:#}");
    assert!(v["error"].as_str().is_some_and(|e| e.contains("3 times in a row") && e.contains("savepoint")), "{v:#}");
    let (_, history) = srv.get(&format!("/v1/jobs/{id}/history"));
    let kinds: Vec<&str> = history.as_array().expect("history").iter().filter_map(|h| h["kind"].as_str()).collect();
    assert_eq!(kinds, ["submitted", "resumed", "resumed", "resumed", "suspended"], "{history:#}");
    let (_, list) = srv.get("/v1/jobs");
    assert!(list.as_array().is_some_and(|l| l.iter().any(|j| j["id"] == id.as_str() && j["status"] == "suspended")));
}

#[test]
fn idle_and_half_sent_connections_are_closed_and_capped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let srv = Server::start(&data, Some(TOKEN), &["--max-connections", "4", "--header-timeout", "1s"]);
    let spec = json!({"name": "steady", "sources": [{"id": "gen", "type": "generator", "rate": 200}],
        "sinks": [{"id": "out", "type": "file", "path": "out", "inputs": ["gen"]}]});
    let (s, job) = srv.post("/v1/jobs", json!({"spec": spec}));
    assert_eq!(s, 201, "{job}");
    let id = job["id"].as_str().expect("id").to_owned();
    // Many idle sockets and half-sent requests, none ever finished.
    let addr = srv.url.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for i in 0..40 {
        let mut c = std::net::TcpStream::connect(&addr).expect("connect");
        if i % 2 == 0 {
            use std::io::Write as _;
            let _ = c.write_all(b"GET /v1/jobs HTTP/1.1\r\nHost: x\r\n");
        }
        held.push(c);
    }
    // The server closes them in turn and still answers, and the job keeps running.
    let started = Instant::now();
    let (s, health) = srv.request("GET", "/healthz", None, None);
    assert_eq!(s, 200, "{health}");
    assert!(started.elapsed() < Duration::from_secs(30), "answered after {:?}", started.elapsed());
    assert_eq!(srv.job(&id)["status"], "running");
    // Every one of them is closed by the server (end of stream or reset, perhaps after
    // an error response), not left open.
    for c in &mut held {
        use std::io::Read as _;
        c.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        let mut rest = Vec::new();
        match c.read_to_end(&mut rest) {
            Ok(_) => {}
            Err(e) => {
                assert!(!matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut), "a connection the server left open: {e}")
            }
        }
    }
}

#[test]
fn roles_decide_what_a_token_may_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (viewer, operator, admin) = ("viewer-token-0123456789", "operator-token-0123456789", "admin-token-0123456789");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("# role token\nviewer {viewer}\noperator {operator}\nadmin {admin}\n")).expect("tokens");
    let srv = Server::start(&data, None, &["--auth-token-file", &tokens.display().to_string()]);
    for (token, role) in [(viewer, "viewer"), (operator, "operator"), (admin, "admin")] {
        let (s, v) = srv.request("GET", "/v1/session", Some(token), None);
        assert_eq!((s, v["role"].as_str()), (200, Some(role)), "{v}");
        assert_eq!(srv.request("GET", "/v1/jobs", Some(token), None).0, 200);
    }
    let job = json!({"spec": {"name": "r", "sources": [{"id": "gen", "type": "generator", "count": 3}],
        "sinks": [{"id": "out", "type": "file", "path": "out", "inputs": ["gen"]}]}});
    let post = |token: &str, body: &Value| srv.request("POST", "/v1/jobs", Some(token), Some(("application/json", body.to_string().into_bytes())));
    let (s, v) = post(viewer, &job);
    assert_eq!(s, 403, "{v}");
    assert!(v["error"].as_str().is_some_and(|e| e.contains("a viewer token may not POST /v1/jobs: that needs operator")), "{v}");
    let upload = |token: &str| srv.request("POST", "/v1/plugins?name=c&version=1", Some(token), Some(("application/wasm", counter_v1())));
    let (s, v) = upload(operator);
    assert_eq!(s, 403, "plugins are an admin's: {v}");
    assert_eq!(post(operator, &job).0, 201);
    assert_eq!(upload(admin).0, 201);
    assert_eq!(srv.request("DELETE", "/v1/plugins/c/1", Some(operator), None).0, 403);
    assert_eq!(srv.request("DELETE", "/v1/plugins/c/1", Some(admin), None).0, 200);
    assert_eq!(srv.request("GET", "/v1/jobs", Some("not-a-token-at-all-000"), None).0, 401);
}

#[test]
fn guest_memory_is_budgeted_across_running_jobs_at_submit_and_rescale() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let srv = Server::start(&data, Some(TOKEN), &["--guest-memory-mb", "600"]);
    assert_eq!(srv.upload("counter", "1", counter_v1()).0, 201);
    let job = |name: &str, parallelism: u32, memory_mb: Option<u64>| {
        let mut spec = counter_job(&dir.path().join(name), 1_000_000, 100, "counter@1");
        spec["name"] = json!(name);
        if let Some(mb) = memory_mb {
            spec["operators"][0]["limits"] = json!({"memory_mb": mb});
        }
        json!({"spec": spec, "parallelism": parallelism})
    };
    let (s, a) = srv.post("/v1/jobs", job("a", 2, None));
    assert_eq!(s, 201, "2 × 256 MiB fit 600: {a}");
    let (s, v) = srv.post("/v1/jobs", job("b", 1, None));
    assert_eq!(s, 409, "{v}");
    assert!(v["error"].as_str().is_some_and(|e| e.contains("256 MiB") && e.contains("512 MiB") && e.contains("600 MiB")), "{v}");
    let (s, v) = srv.post("/v1/jobs", job("c", 1, Some(64)));
    assert_eq!(s, 201, "a smaller limit fits: {v}");
    let id = a["id"].as_str().expect("id");
    let (s, v) = srv.post(&format!("/v1/jobs/{id}/rescale"), json!({"parallelism": 3}));
    assert_eq!(s, 409, "3 × 256 + 64 is over the budget: {v}");
    assert!(v["error"].as_str().is_some_and(|e| e.contains("--guest-memory-mb")), "{v}");
    assert_eq!(srv.job(id)["status"], "running", "a refused rescale leaves the job running");
}

#[test]
fn stop_with_savepoint_on_a_stuck_guest_answers_in_time_and_the_job_runs_on_or_is_cancelled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let srv = Server::start(&data, Some(TOKEN), &[]);
    assert_eq!(srv.upload("looper", "1", std::fs::read(fixture("fixture_infinite_loop")).expect("fixture")).0, 201);
    let spec = json!({"name": "stuck", "restart": {"attempts": 5, "delay_ms": 10},
        "sources": [{"id": "gen", "type": "generator", "count": 100, "keys": 3}],
        "operators": [{"uid": "loop", "plugin": "looper@1", "inputs": ["gen"], "limits": {"call_timeout_ms": 3_600_000}}],
        "sinks": [{"id": "out", "type": "file", "path": "out", "inputs": ["loop"]}]});
    let (s, job) = srv.post("/v1/jobs", json!({"spec": spec}));
    assert_eq!(s, 201, "{job}");
    let id = job["id"].as_str().expect("id").to_owned();
    std::thread::sleep(Duration::from_millis(500));
    // The guest never returns: the savepoint cannot complete. The stop answers when its
    // time is up, and the job runs on (restarted from its latest checkpoint).
    let started = Instant::now();
    let (s, v) = srv.post(&format!("/v1/jobs/{id}/stop"), json!({"savepoint": true, "timeout_ms": 1500}));
    assert_eq!(s, 409, "{v}");
    assert!(started.elapsed() < Duration::from_secs(30), "answered after {:?}", started.elapsed());
    assert!(v["error"].as_str().is_some_and(|e| e.contains("did not complete within 1500 ms") && e.contains("runs on")), "{v}");
    assert_eq!(srv.job(&id)["status"], "running");
    let (_, sps) = srv.get("/v1/savepoints");
    assert!(sps.as_array().is_some_and(|a| a.iter().any(|sp| sp["status"] == "failed")), "{sps}");
    // Asked to, it cancels the job instead.
    let (s, v) = srv.post(&format!("/v1/jobs/{id}/stop"), json!({"savepoint": true, "timeout_ms": 1000, "cancel_if_savepoint_fails": true}));
    assert_eq!(s, 409, "{v}");
    assert!(v["error"].as_str().is_some_and(|e| e.contains("cancelled")), "{v}");
    srv.wait_status(&id, "cancelled", Duration::from_secs(30));
}

#[test]
fn uploads_share_a_server_wide_buffer_and_one_that_does_not_fit_is_told_to_retry() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let srv = Server::start(&data, Some(TOKEN), &["--max-plugin-mb", "1", "--upload-buffer-mb", "1"]);
    // An upload that declares almost the whole buffer and then stalls...
    let addr = srv.url.trim_start_matches("http://").to_owned();
    let mut stalled = std::net::TcpStream::connect(&addr).expect("connect");
    write!(
        stalled,
        "POST /v1/plugins?name=big&version=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/wasm\r\nContent-Length: 1000000\r\n\r\n"
    )
    .expect("headers");
    stalled.write_all(&[0u8; 1000]).expect("a little of the body");
    std::thread::sleep(Duration::from_millis(300));
    // ...leaves no room for another: 503, retry later, nothing stored.
    let (s, v) = srv.upload("counter", "1", counter_v1());
    assert_eq!(s, 503, "{v}");
    assert!(v["error"].as_str().is_some_and(|e| e.contains("--upload-buffer-mb") && e.contains("retry")), "{v}");
    // Once the stalled one is gone, the same upload goes through.
    drop(stalled);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (s, v) = srv.upload("counter", "1", counter_v1());
        if s == 201 {
            break;
        }
        assert!(s == 503 && Instant::now() < deadline, "{s}: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A hot swap of an interval-joining operator while both inputs flow: the join buffers
/// go through the savepoint, so pairs whose two records straddle the swap are still
/// found, once; a rescale 2 → 3 later redistributes them by key group.
#[test]
fn a_hot_swap_and_a_rescale_of_an_interval_join_carry_its_buffers_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = Server::start(&dir.path().join("data"), None, &["--state-backend", "rocksdb"]);
    let ops = std::fs::read(fixture("fixture_test_ops")).expect("fixture");
    assert_eq!(srv.upload("pairs", "1", ops.clone()).0, 201);
    assert_eq!(srv.upload("pairs", "2", ops).0, 201);
    let out = dir.path().join("out");
    // Left and right: record i has key i mod 5 and time 10·i. A left record at t meets
    // right records of its key in [t - 100, t + 100]: right ids i-10, i-5, i, i+5, i+10.
    let (n, rate) = (16_000u64, 1_000u64);
    let source = |id: &str| {
        json!({"id": id, "type": "generator", "count": n, "keys": 5, "rate": rate, "interval_ms": 10,
        "event_time": {"field": "timestamp", "max_out_of_orderness_ms": 0}})
    };
    let spec = json!({
        "name": "pairs",
        "sources": [source("left"), source("right")],
        "operators": [{"uid": "pairs", "plugin": "pairs@1", "config": {"mode": "join"}, "key_by": {"field": "key"},
            "inputs": {"left": ["left"], "right": ["right"]}, "interval_join": {"lower_ms": -100, "upper_ms": 100}}],
        "sinks": [{"id": "out", "type": "file", "path": out.display().to_string(), "inputs": ["pairs"]}],
    });
    let (s, job) = srv.post("/v1/jobs", json!({"spec": spec, "parallelism": 2}));
    assert_eq!(s, 201, "{job}");
    let id = job["id"].as_str().expect("id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    while srv.sink_in(&id) < 2_000 {
        assert!(Instant::now() < deadline, "no output");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (s, swap) = srv.post(&format!("/v1/jobs/{id}/upgrade"), json!({"plugins": {"pairs": "pairs@2"}}));
    assert_eq!(s, 200, "{swap}\n{}", srv.log_text());
    assert_eq!(swap["result"], "swapped", "{swap}");
    let (s, rescaled) = srv.post(&format!("/v1/jobs/{id}/rescale"), json!({"parallelism": 3}));
    assert_eq!(s, 200, "{rescaled}");
    assert_eq!(rescaled["result"], "swapped", "{rescaled}");
    srv.wait_status(&id, "finished", Duration::from_secs(120));
    let (_, history) = srv.get(&format!("/v1/jobs/{id}/history"));
    let kinds: Vec<&str> = history.as_array().expect("history").iter().filter_map(|h| h["kind"].as_str()).collect();
    assert_eq!(kinds, ["submitted", "swap", "rescale", "finished"], "{history:#}");
    let mut got: Vec<(u64, u64)> = read_jsonl(&out).iter().map(|r| (r["l"].as_u64().expect("l"), r["r"].as_u64().expect("r"))).collect();
    got.sort_unstable();
    let mut want = Vec::new();
    for l in 0..n {
        for d in [-10i64, -5, 0, 5, 10] {
            let r = l as i64 + d;
            if (0..n as i64).contains(&r) {
                want.push((l, r as u64));
            }
        }
    }
    assert_eq!(got.len(), want.len(), "pairs lost or duplicated across the swap and the rescale");
    assert!(got == want, "the pairs differ from the interval join's contract");
}
