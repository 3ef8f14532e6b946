//! Object-storage files: the sink (JSON lines and Parquet, rolled by size and time,
//! exactly-once) and the source, in a real S3-compatible store (SeaweedFS `weed mini` on
//! 127.0.0.1) and in a local directory, under `kill -9`. Oracle: the counter's (per key
//! the committed counts are 1..n once, summing to the input), read back through the
//! object source.

use std::path::{Path, PathBuf};

use crate::fault::{assert_counts_exact, rivulet};
use crate::s3::SeaweedFs;
use crate::support::*;

fn write(dir: &Path, name: &str, text: String) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("spec");
    p
}

fn counter_to_objects(dir: &Path, url: &str, format: &str, roll: &str) -> PathBuf {
    write(
        dir,
        "to-objects.yaml",
        format!(
            r#"name: to-objects
sources:
  - {{ id: gen, type: generator, count: 40000, keys: 40, rate: 20000 }}
operators:
  - uid: counter
    plugin: "{plugin}"
    inputs: [gen]
    key_by: {{ field: key }}
sinks:
  - {{ id: parts, type: objects, url: "{url}", format: {format}, {roll}, inputs: [counter] }}
"#,
            plugin = wasm("plugins-examples/counter-v1/counter_v1.wasm").display()
        ),
    )
}

fn objects_to_file(dir: &Path, url: &str, format: &str) -> PathBuf {
    write(
        dir,
        "from-objects.yaml",
        format!(
            "name: from-objects\nsources:\n  - {{ id: parts, type: objects, url: \"{url}\", format: {format} }}\nsinks:\n  - {{ id: out, type: file, path: \"{}\", inputs: [parts] }}\n",
            dir.join("read-back").display()
        ),
    )
}

/// Run `spec` to the end, `kill -9`ing it at random moments first; returns the kills.
fn run_with_kills(spec: &Path, dir: &Path, env: &[(&'static str, String)], extra: &[&str]) -> u32 {
    kill_loop(&format!("{}", spec.display()), 5, 300, 300, 1200, || {
        let mut cmd = rivulet();
        cmd.arg("run")
            .arg(spec)
            .args(["--checkpoint-interval", "100ms", "--restore", "latest", "--quiet"])
            .args(extra)
            .arg("--checkpoint-dir")
            .arg(dir.join("ck"))
            .arg("--data-dir")
            .arg(dir.join("data"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    })
}

fn read_back(dir: &Path, url: &str, format: &str, env: &[(&'static str, String)]) {
    let mut cmd = rivulet();
    cmd.arg("run").arg(objects_to_file(dir, url, format)).arg("--quiet");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run");
    assert!(out.status.success(), "read back: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn parquet_parts_in_s3_are_exactly_once_under_kill_9() {
    let weed = SeaweedFs::start();
    let env = weed.env();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = "s3://rivulet/counts";
    let spec = counter_to_objects(dir.path(), url, "parquet", "roll_size_bytes: 30000");
    let kills = run_with_kills(&spec, dir.path(), &env, &["--state-backend", "rocksdb", "--parallelism", "2"]);
    println!("parquet in s3: {kills} kills");
    let rt = runtime();
    let listed = rt.block_on(weed.storage("counts").list("")).expect("list");
    let parts: Vec<&String> = listed.iter().map(|(n, _)| n).filter(|n| n.ends_with(".parquet")).collect();
    assert!(parts.len() > 3, "rolled by size into several parts: {parts:?}");
    let first = rt.block_on(weed.storage("counts").get(parts[0])).expect("get");
    assert_eq!(&first[..4], b"PAR1", "a Parquet file");
    read_back(dir.path(), url, "parquet", &env);
    assert_counts_exact(&dir.path().join("read-back"), 40_000);
}

#[test]
fn jsonl_parts_in_a_local_directory_roll_by_time_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("file://{}", dir.path().join("store").display());
    let spec = counter_to_objects(dir.path(), &url, "jsonl", "roll_interval_ms: 50");
    let kills = run_with_kills(&spec, dir.path(), &[], &["--state-backend", "memory"]);
    println!("jsonl locally: {kills} kills");
    // The objects are the committed output themselves: part-<subtask>-<seq>.jsonl.
    assert_counts_exact(&dir.path().join("store"), 40_000);
    read_back(dir.path(), &url, "jsonl", &[]);
    assert_counts_exact(&dir.path().join("read-back"), 40_000);
}
