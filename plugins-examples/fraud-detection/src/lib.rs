//! Flink's fraud-detection walkthrough in event time: alert when an account's
//! transaction under 1.00 is immediately followed by one over 500.00 at most 60 s
//! later. Uses keyed value state (the flag) and an event-time timer that clears it.
//!
//! Build: `cargo build --release` in `plugins-examples/`; run: see `job.yaml`.

use rivulet_sdk::{Config, Context, Operator, Record, Result, TimeDomain, ValueState, export_operator};
use std::borrow::Cow;

use serde::{Deserialize, Serialize};

const SMALL: f64 = 1.00;
const LARGE: f64 = 500.00;
const WINDOW_MS: i64 = 60_000;

struct FraudDetector {
    small_ts: ValueState<i64>,
    timer: ValueState<i64>,
}

#[derive(Deserialize)]
struct Transaction<'a> {
    /// Borrowed from the record unless the JSON string has escapes.
    #[serde(borrow)]
    account_id: Cow<'a, str>,
    amount: f64,
    /// Event time in ms; the job's `event_time.field`, so equal to the record's timestamp.
    timestamp: Option<i64>,
}

#[derive(Serialize)]
struct Alert<'a> {
    account_id: &'a str,
    small_timestamp: i64,
    large_timestamp: i64,
}

impl FraudDetector {
    fn clear(&self, ctx: &mut Context) {
        if let Some(t) = self.timer.get() {
            ctx.delete_event_time_timer(t);
        }
        self.timer.clear();
        self.small_ts.clear();
    }
}

impl Operator for FraudDetector {
    fn open(_ctx: &mut Context, _config: &Config) -> Result<Self> {
        Ok(FraudDetector { small_ts: ValueState::new("small_ts"), timer: ValueState::new("timer") })
    }

    fn process(&mut self, ctx: &mut Context, record: Record<'_>) -> Result<()> {
        let tx: Transaction<'_> = record.json()?;
        let ts = tx.timestamp.unwrap_or(record.timestamp);
        if let Some(small) = self.small_ts.get() {
            let gap = ts - small;
            if tx.amount > LARGE && (0..=WINDOW_MS).contains(&gap) {
                ctx.emit_json(&Alert { account_id: &tx.account_id, small_timestamp: small, large_timestamp: ts }, ts)?;
            }
            // Any next transaction clears the flag.
            self.clear(ctx);
        }
        if tx.amount < SMALL {
            self.small_ts.set(&ts);
            let t = ts + WINDOW_MS;
            ctx.register_event_time_timer(t);
            self.timer.set(&t);
        }
        Ok(())
    }

    fn on_timer(&mut self, _ctx: &mut Context, _timestamp: i64, _domain: TimeDomain) -> Result<()> {
        self.timer.clear();
        self.small_ts.clear();
        Ok(())
    }
}

export_operator!(FraudDetector);
