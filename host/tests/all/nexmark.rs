//! Nexmark: each query's job (`plugins-examples/nexmark/jobs/`) on a small generated
//! stream, at parallelism 1 and 3 on both state backends, against a reference computed
//! here from the generator's events (plain Rust over the whole stream, sharing no code
//! with the operators); and a stateful query under `kill -9` with frequent checkpoints.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rivulet_connectors::nexmark::json::format_date_time;
use rivulet_connectors::nexmark::model::{Auction, Bid, Event, NexmarkConfig, Person};
use rivulet_runtime::JobReport;
use rivulet_state::BackendKind;
use serde_json::{Value, json};

use crate::fault::{hidden_files, rivulet, sorted_lines};
use crate::support::*;

/// Events in the test stream, and their event-time rate (50 s of event time).
const EVENTS: u64 = 25_000;
const EVENT_RATE: u64 = 500;

/// Events of the stream the `kill -9` test runs on: long enough to be killed in.
const KILL_EVENTS: u64 = 400_000;

/// The first `n` events, as the jobs' sources generate them (their defaults but the rate).
fn stream_of(n: u64) -> Vec<Event> {
    let cfg = NexmarkConfig { event_rate: EVENT_RATE as f64, ..NexmarkConfig::default() };
    (0..n).map(|i| cfg.event(i)).collect()
}

/// The test stream.
fn stream() -> Vec<Event> {
    stream_of(EVENTS)
}

fn bids(events: &[Event]) -> impl Iterator<Item = &Bid> {
    events.iter().filter_map(|e| if let Event::Bid(b) = e { Some(b) } else { None })
}

fn auctions(events: &[Event]) -> impl Iterator<Item = &Auction> {
    events.iter().filter_map(|e| if let Event::Auction(a) = e { Some(a) } else { None })
}

fn people(events: &[Event]) -> impl Iterator<Item = &Person> {
    events.iter().filter_map(|e| if let Event::Person(p) = e { Some(p) } else { None })
}

fn date(ms: i64) -> String {
    let mut v = Vec::new();
    format_date_time(ms, &mut v);
    String::from_utf8(v).expect("ascii")
}

/// Rows as canonical JSON text, sorted.
fn canonical(rows: impl IntoIterator<Item = Value>) -> Vec<String> {
    let mut v: Vec<String> = rows.into_iter().map(|r| r.to_string()).collect();
    v.sort();
    v
}

/// The start of the `size` window holding `ts` (windows aligned to the epoch).
fn window_of(ts: i64, size: i64) -> i64 {
    ts - ts.rem_euclid(size)
}

/// Every query's expected output rows (canonical, sorted); q4's are its final average
/// per category (checked apart, see [`check_q4`]).
fn expected(query: &str, events: &[Event]) -> Vec<String> {
    match query {
        "q0" => canonical(bids(events).map(|b| json!({"auction": b.auction, "bidder": b.bidder, "price": b.price, "dateTime": date(b.date_time), "extra": b.extra}))),
        // Dollars to euros: × 0.908, exact to three decimals.
        "q1" => canonical(bids(events).map(|b| json!({"auction": b.auction, "bidder": b.bidder, "price": (b.price * 908) as f64 / 1000.0, "dateTime": date(b.date_time), "extra": b.extra}))),
        "q2" => canonical(bids(events).filter(|b| b.auction % 123 == 0).map(|b| json!({"auction": b.auction, "price": b.price}))),
        "q3" => {
            let by_id: BTreeMap<u64, &Person> = people(events).map(|p| (p.id, p)).collect();
            canonical(auctions(events).filter(|a| a.category == 10).filter_map(|a| {
                let p = by_id.get(&a.seller)?;
                ["OR", "ID", "CA"].contains(&p.state.as_str()).then(|| json!({"name": p.name, "city": p.city, "state": p.state, "id": a.id}))
            }))
        }
        "q5" => {
            // (window start, auction) → bids, over every 10 s window sliding by 2 s.
            let mut counts: BTreeMap<(i64, u64), u64> = BTreeMap::new();
            for b in bids(events) {
                let mut start = window_of(b.date_time, 2_000);
                while start > b.date_time - 10_000 {
                    *counts.entry((start, b.auction)).or_default() += 1;
                    start -= 2_000;
                }
            }
            let mut max: BTreeMap<i64, u64> = BTreeMap::new();
            for (&(s, _), &n) in &counts {
                let m = max.entry(s).or_default();
                *m = (*m).max(n);
            }
            canonical(counts.iter().filter(|&(&(s, _), &n)| n == max[&s]).map(|(&(s, a), &n)| json!({"auction": a, "num": n, "starttime": s, "endtime": s + 10_000})))
        }
        "q7" => {
            let mut max: BTreeMap<i64, u64> = BTreeMap::new();
            for b in bids(events) {
                let m = max.entry(window_of(b.date_time, 10_000)).or_default();
                *m = (*m).max(b.price);
            }
            canonical(bids(events).filter(|b| b.price == max[&window_of(b.date_time, 10_000)]).map(|b| {
                json!({"auction": b.auction, "price": b.price, "bidder": b.bidder, "dateTime": date(b.date_time), "extra": b.extra, "windowStart": window_of(b.date_time, 10_000)})
            }))
        }
        "q8" => {
            let sellers: BTreeSet<(u64, i64)> = auctions(events).map(|a| (a.seller, window_of(a.date_time, 10_000))).collect();
            canonical(
                people(events)
                    .filter(|p| sellers.contains(&(p.id, window_of(p.date_time, 10_000))))
                    .map(|p| json!({"id": p.id, "name": p.name, "starttime": window_of(p.date_time, 10_000)})),
            )
        }
        "q9" => canonical(winners(events).into_iter().map(|(a, b)| {
            json!({"id": a.id, "itemName": a.item_name, "description": a.description, "initialBid": a.initial_bid, "reserve": a.reserve,
                   "dateTime": date(a.date_time), "expires": date(a.expires), "seller": a.seller, "category": a.category, "extra": a.extra,
                   "bidder": b.bidder, "price": b.price, "bidDateTime": date(b.date_time), "bidExtra": b.extra})
        })),
        "q11" => {
            let mut times: BTreeMap<u64, Vec<i64>> = BTreeMap::new();
            for b in bids(events) {
                times.entry(b.bidder).or_default().push(b.date_time);
            }
            let mut rows = Vec::new();
            for (bidder, mut ts) in times {
                ts.sort_unstable();
                let (mut start, mut last, mut n) = (ts[0], ts[0], 0u64);
                for &t in &ts {
                    // Sessions of [t, t + gap) that touch or overlap merge.
                    if t > last + 10_000 {
                        rows.push(json!({"bidder": bidder, "bid_count": n, "starttime": start, "endtime": last + 10_000}));
                        (start, n) = (t, 0);
                    }
                    last = t;
                    n += 1;
                }
                rows.push(json!({"bidder": bidder, "bid_count": n, "starttime": start, "endtime": last + 10_000}));
            }
            canonical(rows)
        }
        other => panic!("no reference for {other}"),
    }
}

/// Each auction with a bid between its opening and expiry (both included), and its
/// best such bid: highest price, then earliest, then lowest bidder id.
fn winners(events: &[Event]) -> Vec<(&Auction, &Bid)> {
    let mut by_auction: BTreeMap<u64, Vec<&Bid>> = BTreeMap::new();
    for b in bids(events) {
        by_auction.entry(b.auction).or_default().push(b);
    }
    auctions(events)
        .filter_map(|a| {
            let best = by_auction
                .get(&a.id)?
                .iter()
                .filter(|b| a.date_time <= b.date_time && b.date_time <= a.expires)
                .max_by_key(|b| (b.price, std::cmp::Reverse(b.date_time), std::cmp::Reverse(b.bidder)))?;
            Some((a, *best))
        })
        .collect()
}

/// q4: per category, one row per closed auction with a winning bid, the last being the
/// truncated average of their winning prices.
fn check_q4(out: &Path, events: &[Event], what: &str) {
    let mut want: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for (a, b) in winners(events) {
        let e = want.entry(a.category).or_default();
        *e = (e.0 + b.price, e.1 + 1);
    }
    // Rows of one category come from one subtask, in order: the last is the final one.
    let mut got: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for row in read_jsonl(out) {
        let e = got.entry(row["category"].as_u64().expect("category")).or_default();
        *e = (row["avg"].as_u64().expect("avg"), e.1 + 1);
    }
    let want: BTreeMap<u64, (u64, u64)> = want.into_iter().map(|(c, (sum, n))| (c, (sum / n, n))).collect();
    assert_eq!(got, want, "{what}: (final average, rows) per category");
}

fn run_query(query: &str, out: &Path, parallelism: u32, backend: BackendKind) -> JobReport {
    let base = repo().join("plugins-examples/nexmark/jobs");
    let yaml = std::fs::read_to_string(base.join(format!("{query}.yaml"))).expect("job spec");
    let (events, rate, p) = (EVENTS.to_string(), EVENT_RATE.to_string(), parallelism.to_string());
    let params = [("events", events.as_str()), ("event_rate", rate.as_str()), ("parallelism", p.as_str()), ("output", out.to_str().expect("utf8"))];
    run_spec(&yaml, &base, &params, Some(parallelism), backend).unwrap_or_else(|e| panic!("{query} failed: {e}"))
}

/// Run `query` at parallelism 1 and 3 on both backends; compare with the reference.
fn check(query: &str) {
    let events = stream();
    let dir = tempfile::tempdir().expect("tempdir");
    let want = if query == "q4" { Vec::new() } else { expected(query, &events) };
    assert!(query == "q4" || want.len() >= 5, "{query}: the test stream gives too few rows ({})", want.len());
    for backend in BACKENDS {
        for p in [1, 3] {
            let what = format!("{query} {backend:?} p={p}");
            let out = dir.path().join(format!("{backend:?}-{p}"));
            let report = run_query(query, &out, p, backend);
            assert!(report.nodes.iter().all(|n| n.late == 0), "{what}: nothing is late in an ordered stream");
            if query == "q4" {
                check_q4(&out, &events, &what);
            } else {
                let got = canonical(read_jsonl(&out));
                assert_eq!(got.len(), want.len(), "{what}: rows");
                assert!(got == want, "{what}: output differs from the reference");
            }
        }
    }
}

/// The file path of the side-by-side benchmark: `rivulet nexmark --input` reads the same
/// stream from JSON lines, each generator replaced by an event filter that forwards the
/// records of its kinds (`collector.forward`, only some records of each batch); q3 joins
/// two of the filtered streams.
#[test]
fn q3_reads_the_stream_from_a_file_through_forwarding_filters() {
    let events = stream();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("events.jsonl");
    let mut text = Vec::new();
    for e in &events {
        rivulet_connectors::nexmark::json::write_event(e, &mut text);
        text.push(b'\n');
    }
    std::fs::write(&file, text).expect("write events");
    let want = expected("q3", &events);
    assert!(want.len() >= 5, "the test stream gives too few rows ({})", want.len());
    for backend in ["memory", "rocksdb"] {
        for p in ["1", "3"] {
            let what = format!("q3 from a file, {backend} p={p}");
            let out = dir.path().join(format!("out-{backend}-{p}"));
            let run = rivulet()
                .args(["nexmark", "--query", "q3", "--input"])
                .arg(&file)
                .arg("--output")
                .arg(&out)
                .args(["--parallelism", p, "--state-backend", backend, "--events", &EVENTS.to_string(), "--event-rate", &EVENT_RATE.to_string()])
                .output()
                .expect("spawn");
            assert!(run.status.success(), "{what}: {}", String::from_utf8_lossy(&run.stderr));
            let got = canonical(read_jsonl(&out));
            assert_eq!(got.len(), want.len(), "{what}: rows");
            assert!(got == want, "{what}: output differs from the reference");
        }
    }
}

#[test]
fn q0_passes_every_bid_through() {
    check("q0");
}

#[test]
fn q1_converts_every_price() {
    check("q1");
}

#[test]
fn q2_selects_the_bids_on_every_123rd_auction() {
    check("q2");
}

#[test]
fn q3_finds_local_sellers_in_category_10() {
    check("q3");
}

#[test]
fn q4_averages_winning_prices_per_category() {
    check("q4");
}

#[test]
fn q5_finds_the_hottest_auctions_of_every_sliding_window() {
    check("q5");
}

#[test]
fn q7_finds_the_highest_bids_of_every_window() {
    check("q7");
}

#[test]
fn q8_finds_new_people_who_sell_at_once() {
    check("q8");
}

#[test]
fn q9_finds_every_auctions_winning_bid() {
    check("q9");
}

#[test]
fn q11_counts_bids_per_user_session() {
    check("q11");
}

/// q9 keeps open auctions, their best bids and early bids in keyed state, with timers:
/// under `kill -9` with checkpoints every 200 ms its output is still exactly the
/// reference (the source resumes from its checkpointed position).
#[test]
fn q9_is_exact_under_kill_9() {
    let events = stream_of(KILL_EVENTS);
    let want = expected("q9", &events);
    let dir = tempfile::tempdir().expect("tempdir");
    for (backend, p) in [("memory", "1"), ("rocksdb", "3")] {
        let out = dir.path().join(format!("kill-{backend}"));
        let run = dir.path().join(format!("run-{backend}"));
        let what = format!("q9 {backend} p={p}");
        kill_loop(&what, 4, 150, 250, 700, || {
            let mut c = rivulet();
            c.args([
                "run",
                "plugins-examples/nexmark/jobs/q9.yaml",
                "--quiet",
                "--state-backend",
                backend,
                "--checkpoint-interval",
                "200ms",
                "--parallelism",
                p,
            ]);
            for (k, v) in [("events", KILL_EVENTS.to_string()), ("event_rate", EVENT_RATE.to_string()), ("parallelism", p.to_owned())] {
                c.arg("--param").arg(format!("{k}={v}"));
            }
            c.arg("--param").arg(format!("output={}", out.display()));
            c.arg("--checkpoint-dir").arg(run.join("ck")).arg("--data-dir").arg(run.join("data")).args(["--restore", "latest"]);
            c
        });
        assert!(hidden_files(&out).is_empty(), "{what}: uncommitted files left");
        let got = canonical(sorted_lines(&out).iter().map(|l| serde_json::from_str::<Value>(l).expect("json")));
        assert_eq!(got.len(), want.len(), "{what}: winners lost or duplicated");
        assert!(got == want, "{what}: output differs from the reference");
    }
}
