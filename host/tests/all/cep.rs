//! The cep-login example (CEP in the Rust SDK) against a plain scan of each user's
//! logins, at parallelism 1 and 4 on both backends and under `kill -9`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::fault::{seed, sorted_lines};
use crate::joins::{kill_run, through_savepoints};
use crate::support::*;

struct LoginCase {
    dir: tempfile::TempDir,
    input: PathBuf,
    expected: Vec<String>,
}

/// Logins of many users, interleaved and out of order within 1.5 s; per user, times
/// are distinct. Bursts of failures make attacks, some too slow, some broken.
fn login_case(n: usize, seed: u64) -> LoginCase {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng(seed);
    let mut rows: Vec<Value> = Vec::new();
    let mut t = 1_700_000_000_000i64;
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    while rows.len() < n {
        t += rng.below(300) as i64;
        let user = format!("user-{}", rng.below(40));
        // Slow attackers: 25 s between their logins, so three fails and a success span 75 s.
        let step = if user.ends_with('7') { 25_000 } else { 1 + rng.below(8_000) as i64 };
        let at = last.get(&user).map_or(t, |l| (l + step).max(t));
        let kind = if rng.below(3) == 0 { "success" } else { "fail" };
        last.insert(user.clone(), at);
        rows.push(json!({"user": user, "type": kind, "timestamp": at}));
    }
    rows.sort_by_key(|r| r["timestamp"].as_i64().unwrap_or_default());
    for i in 1..rows.len() {
        let (a, b) = (rows[i - 1]["timestamp"].as_i64().unwrap_or_default(), rows[i]["timestamp"].as_i64().unwrap_or_default());
        if b - a < 1_500 && rng.below(2) == 0 && rows[i - 1]["user"] != rows[i]["user"] {
            rows.swap(i - 1, i);
        }
    }
    // Reference: per user in time order, the first fail-fail-fail-success run whose
    // success is less than 60 s after its first fail; then on after the success.
    let mut by_user: BTreeMap<String, Vec<(i64, bool)>> = BTreeMap::new();
    for r in &rows {
        by_user
            .entry(r["user"].as_str().unwrap_or_default().to_owned())
            .or_default()
            .push((r["timestamp"].as_i64().unwrap_or_default(), r["type"] == "fail"));
    }
    let mut expected = Vec::new();
    for (user, mut events) in by_user {
        events.sort();
        let mut i = 0;
        while i + 3 < events.len() {
            let e = &events[i..i + 4];
            if e[0].1 && e[1].1 && e[2].1 && !e[3].1 && e[3].0 - e[0].0 < 60_000 {
                expected.push(json!({"user": user, "first_fail": e[0].0, "success": e[3].0}).to_string());
                i += 4;
            } else {
                i += 1;
            }
        }
    }
    expected.sort();
    let input = dir.path().join("logins.jsonl");
    std::fs::write(&input, rows.iter().map(|r| format!("{r}\n")).collect::<String>()).expect("write");
    LoginCase { dir, input, expected }
}

#[test]
fn cep_login_finds_three_failures_then_a_success_within_60_s() {
    let case = login_case(8_000, 21);
    assert!(case.expected.len() > 50, "{}", case.expected.len());
    // The example's job with a sink for its `timed-out` side output.
    let base = repo().join("plugins-examples/cep-login");
    let yaml = std::fs::read_to_string(base.join("job.yaml")).expect("job.yaml")
        + "  - id: timed-out\n    type: file\n    path: ${timed_out}\n    inputs: [cep-login.timed-out]\n";
    for backend in BACKENDS {
        for p in [1, 4] {
            let out = case.dir.path().join(format!("out-{backend:?}-{p}"));
            let timed_out = case.dir.path().join(format!("timed-out-{backend:?}-{p}"));
            let params = [
                ("input", case.input.to_str().expect("utf8")),
                ("output", out.to_str().expect("utf8")),
                ("timed_out", timed_out.to_str().expect("utf8")),
            ];
            run_spec(&yaml, &base, &params, Some(p), backend).unwrap_or_else(|e| panic!("{backend:?} p={p}: {e}"));
            let mut got: Vec<String> = read_jsonl(&out).iter().map(Value::to_string).collect();
            got.sort();
            assert_eq!(got, case.expected, "{backend:?} p={p}");
            // The slow attackers' partial matches ran out of time.
            assert!(read_jsonl(&timed_out).iter().any(|r| r["user"].as_str().is_some_and(|u| u.ends_with('7'))), "{backend:?} p={p}");
        }
    }
}

#[test]
fn the_python_and_javascript_cep_libraries_find_the_same_attacks() {
    let case = login_case(4_000, 27);
    assert!(case.expected.len() > 20, "{}", case.expected.len());
    for example in ["python-cep-login", "js-cep-login"] {
        for p in [1, 4] {
            let out = case.dir.path().join(format!("{example}-{p}"));
            let params = [("input", case.input.to_str().expect("utf8")), ("output", out.to_str().expect("utf8"))];
            run_example(example, &params, p, BACKENDS[p as usize % 2]);
            let mut got: Vec<String> = read_jsonl(&out).iter().map(Value::to_string).collect();
            got.sort();
            let missing: Vec<&String> = case.expected.iter().filter(|e| !got.contains(e)).take(3).collect();
            let extra: Vec<&String> = got.iter().filter(|g| !case.expected.contains(g)).take(3).collect();
            assert!(
                got == case.expected,
                "{example} p={p}: {} rows, {} expected; missing {missing:?}, extra {extra:?}",
                got.len(),
                case.expected.len()
            );
        }
    }
}

#[test]
fn cep_login_is_exact_under_kill_9() {
    let case = login_case(150_000, seed());
    for (backend, p) in [("rocksdb", "4"), ("memory", "1")] {
        let out = case.dir.path().join(format!("kill-{backend}"));
        let run = case.dir.path().join(format!("run-{backend}"));
        let what = format!("cep login {backend} p={p}");
        kill_run(&what, "plugins-examples/cep-login/job.yaml", &[("input", &case.input)], &out, backend, p, &run);
        let got = sorted_lines(&out);
        assert_eq!(got.len(), case.expected.len(), "{what}: matches lost or duplicated");
        assert!(got == case.expected, "{what}: output differs from the contract");
    }
}

#[test]
fn cep_partial_matches_survive_rescaling_1_to_4_to_2() {
    let case = login_case(12_000, 31);
    let out = case.dir.path().join("out");
    let inspect =
        through_savepoints("plugins-examples/cep-login/job.yaml", &[("input", &case.input)], &out, case.dir.path(), "rocksdb", ["4000", "4000"]);
    assert!(inspect.contains("state cep.attacks.partials (value)"), "partial matches are in the savepoint: {inspect}");
    assert_eq!(sorted_lines(&out), case.expected, "cep login across 1→4→2");
}
