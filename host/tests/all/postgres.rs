//! PostgreSQL upserts against a real server: Debian's PostgreSQL, a cluster of our own
//! started by `scripts/postgres.sh` on a free 127.0.0.1 port and stopped when the test
//! ends. The oracle: after any number of `kill -9`s and restores, the table holds the
//! failure-free result (per key, the count of its records).

use std::path::Path;
use std::process::{Command, Stdio};

use crate::fault::rivulet;
use crate::support::*;

struct Pg {
    dir: tempfile::TempDir,
    url: String,
}

impl Pg {
    fn start() -> Pg {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new("bash")
            .arg(repo().join("scripts/postgres.sh"))
            .arg("start")
            .arg(dir.path())
            .stderr(Stdio::inherit())
            .output()
            .expect("postgres.sh");
        assert!(out.status.success(), "scripts/postgres.sh start failed");
        let url = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().to_owned();
        assert!(url.starts_with("postgres://postgres@127.0.0.1:"), "{url}");
        Pg { dir, url }
    }

    fn client(&self) -> ::postgres::Client {
        ::postgres::Client::connect(&self.url, ::postgres::NoTls).expect("connect")
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(repo().join("scripts/postgres.sh")).arg("stop").arg(self.dir.path()).status();
    }
}

fn job(dir: &Path, url: &str, table: &str, count: u64, keys: u64) -> std::path::PathBuf {
    let spec = format!(
        r#"name: pg-count
sources:
  - {{ id: gen, type: generator, count: {count}, keys: {keys}, rate: 25000 }}
operators:
  - uid: counter
    plugin: "{plugin}"
    inputs: [gen]
    key_by: {{ field: key }}
sinks:
  - {{ id: table, type: postgres, url: "{url}", table: {table}, key: [key], batch_size: 300, inputs: [counter] }}
"#,
        plugin = wasm("plugins-examples/counter-v1/counter_v1.wasm").display(),
    );
    let path = dir.join(format!("{table}.yaml"));
    std::fs::write(&path, spec).expect("spec");
    path
}

#[test]
fn postgres_upsert_converges_under_kill_9() {
    let pg = Pg::start();
    let (count, keys) = (50_000u64, 40u64);
    for (backend, parallelism, table) in [("memory", "1", "counts_a"), ("rocksdb", "3", "counts_b")] {
        pg.client().batch_execute(&format!("CREATE TABLE {table} (key text PRIMARY KEY, count bigint NOT NULL)")).expect("create table");
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = job(dir.path(), &pg.url, table, count, keys);
        kill_loop(&format!("postgres {backend} p={parallelism}"), 5, 300, 300, 1200, || {
            let mut c = rivulet();
            c.arg("run")
                .arg(&spec)
                .args(["--state-backend", backend, "--parallelism", parallelism, "--checkpoint-interval", "100ms", "--restore", "latest", "--quiet"])
                .arg("--checkpoint-dir")
                .arg(dir.path().join("ck"))
                .arg("--data-dir")
                .arg(dir.path().join("data"));
            c
        });
        let rows = pg.client().query(&format!("SELECT key, count FROM {table} ORDER BY key"), &[]).expect("query");
        assert_eq!(rows.len() as u64, keys, "{backend} p={parallelism}: one row per key");
        for r in rows {
            let (k, c): (String, i64) = (r.get(0), r.get(1));
            assert_eq!(c as u64, count / keys, "{backend} p={parallelism}: key {k}");
        }
    }
}

#[test]
fn a_missing_table_or_key_is_a_clear_error() {
    let pg = Pg::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = rivulet().arg("run").arg(job(dir.path(), &pg.url, "nope", 10, 2)).arg("--quiet").output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("table nope does not exist"), "{err}");
    // A table without a constraint on the key: the server's own words.
    pg.client().batch_execute("CREATE TABLE nokey (key text, count bigint)").expect("create");
    let out = rivulet().arg("run").arg(job(dir.path(), &pg.url, "nokey", 10, 2)).arg("--quiet").output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("cannot prepare the upsert into nokey") && err.contains("ON CONFLICT"), "{err}");
}
