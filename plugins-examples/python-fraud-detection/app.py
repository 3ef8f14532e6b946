"""Flink's fraud-detection walkthrough in event time, in Python: alert when an account's
transaction under 1.00 is immediately followed by one over 500.00 at most 60 s later.
Same contract as the Rust `fraud-detection` example (input, output, results)."""

import rivulet_sdk as rv

SMALL = 1.00
LARGE = 500.00
WINDOW_MS = 60_000


class FraudDetector(rv.Operator):
    def open(self, ctx, config):
        self.small_ts = rv.ValueState("small_ts")
        self.timer = rv.ValueState("timer")

    def _clear(self, ctx):
        t = self.timer.get()
        if t is not None:
            ctx.delete_event_time_timer(t)
        self.timer.clear()
        self.small_ts.clear()

    def process(self, ctx, record):
        tx = record.json()
        ts = tx.get("timestamp", record.timestamp)
        small = self.small_ts.get()
        if small is not None:
            gap = ts - small
            if tx["amount"] > LARGE and 0 <= gap <= WINDOW_MS:
                ctx.emit_json({"account_id": tx["account_id"], "small_timestamp": small, "large_timestamp": ts}, ts)
            # Any next transaction clears the flag.
            self._clear(ctx)
        if tx["amount"] < SMALL:
            self.small_ts.set(ts)
            t = ts + WINDOW_MS
            ctx.register_event_time_timer(t)
            self.timer.set(t)

    def on_timer(self, ctx, timestamp, domain):
        self.timer.clear()
        self.small_ts.clear()


Operator = rv.export(FraudDetector)
