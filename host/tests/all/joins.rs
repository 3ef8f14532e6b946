//! Two-input operators: the interval-join, ad-attribution (window co-group) and
//! dynamic-rules (broadcast state) examples against expectations computed here from the
//! raw input, at parallelism 1 and 4 on both state backends, under `kill -9` with
//! checkpoints every 200 ms, and across a rescale; and a component built against
//! `rivulet:operator@0.2.0` and one built against `@0.3.0` running unchanged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::fault::{hidden_files, rivulet, seed, sorted_lines};
use crate::support::*;

/// Records written as JSON lines in an arrival order that respects an out-of-orderness
/// bound: each record's time is at most `jitter` below the largest time before it.
fn write_jsonl(path: &Path, rows: &[Value]) {
    let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(path, text).expect("write input");
}

/// Sort `rows` by time, then swap neighbours whose times differ by less than `jitter`
/// (seeded): out of order, within the bound.
fn shuffle_within(rows: &mut [Value], jitter: i64, rng: &mut Rng) {
    rows.sort_by_key(|r| r["timestamp"].as_i64().unwrap_or_default());
    for i in 1..rows.len() {
        let (a, b) = (rows[i - 1]["timestamp"].as_i64().unwrap_or_default(), rows[i]["timestamp"].as_i64().unwrap_or_default());
        if b - a < jitter && rng.below(2) == 0 {
            rows.swap(i - 1, i);
        }
    }
}

/// The interval-join contract's input and expected output.
struct JoinCase {
    dir: tempfile::TempDir,
    orders: PathBuf,
    payments: PathBuf,
    expected: Vec<String>,
}

fn join_case(n_orders: usize, seed: u64) -> JoinCase {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng(seed);
    let (mut orders, mut payments) = (Vec::new(), Vec::new());
    let mut t = 1_700_000_000_000i64;
    for i in 0..n_orders {
        t += rng.below(3_000) as i64;
        // A few order ids repeat: several orders meet the same payments.
        let id = if rng.below(10) == 0 && i > 10 { format!("o{}", i - 1 - rng.below(10) as usize) } else { format!("o{i}") };
        orders.push(json!({"order_id": id, "amount": (rng.below(100_000) as f64) / 100.0, "timestamp": t}));
        for _ in 0..rng.below(4) {
            // Before the order, inside the 15 minutes, at its edges, and too late.
            let dt = match rng.below(8) {
                0 => -(rng.below(60_000) as i64) - 1,
                1 => 0,
                2 => 900_000,
                3 => 900_001 + rng.below(60_000) as i64,
                _ => rng.below(900_000) as i64,
            };
            payments.push(json!({"order_id": id, "paid": (rng.below(100_000) as f64) / 100.0, "timestamp": t + dt}));
        }
    }
    shuffle_within(&mut orders, 4_000, &mut rng);
    shuffle_within(&mut payments, 4_000, &mut rng);
    let mut by_order: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for p in &payments {
        by_order.entry(p["order_id"].as_str().unwrap_or_default()).or_default().push(p);
    }
    let mut expected = Vec::new();
    for o in &orders {
        for p in by_order.get(o["order_id"].as_str().unwrap_or_default()).into_iter().flatten() {
            let (ot, pt) = (o["timestamp"].as_i64().unwrap_or_default(), p["timestamp"].as_i64().unwrap_or_default());
            if ot <= pt && pt <= ot + 900_000 {
                expected.push(
                    json!({"order_id": o["order_id"], "amount": o["amount"], "paid": p["paid"], "order_timestamp": ot, "payment_timestamp": pt})
                        .to_string(),
                );
            }
        }
    }
    expected.sort();
    let (o, p) = (dir.path().join("orders.jsonl"), dir.path().join("payments.jsonl"));
    write_jsonl(&o, &orders);
    write_jsonl(&p, &payments);
    JoinCase { dir, orders: o, payments: p, expected }
}

fn sorted_rows(path: &Path) -> Vec<String> {
    let mut rows: Vec<String> = read_jsonl(path).iter().map(Value::to_string).collect();
    rows.sort();
    rows
}

#[test]
fn interval_join_pairs_every_order_with_its_payments_within_15_minutes() {
    let case = join_case(2_000, 11);
    assert!(case.expected.len() > 1_000, "a meaningful number of pairs: {}", case.expected.len());
    for backend in BACKENDS {
        for p in [1, 4] {
            let out = case.dir.path().join(format!("out-{backend:?}-{p}"));
            let params = [
                ("orders", case.orders.to_str().expect("utf8")),
                ("payments", case.payments.to_str().expect("utf8")),
                ("output", out.to_str().expect("utf8")),
            ];
            let report = run_example("interval-join", &params, p, backend);
            assert_eq!(sorted_rows(&out), case.expected, "{backend:?} p={p}");
            let join = report.nodes.iter().find(|n| n.id == "order-payments").expect("join node");
            assert_eq!(join.late, 0, "within the bound nothing is late");
        }
    }
}

/// A two-input example under `kill -9` at random moments, checkpoints every 200 ms.
pub(crate) fn kill_run(what: &str, job: &str, params: &[(&str, &Path)], out: &Path, backend: &str, parallelism: &str, dir: &Path) {
    kill_loop(what, 4, 150, 250, 700, || {
        let mut c = rivulet();
        c.args(["run", job, "--quiet", "--state-backend", backend, "--checkpoint-interval", "200ms", "--parallelism", parallelism]);
        for (k, v) in params {
            c.arg("--param").arg(format!("{k}={}", v.display()));
        }
        c.arg("--param").arg(format!("output={}", out.display()));
        c.arg("--checkpoint-dir").arg(dir.join("ck")).arg("--data-dir").arg(dir.join("data")).args(["--restore", "latest"]);
        c
    });
    assert!(hidden_files(out).is_empty(), "{what}: uncommitted files left");
}

#[test]
fn interval_join_is_exact_under_kill_9() {
    let case = join_case(40_000, seed());
    for (backend, p) in [("memory", "1"), ("rocksdb", "4")] {
        let out = case.dir.path().join(format!("kill-{backend}"));
        let run = case.dir.path().join(format!("run-{backend}"));
        let what = format!("interval join {backend} p={p}");
        kill_run(&what, "plugins-examples/interval-join/job.yaml", &[("orders", &case.orders), ("payments", &case.payments)], &out, backend, p, &run);
        let got = sorted_lines(&out);
        assert_eq!(got.len(), case.expected.len(), "{what}: pairs lost or duplicated");
        assert!(got == case.expected, "{what}: output differs from the contract");
    }
}

/// The ad-attribution contract's input and expected output.
struct AdCase {
    dir: tempfile::TempDir,
    impressions: PathBuf,
    clicks: PathBuf,
    expected: Vec<Value>,
}

fn ad_case(n: usize, seed: u64) -> AdCase {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng(seed);
    let (mut impressions, mut clicks) = (Vec::new(), Vec::new());
    let mut t = 1_700_000_000_000i64;
    for _ in 0..n {
        t += rng.below(400) as i64;
        let ad = format!("ad-{}", rng.below(12));
        let user = format!("u{}", rng.below(500));
        if rng.below(4) == 0 {
            clicks.push(json!({"ad": ad, "user": user, "timestamp": t}));
        } else {
            impressions.push(json!({"ad": ad, "user": user, "timestamp": t}));
        }
    }
    shuffle_within(&mut impressions, 1_500, &mut rng);
    shuffle_within(&mut clicks, 1_500, &mut rng);
    // (ad, window start) → (impressions, clicks)
    let mut windows: BTreeMap<(String, i64), (u64, u64)> = BTreeMap::new();
    let start = |ts: i64| ts - ts.rem_euclid(60_000);
    for (rows, is_click) in [(&impressions, false), (&clicks, true)] {
        for r in rows {
            let e = windows.entry((r["ad"].as_str().unwrap_or_default().to_owned(), start(r["timestamp"].as_i64().unwrap_or_default()))).or_default();
            if is_click { e.1 += 1 } else { e.0 += 1 }
        }
    }
    let expected = windows
        .into_iter()
        .filter(|(_, (i, _))| *i > 0)
        .map(|((ad, s), (i, c))| json!({"ad": ad, "window_start": s, "window_end": s + 60_000, "impressions": i, "clicks": c, "ctr": c as f64 / i as f64}))
        .collect();
    let (i, c) = (dir.path().join("impressions.jsonl"), dir.path().join("clicks.jsonl"));
    write_jsonl(&i, &impressions);
    write_jsonl(&c, &clicks);
    AdCase { dir, impressions: i, clicks: c, expected }
}

fn check_ads(got: &[Value], expected: &[Value], what: &str) {
    assert_eq!(got.len(), expected.len(), "{what}: windows");
    let key = |v: &Value| (v["ad"].as_str().unwrap_or_default().to_owned(), v["window_start"].as_i64().unwrap_or_default());
    let want: BTreeMap<_, _> = expected.iter().map(|v| (key(v), v)).collect();
    for g in got {
        let w = want.get(&key(g)).unwrap_or_else(|| panic!("{what}: unexpected window {g}"));
        for f in ["window_end", "impressions", "clicks"] {
            assert_eq!(g[f], w[f], "{what}: {f} of {g}");
        }
        let (a, b) = (g["ctr"].as_f64().expect("ctr"), w["ctr"].as_f64().expect("ctr"));
        assert!((a - b).abs() < 1e-12, "{what}: ctr of {g}");
    }
}

#[test]
fn ad_attribution_counts_impressions_and_clicks_per_ad_and_minute() {
    let case = ad_case(6_000, 5);
    for backend in BACKENDS {
        for p in [1, 4] {
            let out = case.dir.path().join(format!("out-{backend:?}-{p}"));
            let params = [
                ("impressions", case.impressions.to_str().expect("utf8")),
                ("clicks", case.clicks.to_str().expect("utf8")),
                ("output", out.to_str().expect("utf8")),
            ];
            run_example("ad-attribution", &params, p, backend);
            check_ads(&read_jsonl(&out), &case.expected, &format!("{backend:?} p={p}"));
        }
    }
}

#[test]
fn ad_attribution_is_exact_under_kill_9() {
    let case = ad_case(120_000, seed());
    for (backend, p) in [("rocksdb", "1"), ("memory", "4")] {
        let out = case.dir.path().join(format!("kill-{backend}"));
        let run = case.dir.path().join(format!("run-{backend}"));
        let what = format!("ad attribution {backend} p={p}");
        kill_run(
            &what,
            "plugins-examples/ad-attribution/job.yaml",
            &[("impressions", &case.impressions), ("clicks", &case.clicks)],
            &out,
            backend,
            p,
            &run,
        );
        check_ads(&read_jsonl(&out), &case.expected, &what);
    }
}

/// The dynamic-rules contract's input and expected output.
struct RulesCase {
    dir: tempfile::TempDir,
    rules: PathBuf,
    transactions: PathBuf,
    expected: Vec<String>,
}

fn rules_case(n: usize, seed: u64) -> RulesCase {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng(seed);
    let (mut rules, mut txs) = (Vec::new(), Vec::new());
    let mut t = 1_700_000_000_000i64;
    for _ in 0..n {
        t += rng.below(50) as i64;
        if rng.below(40) == 0 {
            let rule_id = format!("r{}", rng.below(6));
            if rng.below(4) == 0 {
                rules.push(json!({"rule_id": rule_id, "op": "delete", "timestamp": t}));
            } else {
                rules.push(json!({"rule_id": rule_id, "op": "upsert", "min_amount": (rng.below(1_000) * 10) as f64, "timestamp": t}));
            }
        } else {
            txs.push(json!({"account_id": format!("acct-{}", rng.below(50)), "amount": (rng.below(1_000_000) as f64) / 100.0, "timestamp": t}));
        }
    }
    shuffle_within(&mut rules, 900, &mut rng);
    shuffle_within(&mut txs, 900, &mut rng);
    // Reference: for each transaction, the rules live at its time (last upsert at or
    // before it, not deleted since).
    let time = |r: &Value| r["timestamp"].as_i64().unwrap_or_default();
    let mut by_time = rules.clone();
    by_time.sort_by_key(time);
    let mut txs_by_time: Vec<&Value> = txs.iter().collect();
    txs_by_time.sort_by_key(|t| time(t));
    let mut expected = Vec::new();
    let (mut live, mut applied): (BTreeMap<String, f64>, usize) = (BTreeMap::new(), 0);
    for tx in txs_by_time {
        let ts = time(tx);
        // Apply every rule change at or before the transaction's time.
        while let Some(r) = by_time.get(applied).filter(|r| time(r) <= ts) {
            let id = r["rule_id"].as_str().unwrap_or_default().to_owned();
            if r["op"] == "delete" {
                live.remove(&id);
            } else {
                live.insert(id, r["min_amount"].as_f64().unwrap_or_default());
            }
            applied += 1;
        }
        for (id, min) in &live {
            if tx["amount"].as_f64().unwrap_or_default() >= *min {
                expected.push(json!({"account_id": tx["account_id"], "rule_id": id, "amount": tx["amount"], "timestamp": ts}).to_string());
            }
        }
    }
    expected.sort();
    let (r, tx) = (dir.path().join("rules.jsonl"), dir.path().join("transactions.jsonl"));
    write_jsonl(&r, &rules);
    write_jsonl(&tx, &txs);
    RulesCase { dir, rules: r, transactions: tx, expected }
}

#[test]
fn dynamic_rules_meet_each_transaction_with_the_rules_live_at_its_time() {
    let case = rules_case(6_000, 9);
    assert!(case.expected.len() > 500, "{}", case.expected.len());
    for backend in BACKENDS {
        for p in [1, 4] {
            let out = case.dir.path().join(format!("out-{backend:?}-{p}"));
            let params = [
                ("rules", case.rules.to_str().expect("utf8")),
                ("transactions", case.transactions.to_str().expect("utf8")),
                ("output", out.to_str().expect("utf8")),
            ];
            run_example("dynamic-rules", &params, p, backend);
            assert_eq!(sorted_rows(&out), case.expected, "{backend:?} p={p}");
        }
    }
}

#[test]
fn dynamic_rules_are_exact_under_kill_9() {
    let case = rules_case(150_000, seed());
    for (backend, p) in [("memory", "4"), ("rocksdb", "2")] {
        let out = case.dir.path().join(format!("kill-{backend}"));
        let run = case.dir.path().join(format!("run-{backend}"));
        let what = format!("dynamic rules {backend} p={p}");
        kill_run(
            &what,
            "plugins-examples/dynamic-rules/job.yaml",
            &[("rules", &case.rules), ("transactions", &case.transactions)],
            &out,
            backend,
            p,
            &run,
        );
        let got = sorted_lines(&out);
        assert_eq!(got.len(), case.expected.len(), "{what}: rows lost or duplicated");
        assert!(got == case.expected, "{what}: output differs from the contract");
    }
}

/// Run a spec writing to `out` at parallelism 1 and 4 on both backends; `check` gets
/// each configuration's name and output rows.
fn at_each_configuration(yaml: &str, dir: &Path, out: &Path, check: impl Fn(&str, Vec<Value>)) {
    for backend in BACKENDS {
        for p in [1, 4] {
            let _ = std::fs::remove_dir_all(out);
            let what = format!("{backend:?} p={p}");
            run_spec(yaml, dir, &[], Some(p), backend).unwrap_or_else(|e| panic!("{what}: {e}"));
            check(&what, read_jsonl(out));
        }
    }
}

#[test]
fn a_component_built_against_0_2_0_runs_unchanged() {
    let wasm = repo().join("tests/fixtures/wit-0.2.0/counter_v1.wasm");
    let plugin = engine().load_file(&wasm).expect("a 0.2.0 component loads");
    assert_eq!(plugin.contract, rivulet_plugin::Contract::V0_2);
    let new = engine().load_file(&repo().join("plugins-examples/counter-v1/counter_v1.wasm")).expect("load");
    assert_eq!(new.contract, rivulet_plugin::Contract::V0_4, "today's SDK targets 0.4.0");
    counts_add_up(&wasm);
    // A 0.2.0 component cannot be given what only 0.3.0 has.
    let dir = tempfile::tempdir().expect("tempdir");
    let joined = format!(
        "name: compat2\nsources:\n  - {{id: a, type: generator, count: 10}}\n  - {{id: b, type: generator, count: 10}}\noperators:\n  - {{uid: counter, plugin: {}, inputs: {{left: [a], right: [b]}}, key_by: {{field: key}}}}\nsinks:\n  - {{id: out, type: stdout, inputs: [counter]}}\n",
        wasm.display()
    );
    let e = run_spec(&joined, dir.path(), &[], Some(1), BACKENDS[0]).expect_err("0.2.0 with named inputs");
    assert!(e.to_string().contains("rivulet:operator@0.3.0") && e.to_string().contains("named inputs"), "{e}");
}

#[test]
fn a_component_built_against_0_3_0_runs_unchanged() {
    let wasm = repo().join("tests/fixtures/wit-0.3.0/counter_v1.wasm");
    let plugin = engine().load_file(&wasm).expect("a 0.3.0 component loads");
    assert_eq!(plugin.contract, rivulet_plugin::Contract::V0_3);
    counts_add_up(&wasm);
}

/// Run the counter component `wasm` on 3000 generated records of 10 keys in every
/// configuration: the last count per key adds up to 3000.
fn counts_add_up(wasm: &Path) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let yaml = format!(
        "name: compat\nsources:\n  - {{id: gen, type: generator, count: 3000, keys: 10}}\noperators:\n  - {{uid: counter, plugin: {}, inputs: [gen], key_by: {{field: key}}}}\nsinks:\n  - {{id: out, type: file, path: {}, inputs: [counter]}}\n",
        wasm.display(),
        out.display()
    );
    at_each_configuration(&yaml, dir.path(), &out, |what, rows| {
        assert_eq!(rows.len(), 3000);
        let mut max: BTreeMap<String, u64> = BTreeMap::new();
        for r in rows {
            let k = r["key"].as_str().expect("key").to_owned();
            let c = r["count"].as_u64().expect("count");
            let m = max.entry(k).or_default();
            *m = (*m).max(c);
        }
        assert_eq!(max.values().sum::<u64>(), 3000, "{what}: counts per key add up");
    });
}

/// Run `job` at parallelism 1, 4 and 2 in turn, each of the first two stopped with a
/// savepoint after `stops` records and the next started from it; returns the first
/// savepoint's `savepoint inspect --entries` text.
pub(crate) fn through_savepoints(job: &str, params: &[(&str, &Path)], out: &Path, dir: &Path, backend: &str, stops: [&str; 2]) -> String {
    let mut savepoint: Option<String> = None;
    let mut first_inspect = String::new();
    for (p, stop) in [(1, Some(stops[0])), (4, Some(stops[1])), (2, None)] {
        let mut c = rivulet();
        c.args(["run", job, "--quiet", "--state-backend", backend, "--parallelism", &p.to_string()]);
        for (k, v) in params {
            c.arg("--param").arg(format!("{k}={}", v.display()));
        }
        c.arg("--param").arg(format!("output={}", out.display())).arg("--checkpoint-dir").arg(dir.join("ck")).arg("--data-dir").arg(dir.join("data"));
        if let Some(sp) = &savepoint {
            c.args(["--restore", sp]);
        }
        if let Some(n) = stop {
            c.args(["--stop-with-savepoint-after-records", n]);
        }
        let run = c.output().expect("run");
        assert!(run.status.success(), "{job} {backend} p={p}: {}", String::from_utf8_lossy(&run.stderr));
        if stop.is_some() {
            let sp = String::from_utf8_lossy(&run.stdout).trim().to_owned();
            if savepoint.is_none() {
                let inspect = rivulet().args(["savepoint", "inspect", &sp, "--entries"]).output().expect("inspect");
                assert!(inspect.status.success(), "{}", String::from_utf8_lossy(&inspect.stderr));
                first_inspect = String::from_utf8_lossy(&inspect.stdout).into_owned();
            }
            savepoint = Some(sp);
        }
    }
    first_inspect
}

#[test]
fn rescale_1_to_4_to_2_keeps_join_buffers_broadcast_state_and_partial_matches() {
    for backend in ["memory", "rocksdb"] {
        let case = join_case(3_000, 17);
        let out = case.dir.path().join("out");
        let inspect = through_savepoints(
            "plugins-examples/interval-join/job.yaml",
            &[("orders", &case.orders), ("payments", &case.payments)],
            &out,
            case.dir.path(),
            backend,
            ["2000", "2500"],
        );
        assert!(inspect.contains("state __rivulet.join-left (map)") && inspect.contains("join-buffer cleanups"), "{inspect}");
        assert_eq!(sorted_lines(&out), case.expected, "interval join {backend} across 1→4→2");

        let case = rules_case(8_000, 23);
        let out = case.dir.path().join("out");
        let inspect = through_savepoints(
            "plugins-examples/dynamic-rules/job.yaml",
            &[("rules", &case.rules), ("transactions", &case.transactions)],
            &out,
            case.dir.path(),
            backend,
            ["3000", "2000"],
        );
        assert!(inspect.contains("broadcast state rules:") && inspect.contains("[broadcast rules] \"r"), "{inspect}");
        assert_eq!(sorted_lines(&out), case.expected, "dynamic rules {backend} across 1→4→2");
    }
}

#[test]
fn broadcast_state_is_read_only_outside_process_broadcast() {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "name: bw\nsources:\n  - {{id: keyed, type: generator, count: 5, keys: 2}}\n  - {{id: rules, type: generator, count: 2}}\n\
         operators:\n  - {{uid: ops, plugin: {}, config: {{mode: broadcast-write}}, key_by: {{field: key}}, broadcast_order: arrival,\n     inputs: {{events: [keyed], rules: {{from: [rules], broadcast: true}}}}}}\n\
         sinks:\n  - {{id: out, type: stdout, inputs: [ops]}}\n",
        fixture("fixture_test_ops").display()
    );
    let e = run_spec(&yaml, dir.path(), &[], Some(2), BACKENDS[0]).expect_err("a write from a keyed record");
    let text = e.to_string();
    assert!(text.contains("broadcast state 'rules' is read-only here") && text.contains("process-broadcast"), "{text}");
    assert!(text.contains("operator 'ops'"), "names the operator: {text}");
}

#[test]
fn two_keyed_inputs_share_the_state_of_their_key_and_are_told_apart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    // Sequence generators: record i has key k(i mod keys); 900 + 600 records over 3 and 2 keys.
    let yaml = format!(
        "name: co\nsources:\n  - {{id: a, type: generator, count: 900, keys: 3}}\n  - {{id: b, type: generator, count: 600, keys: 2}}\n\
         operators:\n  - {{uid: ops, plugin: {}, config: {{mode: co-state}}, key_by: {{field: key}}, inputs: {{clicks: [a], views: [b]}}}}\n\
         sinks:\n  - {{id: out, type: file, path: {}, inputs: [ops]}}\n",
        fixture("fixture_test_ops").display(),
        out.display()
    );
    at_each_configuration(&yaml, dir.path(), &out, |what, rows| {
        let mut by_input: BTreeMap<String, usize> = BTreeMap::new();
        let mut max: BTreeMap<String, u64> = BTreeMap::new();
        for r in &rows {
            *by_input.entry(r["input"].as_str().expect("input").to_owned()).or_default() += 1;
            let m = max.entry(r["key"].as_str().expect("key").to_owned()).or_default();
            *m = (*m).max(r["count"].as_u64().expect("count"));
        }
        assert_eq!(by_input, BTreeMap::from([("clicks".to_owned(), 900), ("views".to_owned(), 600)]), "{what}");
        // k0 and k1 get 300 records from a and 300 from b; k2 only a's 300.
        let want = BTreeMap::from([("k0".to_owned(), 600), ("k1".to_owned(), 600), ("k2".to_owned(), 300)]);
        assert_eq!(max, want, "{what}: one count per key across both inputs");
    });
}
