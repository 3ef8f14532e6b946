//! Counter, version 1: counts records per key and emits `{"key": k, "count": n}`.
//! Its state is a value state `count` holding the number (state version 1).
//! `counter-v2` upgrades this state when a job swaps to it from a savepoint.

use rivulet_sdk::{Config, Context, Operator, Record, Result, ValueState, export_operator};
use serde_json::json;

struct Counter {
    count: ValueState<u64>,
}

impl Operator for Counter {
    const STATE_VERSION: u32 = 1;

    fn open(_: &mut Context, _: &Config) -> Result<Self> {
        Ok(Counter { count: ValueState::new("count") })
    }

    fn process(&mut self, ctx: &mut Context, record: Record<'_>) -> Result<()> {
        let n = self.count.get().unwrap_or(0) + 1;
        self.count.set(&n);
        let key = record.key_str().unwrap_or_default();
        ctx.emit_json(&json!({"key": key, "count": n}), record.timestamp)
    }
}

export_operator!(Counter);
