//! Each example end to end, under parallelism 1 and 4 and both state backends, against
//! an expectation computed here independently.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::{Value, json};

use crate::support::*;

pub(crate) fn sorted(mut rows: Vec<Value>) -> Vec<String> {
    let mut s: Vec<String> = rows.drain(..).map(|v| v.to_string()).collect();
    s.sort();
    s
}

/// The reference tokenizer of the wordcount contract.
fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(|w| w.to_lowercase().trim_matches(|c: char| c.is_ascii_punctuation()).to_owned()).filter(|w| !w.is_empty()).collect()
}

#[test]
fn wordcount_matches_reference() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng(7);
    let vocab = ["Apple", "banana,", "(cherry)", "apple!", "Date", "--", "elder...", "FIG", "grape", "'hi'"];
    let mut text = String::new();
    for _ in 0..400 {
        let n = rng.below(9);
        let line: Vec<&str> = (0..n).map(|_| vocab[rng.below(vocab.len() as u64) as usize]).collect();
        text.push_str(&line.join(if rng.below(2) == 0 { " " } else { "\t  " }));
        text.push('\n');
    }
    let input = dir.path().join("in.txt");
    std::fs::write(&input, &text).expect("write");
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    for w in words(&text) {
        *totals.entry(w).or_default() += 1;
    }
    let expected: Vec<Value> = totals.iter().flat_map(|(w, n)| (1..=*n).map(move |i| json!({"word": w, "count": i}))).collect();
    for backend in BACKENDS {
        for p in [1, 4] {
            let out = dir.path().join(format!("out-{backend:?}-{p}.jsonl"));
            run_example("wordcount", &[("input", input.to_str().expect("utf8")), ("output", out.to_str().expect("utf8"))], p, backend);
            let rows = read_jsonl(&out);
            assert_eq!(sorted(rows.clone()), sorted(expected.clone()), "{backend:?} p={p}");
            // Per word, running counts arrive in order.
            let mut last: HashMap<String, u64> = HashMap::new();
            for r in rows {
                let w = r["word"].as_str().expect("word").to_owned();
                let c = r["count"].as_u64().expect("count");
                assert_eq!(last.insert(w.clone(), c).unwrap_or(0) + 1, c, "{w}");
            }
        }
    }
}

/// Flink's fraud-detection rule, as a plain loop over the input in order.
/// Write `n` random card transactions over `accounts` accounts (seeded) as JSON lines
/// to `path`: small, large and ordinary amounts, increasing timestamps. Returns them as
/// (account, amount, timestamp).
pub(crate) fn write_transactions(path: &Path, seed: u64, n: usize, accounts: u64) -> Vec<(String, f64, i64)> {
    let mut rng = Rng(seed);
    let mut txs = Vec::new();
    let mut ts = 1_700_000_000_000i64;
    for _ in 0..n {
        ts += rng.below(30_000) as i64;
        let acct = format!("acct-{}", rng.below(accounts));
        let amount = match rng.below(10) {
            0..=2 => (rng.below(99) as f64) / 100.0,
            3..=5 => 500.0 + rng.below(50_000) as f64 / 100.0,
            _ => 1.0 + rng.below(49_000) as f64 / 100.0,
        };
        txs.push((acct, amount, ts));
    }
    let text: String = txs.iter().map(|(a, m, t)| format!("{}\n", json!({"account_id": a, "amount": m, "timestamp": t}))).collect();
    std::fs::write(path, text).expect("write");
    txs
}

pub(crate) fn fraud_reference(txs: &[(String, f64, i64)]) -> Vec<Value> {
    let mut flag: HashMap<&str, i64> = HashMap::new();
    let mut out = Vec::new();
    for (acct, amount, ts) in txs {
        if let Some(small) = flag.remove(acct.as_str())
            && *amount > 500.0
            && ts - small <= 60_000
            && ts - small >= 0
        {
            out.push(json!({"account_id": acct, "small_timestamp": small, "large_timestamp": ts}));
        }
        if *amount < 1.0 {
            flag.insert(acct, *ts);
        }
    }
    out
}

#[test]
fn fraud_detection_matches_reference() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("tx.jsonl");
    let txs = write_transactions(&input, 42, 3000, 25);
    let expected = fraud_reference(&txs);
    assert!(expected.len() > 10, "the input should produce alerts");
    for backend in BACKENDS {
        for p in [1, 4] {
            let out = dir.path().join(format!("alerts-{backend:?}-{p}.jsonl"));
            run_example("fraud-detection", &[("input", input.to_str().expect("utf8")), ("output", out.to_str().expect("utf8"))], p, backend);
            assert_eq!(sorted(read_jsonl(&out)), sorted(expected.clone()), "{backend:?} p={p}");
        }
    }
}

#[test]
fn fraud_detection_sample_has_alerts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sample = repo().join("plugins-examples/fraud-detection/sample.jsonl");
    let out = dir.path().join("alerts.jsonl");
    run_example("fraud-detection", &[("input", sample.to_str().expect("utf8")), ("output", out.to_str().expect("utf8"))], 1, BACKENDS[0]);
    let txs: Vec<(String, f64, i64)> = read_jsonl(&sample)
        .into_iter()
        .map(|v| (v["account_id"].as_str().expect("id").to_owned(), v["amount"].as_f64().expect("amount"), v["timestamp"].as_i64().expect("ts")))
        .collect();
    let expected = fraud_reference(&txs);
    assert!(expected.len() >= 3);
    assert_eq!(sorted(read_jsonl(&out)), sorted(expected));
}

/// Tumbling 10 s windows with a 2 s out-of-orderness bound and watermarks after every
/// record (the job's `watermark_every: 1`), computed directly.
fn sensor_reference(recs: &[(String, f64, i64)]) -> (Vec<Value>, Vec<Value>) {
    let mut windows: BTreeMap<(String, i64), Vec<f64>> = BTreeMap::new();
    let mut late = Vec::new();
    let mut max_ts = i64::MIN;
    let mut wm = i64::MIN;
    for (s, v, ts) in recs {
        let start = ts - ts.rem_euclid(10_000);
        if start + 10_000 - 1 <= wm {
            late.push(json!({"sensor": s, "value": v, "timestamp": ts}));
        } else {
            windows.entry((s.clone(), start)).or_default().push(*v);
        }
        max_ts = max_ts.max(*ts);
        wm = wm.max(max_ts - 2000 - 1);
    }
    let out = windows
        .into_iter()
        .map(|((s, start), vals)| {
            let sum: f64 = vals.iter().sum();
            json!({
                "sensor": s, "window_start": start, "window_end": start + 10_000, "count": vals.len(),
                "avg": sum / vals.len() as f64,
                "min": vals.iter().cloned().fold(f64::INFINITY, f64::min),
                "max": vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
            })
        })
        .collect();
    (out, late)
}

#[test]
fn sensor_windows_match_reference() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng(3);
    let mut recs = Vec::new();
    let mut ts = 1_000_000i64;
    for _ in 0..1500 {
        ts += rng.below(400) as i64;
        // Mostly in order; some within the bound; some far behind.
        let t = match rng.below(20) {
            0 => ts - 1000 - rng.below(900) as i64,
            1 => ts - 5000 - rng.below(10_000) as i64,
            _ => ts,
        };
        let v = (rng.below(10_000) as f64) / 100.0;
        recs.push((format!("sensor-{}", rng.below(6)), v, t));
    }
    let input = dir.path().join("s.jsonl");
    let text: String = recs.iter().map(|(s, v, t)| format!("{}\n", json!({"sensor": s, "value": v, "timestamp": t}))).collect();
    std::fs::write(&input, text).expect("write");
    let (expected, expected_late) = sensor_reference(&recs);
    assert!(!expected_late.is_empty());
    for backend in BACKENDS {
        for p in [1, 4] {
            let out = dir.path().join(format!("w-{backend:?}-{p}.jsonl"));
            let late = dir.path().join(format!("late-{backend:?}-{p}.jsonl"));
            run_example(
                "sensor-windows",
                &[("input", input.to_str().expect("utf8")), ("output", out.to_str().expect("utf8")), ("late_output", late.to_str().expect("utf8"))],
                p,
                backend,
            );
            let got = read_jsonl(&out);
            assert_eq!(got.len(), expected.len(), "{backend:?} p={p}");
            let key = |v: &Value| (v["sensor"].as_str().unwrap_or_default().to_owned(), v["window_start"].as_i64().unwrap_or_default());
            let want: BTreeMap<_, _> = expected.iter().map(|v| (key(v), v)).collect();
            for g in &got {
                let w = want.get(&key(g)).unwrap_or_else(|| panic!("unexpected window {g}"));
                for f in ["window_end", "count"] {
                    assert_eq!(g[f], w[f], "{f} of {g}");
                }
                for f in ["avg", "min", "max"] {
                    let (a, b) = (g[f].as_f64().expect("num"), w[f].as_f64().expect("num"));
                    assert!((a - b).abs() < 1e-9, "{f} of {g}: {a} vs {b}");
                }
            }
            assert_eq!(sorted(read_jsonl(&late)), sorted(expected_late.clone()), "late records, {backend:?} p={p}");
        }
    }
}
