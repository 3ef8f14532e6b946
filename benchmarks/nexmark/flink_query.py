"""One Nexmark query in Apache Flink SQL (PyFlink, a local mini-cluster in one JVM),
reading the Nexmark events from a JSON-lines file, in the queries' reference SQL.

    python flink_query.py --query q5 --input events.jsonl [--parallelism 1]
        [--checkpoint-interval-ms 1000] [--collect out.json]

Prints one JSON object: seconds the query ran, the JVM's CPU seconds while it ran, its
peak RSS, and the seconds before the query started (JVM and planner start-up). With
--collect, the query's final result rows (changelogs applied) are written to a file
instead of a blackhole sink, for comparing with Rivulet's.
"""

import argparse
import json
import os
import time

STARTED = time.time()

from pyflink.table import EnvironmentSettings, TableEnvironment  # noqa: E402

EVENTS_DDL = """
CREATE TABLE events (
    event_type INT,
    person ROW<id BIGINT, name VARCHAR, emailAddress VARCHAR, creditCard VARCHAR, city VARCHAR,
               state VARCHAR, `dateTime` TIMESTAMP(3), extra VARCHAR>,
    auction ROW<id BIGINT, itemName VARCHAR, description VARCHAR, initialBid BIGINT, reserve BIGINT,
                `dateTime` TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT, category BIGINT, extra VARCHAR>,
    bid ROW<auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR,
            `dateTime` TIMESTAMP(3), extra VARCHAR>,
    `dateTime` AS CASE WHEN event_type = 0 THEN person.`dateTime`
                     WHEN event_type = 1 THEN auction.`dateTime`
                     ELSE bid.`dateTime` END,
    WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND
) WITH ('connector' = 'filesystem', 'path' = '{path}', 'format' = 'json')
"""

VIEWS = [
    """CREATE VIEW person AS SELECT person.id, person.name, person.emailAddress, person.creditCard,
       person.city, person.state, `dateTime`, person.extra FROM events WHERE event_type = 0""",
    """CREATE VIEW auction AS SELECT auction.id, auction.itemName, auction.description, auction.initialBid,
       auction.reserve, `dateTime`, auction.expires, auction.seller, auction.category, auction.extra
       FROM events WHERE event_type = 1""",
    """CREATE VIEW bid AS SELECT bid.auction, bid.bidder, bid.price, bid.channel, bid.url, `dateTime`, bid.extra
       FROM events WHERE event_type = 2""",
]

# Each query: its result columns (for the blackhole sink) and its reference SQL.
QUERIES = {
    "q0": ("auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3), extra VARCHAR",
           "SELECT auction, bidder, price, `dateTime`, extra FROM bid"),
    "q1": ("auction BIGINT, bidder BIGINT, price DECIMAL(23, 3), `dateTime` TIMESTAMP(3), extra VARCHAR",
           "SELECT auction, bidder, 0.908 * price AS price, `dateTime`, extra FROM bid"),
    "q2": ("auction BIGINT, price BIGINT",
           "SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0"),
    "q3": ("name VARCHAR, city VARCHAR, state VARCHAR, id BIGINT",
           """SELECT P.name, P.city, P.state, A.id FROM auction AS A INNER JOIN person AS P ON A.seller = P.id
              WHERE A.category = 10 AND (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA')"""),
    "q4": ("category BIGINT, avg_final BIGINT",
           """SELECT Q.category, AVG(Q.final) FROM (
                SELECT MAX(B.price) AS final, A.category FROM auction A, bid B
                WHERE A.id = B.auction AND B.`dateTime` BETWEEN A.`dateTime` AND A.expires
                GROUP BY A.id, A.category) Q
              GROUP BY Q.category"""),
    "q5": ("auction BIGINT, num BIGINT",
           """SELECT AuctionBids.auction, AuctionBids.num FROM (
                SELECT auction, count(*) AS num, window_start AS starttime, window_end AS endtime
                FROM TABLE(HOP(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
                GROUP BY auction, window_start, window_end) AS AuctionBids
              JOIN (
                SELECT max(CountBids.num) AS maxn, CountBids.starttime, CountBids.endtime FROM (
                  SELECT count(*) AS num, window_start AS starttime, window_end AS endtime
                  FROM TABLE(HOP(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
                  GROUP BY auction, window_start, window_end) AS CountBids
                GROUP BY CountBids.starttime, CountBids.endtime) AS MaxBids
              ON AuctionBids.starttime = MaxBids.starttime AND AuctionBids.endtime = MaxBids.endtime
                 AND AuctionBids.num >= MaxBids.maxn"""),
    "q7": ("auction BIGINT, price BIGINT, bidder BIGINT, `dateTime` TIMESTAMP(3), extra VARCHAR",
           """SELECT B.auction, B.price, B.bidder, B.`dateTime`, B.extra FROM bid B
              JOIN (SELECT MAX(price) AS maxprice, window_end AS `dateTime`
                    FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
                    GROUP BY window_start, window_end) B1
              ON B.price = B1.maxprice
              WHERE B.`dateTime` BETWEEN B1.`dateTime` - INTERVAL '10' SECOND AND B1.`dateTime`"""),
    "q8": ("id BIGINT, name VARCHAR, stime TIMESTAMP(3)",
           """SELECT P.id, P.name, P.starttime FROM (
                SELECT id, name, window_start AS starttime, window_end AS endtime
                FROM TABLE(TUMBLE(TABLE person, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
                GROUP BY id, name, window_start, window_end) P
              JOIN (
                SELECT seller, window_start AS starttime, window_end AS endtime
                FROM TABLE(TUMBLE(TABLE auction, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
                GROUP BY seller, window_start, window_end) A
              ON P.id = A.seller AND P.starttime = A.starttime AND P.endtime = A.endtime"""),
    "q9": ("id BIGINT, itemName VARCHAR, description VARCHAR, initialBid BIGINT, reserve BIGINT, `dateTime` TIMESTAMP(3), "
           "expires TIMESTAMP(3), seller BIGINT, category BIGINT, extra VARCHAR, auction BIGINT, bidder BIGINT, "
           "price BIGINT, bid_dateTime TIMESTAMP(3), bid_extra VARCHAR",
           """SELECT id, itemName, description, initialBid, reserve, `dateTime`, expires, seller, category, extra,
                     auction, bidder, price, bid_dateTime, bid_extra FROM (
                SELECT A.*, B.auction, B.bidder, B.price, B.`dateTime` AS bid_dateTime, B.extra AS bid_extra,
                       ROW_NUMBER() OVER (PARTITION BY A.id ORDER BY B.price DESC, B.`dateTime` ASC) AS rownum
                FROM auction A, bid B
                WHERE A.id = B.auction AND B.`dateTime` BETWEEN A.`dateTime` AND A.expires)
              WHERE rownum <= 1"""),
    "q11": ("bidder BIGINT, bid_count BIGINT, starttime TIMESTAMP(3), endtime TIMESTAMP(3)",
            """SELECT B.bidder, count(*) AS bid_count,
                      SESSION_START(B.`dateTime`, INTERVAL '10' SECOND) AS starttime,
                      SESSION_END(B.`dateTime`, INTERVAL '10' SECOND) AS endtime
               FROM bid B GROUP BY B.bidder, SESSION(B.`dateTime`, INTERVAL '10' SECOND)"""),
}

# Updating queries, keyed by their first column.
UPDATING = {"q4", "q9"}


def jvm_pid():
    """The gateway JVM PyFlink started (a child of this process)."""
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if int(fields[1]) == me and comm == "java":
            return int(entry)
    raise RuntimeError("no JVM child process found")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def peak_rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def plain(v):
    """A result value as JSON can hold it (timestamps as text, decimals as text)."""
    if v is None or isinstance(v, (int, float, str, bool)):
        return v
    if hasattr(v, "strftime"):
        return v.strftime("%Y-%m-%d %H:%M:%S.%f")[:23]
    return str(v)


def collect(t_env, sql, updating):
    """The final rows of `sql`: an append query's rows, or an updating query's changelog
    applied by its key (its first column: q4's category, q9's auction). Flink sends such
    results as upserts (+U without -U) or retractions; both end in one row per key."""
    from pyflink.common import RowKind
    by_key = {}
    out = []
    with t_env.sql_query(sql).execute().collect() as results:
        for r in results:
            values = tuple(plain(v) for v in r)
            if not updating:
                out.append(values)
            elif r.get_row_kind() in (RowKind.INSERT, RowKind.UPDATE_AFTER):
                by_key[values[0]] = values
            elif by_key.get(values[0]) == values:
                del by_key[values[0]]
    return out + list(by_key.values())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--query", required=True, choices=sorted(QUERIES))
    ap.add_argument("--input", required=True)
    ap.add_argument("--parallelism", type=int, default=1)
    ap.add_argument("--checkpoint-interval-ms", type=int, default=0)
    ap.add_argument("--checkpoint-dir", default="/tmp/rivulet-flink-checkpoints")
    ap.add_argument("--collect", help="write the final result rows here as JSON")
    args = ap.parse_args()

    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = t_env.get_config()
    conf.set("parallelism.default", str(args.parallelism))
    conf.set("taskmanager.memory.process.size", "2g")
    if args.checkpoint_interval_ms:
        conf.set("execution.checkpointing.interval", f"{args.checkpoint_interval_ms}ms")
        conf.set("execution.checkpointing.mode", "EXACTLY_ONCE")
        conf.set("execution.checkpointing.dir", "file://" + os.path.abspath(args.checkpoint_dir))
    t_env.execute_sql(EVENTS_DDL.format(path=os.path.abspath(args.input)))
    for v in VIEWS:
        t_env.execute_sql(v)
    columns, sql = QUERIES[args.query]
    pid = jvm_pid()
    if args.collect:
        rows = collect(t_env, sql, args.query in UPDATING)
        with open(args.collect, "w") as f:
            json.dump(rows, f)
        print(json.dumps({"query": args.query, "rows": len(rows)}))
        return
    t_env.execute_sql(f"CREATE TABLE discard ({columns}) WITH ('connector' = 'blackhole')")
    startup = time.time() - STARTED
    cpu0 = cpu_seconds(pid)
    t0 = time.time()
    t_env.execute_sql(f"INSERT INTO discard {sql}").wait()
    seconds = time.time() - t0
    cpu = cpu_seconds(pid) - cpu0
    print(json.dumps({"query": args.query, "seconds": seconds, "cpu_seconds": cpu, "peak_rss_bytes": peak_rss(pid),
                      "startup_seconds": startup}))


if __name__ == "__main__":
    main()
