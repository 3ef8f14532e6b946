//! Operators in Python and JavaScript: the same fraud detector in three languages gives
//! the same alerts as an independent reference; one job mixes the three; an exception in
//! either language fails the job with its message and stack, naming operator and plugin.

use std::collections::BTreeMap;

use serde_json::json;

use crate::examples::{fraud_reference, sorted, write_transactions};
use crate::support::*;

#[test]
fn python_and_javascript_fraud_detectors_match_the_rust_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("tx.jsonl");
    let txs = write_transactions(&input, 2024, 1500, 20);
    let expected = sorted(fraud_reference(&txs));
    assert!(expected.len() > 10, "the input should produce alerts");
    for (example, p, backend) in [
        ("fraud-detection", 1, BACKENDS[0]),
        ("python-fraud-detection", 1, BACKENDS[0]),
        ("python-fraud-detection", 3, BACKENDS[1]),
        ("js-fraud-detection", 1, BACKENDS[0]),
        ("js-fraud-detection", 3, BACKENDS[1]),
    ] {
        let out = dir.path().join(format!("alerts-{example}-{p}"));
        run_example(example, &[("input", input.to_str().expect("utf8")), ("output", out.to_str().expect("utf8"))], p, backend);
        assert_eq!(sorted(read_jsonl(&out)), expected, "{example} p={p} {backend:?}");
    }
}

#[test]
fn one_job_in_python_rust_and_javascript() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng(99);
    let users = ["alice", "bob", "carol", "dave", "erin"];
    let mut text = String::new();
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    let mut bad = Vec::new();
    for i in 0..600 {
        if rng.below(15) == 0 {
            let line = format!("garbage line {i}");
            text.push_str(&line);
            bad.push(json!({"line": line}).to_string());
        } else {
            let u = users[rng.below(users.len() as u64) as usize];
            *counts.entry(u).or_default() += 1;
            text.push_str(&format!("{u},{}.{:02}", rng.below(500), rng.below(100)));
        }
        text.push('\n');
    }
    let input = dir.path().join("in.txt");
    std::fs::write(&input, text).expect("write");
    let mut expected: Vec<String> = counts.iter().flat_map(|(u, n)| (1..=*n).map(move |i| format!("{u} made transaction #{i}"))).collect();
    expected.sort();
    bad.sort();
    for (p, backend) in [(1, BACKENDS[0]), (2, BACKENDS[1])] {
        let out = dir.path().join(format!("out-{p}"));
        let bad_out = dir.path().join(format!("bad-{p}"));
        run_example(
            "mixed-languages",
            &[("input", input.to_str().expect("utf8")), ("output", out.to_str().expect("utf8")), ("bad", bad_out.to_str().expect("utf8"))],
            p,
            backend,
        );
        let mut got: Vec<String> = read_output(&out).lines().map(str::to_owned).collect();
        got.sort();
        assert_eq!(got, expected, "p={p}");
        let mut got_bad: Vec<String> = read_jsonl(&bad_out).iter().map(|v| v.to_string()).collect();
        got_bad.sort();
        assert_eq!(got_bad, bad, "p={p}: lines that do not parse go to the side output");
    }
}

#[test]
fn exceptions_in_python_javascript_and_typescript_fail_the_job_with_message_and_stack() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("in.jsonl"), "{\"id\":1}\n{\"id\":2}\n{\"id\":3,\"boom\":true}\n{\"id\":4}\n").expect("write");
    for (name, needles) in [
        ("py_raise", &["ValueError: python operator exploded on 3", "Traceback (most recent call last)", "in explode"][..]),
        ("js_raise", &["TypeError: javascript operator exploded on 3", "explode@"][..]),
        ("ts_raise", &["RangeError: typescript operator exploded on 3", "process@"][..]),
    ] {
        let yaml = format!(
            "name: raise\nsources:\n  - {{ id: s, type: file, path: in.jsonl, format: jsonl }}\noperators:\n  - {{ uid: raiser, plugin: {}, inputs: [s] }}\nsinks:\n  - {{ id: out, type: file, path: out, inputs: [raiser] }}\n",
            fixture(name).display()
        );
        let err = run_spec(&yaml, dir.path(), &[], None, BACKENDS[0]).expect_err("the exception must fail the job");
        let msg = err.to_string();
        assert!(msg.contains("operator 'raiser'") && msg.contains(&format!("plugin {name}")), "{name}: {msg}");
        assert!(msg.contains("[operator error]: process:"), "{name}: {msg}");
        for n in needles {
            assert!(msg.contains(n), "{name}: missing {n:?} in {msg}");
        }
    }
}

/// `docs/writing-operators.md`, run as written: its files are written where it says, its
/// shell blocks run (with the host binary under test), and each prints the counts.
#[test]
fn the_writing_operators_guide_runs_as_written() {
    let doc = std::fs::read_to_string(repo().join("docs/writing-operators.md")).expect("guide");
    let mut blocks: Vec<(String, String)> = Vec::new();
    let mut rest = doc.as_str();
    while let Some(start) = rest.find("```") {
        let after = &rest[start + 3..];
        let lang_end = after.find('\n').expect("fence line");
        let lang = after[..lang_end].trim().to_owned();
        let body_start = &after[lang_end + 1..];
        let end = body_start.find("```").expect("closing fence");
        blocks.push((lang, body_start[..end].to_owned()));
        rest = &body_start[end + 3..];
    }
    let block = |lang: &str| blocks.iter().find(|(l, _)| l == lang).map(|(_, b)| b.clone()).unwrap_or_else(|| panic!("no {lang} block"));
    let base = repo().join("my-operators");
    let _ = std::fs::remove_dir_all(&base);
    for d in ["count-per-key/src", "count-per-key-py", "count-per-key-js"] {
        std::fs::create_dir_all(base.join(d)).expect("dir");
    }
    std::fs::write(base.join("count-per-key/job.yaml"), block("yaml")).expect("job");
    std::fs::write(base.join("count-per-key/Cargo.toml"), block("toml")).expect("toml");
    std::fs::write(base.join("count-per-key/src/lib.rs"), block("rust")).expect("rust");
    std::fs::write(base.join("count-per-key-py/app.py"), block("python")).expect("python");
    std::fs::write(base.join("count-per-key-js/app.js"), block("js")).expect("js");
    let bin = env!("CARGO_BIN_EXE_rivulet");
    for (lang, script) in blocks.iter().filter(|(l, _)| l == "sh").enumerate() {
        let script = script.1.replace("./target/debug/rivulet", bin);
        let out = std::process::Command::new("bash")
            .arg("-ec")
            .arg(&script)
            .current_dir(repo())
            // A user types these in a shell, not under `make test`: a nested make would print
            // "Entering directory" lines on stdout.
            .env_remove("MAKELEVEL")
            .env_remove("MAKEFLAGS")
            .env_remove("MFLAGS")
            .env("RIVULET_CACHE_DIR", std::env::temp_dir().join("rivulet-test-compile-cache"))
            .output()
            .expect("bash");
        assert!(out.status.success(), "guide block {lang} failed:\n{script}\n{}", String::from_utf8_lossy(&out.stderr));
        let mut got: Vec<(String, u64)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .map(|v| (v["key"].as_str().expect("key").to_owned(), v["count"].as_u64().expect("count")))
            .collect();
        got.sort();
        let want: Vec<(String, u64)> = (0..3).flat_map(|k| (1..=3).map(move |c| (format!("k{k}"), c))).collect();
        assert_eq!(got, want, "guide block {lang}");
    }
    let _ = std::fs::remove_dir_all(&base);
}
