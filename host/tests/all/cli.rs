//! The `rivulet` binary: run with params, validate, inspect, and clear failures.

use std::process::Command;

use crate::support::*;

fn rivulet() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rivulet"));
    c.env("RIVULET_CACHE_DIR", std::env::temp_dir().join("rivulet-test-compile-cache"));
    c
}

#[test]
fn run_wordcount_with_params() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "Hello, hello world!\nWORLD hello\n").expect("write");
    let out = dir.path().join("out.jsonl");
    let status = rivulet()
        .args(["run", "plugins-examples/wordcount/job.yaml", "--parallelism", "2", "--state-backend", "rocksdb", "--quiet"])
        .arg("--param")
        .arg(format!("input={}", input.display()))
        .arg("--param")
        .arg(format!("output={}", out.display()))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .current_dir(repo())
        .output()
        .expect("spawn");
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let rows = read_jsonl(&out);
    let hello_max = rows.iter().filter(|r| r["word"] == "hello").filter_map(|r| r["count"].as_u64()).max();
    assert_eq!(hello_max, Some(3));
}

#[test]
fn command_line_params_are_paths_from_the_working_directory() {
    // `--param input=in.txt` is the file next to where the command runs, not next to
    // the spec; the plugin path written in the spec still resolves against the spec.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("in.txt"), "b a b\n").expect("write");
    let spec = repo().join("plugins-examples/wordcount/job.yaml");
    let out = rivulet()
        .arg("run")
        .arg(&spec)
        .args(["--quiet", "--param", "input=in.txt", "--param", "output=out.jsonl", "--data-dir", "data"])
        .current_dir(dir.path())
        .output()
        .expect("spawn");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = read_jsonl(&dir.path().join("out.jsonl"));
    assert_eq!(rows.iter().filter(|r| r["word"] == "b").filter_map(|r| r["count"].as_u64()).max(), Some(2), "{rows:?}");
}

#[test]
fn oversized_records_and_endless_files_are_clear_errors_not_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A line over the job's max_record_bytes fails the job naming source, file and line.
    std::fs::write(dir.path().join("in.txt"), format!("short\n{}\nshort\n", "x".repeat(5000))).expect("write");
    let job = dir.path().join("job.yaml");
    std::fs::write(
        &job,
        "name: big\nmax_record_bytes: 4096\nsources:\n  - {id: lines, type: file, path: in.txt, format: text}\nsinks:\n  - {id: out, type: file, path: out, inputs: [lines]}\n",
    )
    .expect("write");
    let out = rivulet().arg("run").arg(&job).args(["--quiet", "--data-dir"]).arg(dir.path().join("data")).output().expect("spawn");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("source 'lines'") && err.contains("in.txt:2") && err.contains("max_record_bytes (4096 bytes)"), "{err}");
    // An endless device as the spec is refused at once.
    let out = rivulet().args(["validate", "/dev/zero"]).output().expect("spawn");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a regular file"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn failures_exit_non_zero_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "name: x\nsources: []\nsinks: []\n").expect("write");
    let out = rivulet().arg("validate").arg(&bad).output().expect("spawn");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least one source"), "{}", String::from_utf8_lossy(&out.stderr));

    let out = rivulet().args(["run", "plugins-examples/wordcount/job.yaml"]).current_dir(repo()).output().expect("spawn");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--param input=VALUE"), "{}", String::from_utf8_lossy(&out.stderr));

    let out = rivulet().args(["plugin", "inspect"]).arg(fixture("fixture_wrong_world")).output().expect("spawn");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not match the world"));
}

#[test]
fn validate_and_inspect() {
    let out = rivulet()
        .args(["validate", "plugins-examples/fraud-detection/job.yaml", "--param", "input=x", "--param", "output=y"])
        .current_dir(repo())
        .output()
        .expect("spawn");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("is valid"));
    let out = rivulet().args(["plugin", "inspect"]).arg(wasm("plugins-examples/fraud-detection/fraud_detection.wasm")).output().expect("spawn");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("sha256:") && text.contains("rivulet:operator/operator@0.4.0"), "{text}");
    assert!(text.contains("targets: rivulet:operator@0.4.0") && text.contains("the newest"), "{text}");
    for old in ["0.2.0", "0.3.0"] {
        let out =
            rivulet().args(["plugin", "inspect"]).arg(repo().join(format!("tests/fixtures/wit-{old}/counter_v1.wasm"))).output().expect("spawn");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(&format!("targets: rivulet:operator@{old}")) && text.contains("still runs it"), "{text}");
    }
}
