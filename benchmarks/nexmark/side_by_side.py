"""Nexmark, Rivulet and Apache Flink side by side on one machine in one run.

    python side_by_side.py --rivulet target/release/rivulet --flink-python venv/bin/python
        [--events 1000000] [--check-events 50000] [--queries q0,q1,...] [--parallelism 1]
        [--checkpoint-interval-ms 1000] [--results results.md]

1. Writes the Nexmark stream as JSON lines once (Rivulet's `nexmark` source, Flink
   Nexmark's JSON shape) and caches it.
2. Check: runs each query on a small stream in both engines and compares their final
   results (as sets of rows; q4 and q9 as their final tables).
3. Measure: per query, interleaved, Rivulet reading the same file, Flink SQL reading it,
   and Rivulet on its own generator (no JSON parsing: the engine-only figure). Each run
   reports the seconds and CPU seconds of the query itself, peak RSS, and start-up.
4. Prints a Markdown table (and writes it to --results).
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
QUERIES = ["q0", "q1", "q2", "q3", "q4", "q5", "q7", "q8", "q9", "q11"]
EVENT_RATE = 10_000


def log(msg):
    print(f"[bench-nexmark] {msg}", file=sys.stderr, flush=True)


def run_json(cmd, env=None):
    """Run `cmd`, return (its last stdout line as JSON, wall seconds)."""
    t0 = time.time()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    wall = time.time() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-4000:]}")
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    return json.loads(lines[-1]), wall


def events_file(rivulet, n, cache):
    """The first `n` Nexmark events as one JSON-lines file (made once, cached)."""
    path = os.path.join(cache, f"events-{n}-{EVENT_RATE}.jsonl")
    if os.path.exists(path):
        return path
    log(f"writing {n} events to {path}")
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([rivulet, "run", "benchmarks/nexmark/events.yaml", "--quiet", "--param", f"events={n}",
                        "--param", f"event_rate={EVENT_RATE}", "--param", f"output={out}"], cwd=ROOT, check=True)
        parts = sorted(f for f in os.listdir(out) if not f.startswith("."))
        with open(path + ".tmp", "wb") as dst:
            for part in parts:
                with open(os.path.join(out, part), "rb") as src:
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
    os.replace(path + ".tmp", path)
    return path


def ms_text(ms):
    t = datetime.datetime(1970, 1, 1) + datetime.timedelta(milliseconds=ms)
    return t.strftime("%Y-%m-%d %H:%M:%S.%f")[:23]


def rivulet_rows(query, rows):
    """Rivulet's result rows, in the columns Flink's query returns."""
    if query in ("q0", "q7"):
        return [(r["auction"], r["bidder"], r["price"], r["dateTime"], r["extra"]) if query == "q0"
                else (r["auction"], r["price"], r["bidder"], r["dateTime"], r["extra"]) for r in rows]
    if query == "q1":
        return [(r["auction"], r["bidder"], f"{r['price']:.3f}", r["dateTime"], r["extra"]) for r in rows]
    if query == "q2":
        return [(r["auction"], r["price"]) for r in rows]
    if query == "q3":
        return [(r["name"], r["city"], r["state"], r["id"]) for r in rows]
    if query == "q4":
        final = {}
        for r in rows:  # rows of a category in order: the last is its final average
            final[r["category"]] = r["avg"]
        return sorted(final.items())
    if query == "q5":
        return [(r["auction"], r["num"]) for r in rows]
    if query == "q8":
        return [(r["id"], r["name"], ms_text(r["starttime"])) for r in rows]
    if query == "q9":
        return [(r["id"], r["price"]) for r in rows]
    if query == "q11":
        return [(r["bidder"], r["bid_count"], ms_text(r["starttime"]), ms_text(r["endtime"])) for r in rows]
    raise ValueError(query)


def flink_rows(query, rows):
    """Flink's result rows, normalised like Rivulet's."""
    if query == "q1":
        return [(a, b, str(p), d, e) for a, b, p, d, e in rows]
    if query == "q4":
        return sorted((c, int(a)) for c, a in rows)
    if query == "q9":
        return [(r[0], r[12]) for r in rows]
    return [tuple(r) for r in rows]


def read_output(directory):
    rows = []
    for f in sorted(os.listdir(directory)):
        if f.startswith("."):
            continue
        with open(os.path.join(directory, f)) as src:
            rows.extend(json.loads(line) for line in src if line.strip())
    return rows


def check(args, query, events):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "rivulet")
        run_json([args.rivulet, "nexmark", "--query", query, "--events", str(args.check_events), "--input", events,
                  "--output", out, "--json"])
        mine = sorted(map(tuple, rivulet_rows(query, read_output(out))))
        collected = os.path.join(tmp, "flink.json")
        run_json([args.flink_python, os.path.join(HERE, "flink_query.py"), "--query", query, "--input", events,
                  "--collect", collected])
        with open(collected) as f:
            theirs = sorted(flink_rows(query, [tuple(r) for r in json.load(f)]))
    if mine == theirs:
        return f"equal ({len(mine)} rows)"
    only_mine = len(set(mine) - set(theirs))
    only_theirs = len(set(theirs) - set(mine))
    return f"DIFFER: {len(mine)} vs {len(theirs)} rows, {only_mine} only in Rivulet, {only_theirs} only in Flink"


def measure(args, query, events):
    """One interleaved round: Rivulet on the file, Flink on the file, Rivulet generating."""
    ck = ["--checkpoint-interval", f"{args.checkpoint_interval_ms}ms"] if args.checkpoint_interval_ms else []
    base = [args.rivulet, "nexmark", "--query", query, "--events", str(args.events), "--parallelism",
            str(args.parallelism), "--json", *ck]
    figures = {}
    r, wall = run_json(base + ["--input", events])
    r["startup_seconds"] = wall - r["seconds"]
    figures["rivulet_file"] = r
    fck = ["--checkpoint-interval-ms", str(args.checkpoint_interval_ms)] if args.checkpoint_interval_ms else []
    f, _ = run_json([args.flink_python, os.path.join(HERE, "flink_query.py"), "--query", query, "--input", events,
                     "--parallelism", str(args.parallelism), *fck])
    figures["flink"] = f
    g, wall = run_json(base)
    g["startup_seconds"] = wall - g["seconds"]
    figures["rivulet_generator"] = g
    return figures


def table(args, results, checks):
    n = args.events
    lines = [
        f"Nexmark, {n:,} events, parallelism {args.parallelism}, "
        + (f"exactly-once checkpoints every {args.checkpoint_interval_ms} ms" if args.checkpoint_interval_ms else "no checkpoints")
        + f"; {datetime.date.today()}, {os.cpu_count()} cores.",
        "",
        "| query | Rivulet file ev/s | Flink file ev/s | Rivulet ev/CPU-s | Flink ev/CPU-s | ratio (CPU) "
        "| Rivulet generator ev/s | generator ev/CPU-s | peak RSS Rivulet / Flink (MiB) | start-up Rivulet / Flink (s) | results compared |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for q, fig in results.items():
        r, f, g = fig["rivulet_file"], fig["flink"], fig["rivulet_generator"]
        r_cpu, f_cpu, g_cpu = n / r["cpu_seconds"], n / f["cpu_seconds"], n / g["cpu_seconds"]
        lines.append(
            f"| {q} | {n / r['seconds']:,.0f} | {n / f['seconds']:,.0f} | {r_cpu:,.0f} | {f_cpu:,.0f} | {r_cpu / f_cpu:.1f}x "
            f"| {n / g['seconds']:,.0f} | {g_cpu:,.0f} | {r['peak_rss_bytes'] >> 20} / {f['peak_rss_bytes'] >> 20} "
            f"| {r['startup_seconds']:.2f} / {f['startup_seconds']:.2f} | {checks.get(q, 'not checked')} |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rivulet", required=True)
    ap.add_argument("--flink-python", required=True)
    ap.add_argument("--events", type=int, default=1_000_000)
    # Flink's results come back to Python row by row (slow): the check uses a short stream.
    ap.add_argument("--check-events", type=int, default=50_000)
    ap.add_argument("--queries", default=",".join(QUERIES))
    ap.add_argument("--parallelism", type=int, default=1)
    ap.add_argument("--checkpoint-interval-ms", type=int, default=1000)
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/rivulet/nexmark"))
    ap.add_argument("--results", default=os.path.join(ROOT, "target", "bench-nexmark.md"))
    args = ap.parse_args()
    args.rivulet = os.path.abspath(args.rivulet)
    os.makedirs(args.cache, exist_ok=True)
    queries = [q for q in args.queries.split(",") if q]
    checks = {}
    if args.check_events:
        small = events_file(args.rivulet, args.check_events, args.cache)
        for q in queries:
            checks[q] = check(args, q, small)
            log(f"{q}: Rivulet and Flink results {checks[q]}")
    events = events_file(args.rivulet, args.events, args.cache)
    results = {}
    for q in queries:
        log(f"{q}: measuring ({args.events} events)")
        results[q] = measure(args, q, events)
        log(f"{q}: {json.dumps(results[q])}")
    text = table(args, results, checks)
    os.makedirs(os.path.dirname(args.results), exist_ok=True)
    with open(args.results, "w") as f:
        f.write(text)
    with open(args.results + ".json", "w") as f:
        json.dump({"results": results, "checks": checks}, f, indent=1)
    print(text)


if __name__ == "__main__":
    main()
