//! Counter, version 2: counts records per key and emits
//! `{"key": k, "count": n, "version": 2}`. Its state is richer — a value state `stats`
//! holding `{"count", "since_upgrade"}` (state version 2) — and `migrate_state` turns
//! version 1's `count` entries into it, so counts continue where version 1 left them.

use rivulet_sdk::{Config, Context, Operator, Record, Result, StateEntry, ValueState, export_operator};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Serialize, Deserialize, Default)]
struct Stats {
    /// Records of the key, over every version.
    count: u64,
    /// Records of the key counted by this version.
    since_upgrade: u64,
}

struct Counter {
    stats: ValueState<Stats>,
}

impl Operator for Counter {
    const STATE_VERSION: u32 = 2;

    fn open(_: &mut Context, _: &Config) -> Result<Self> {
        Ok(Counter { stats: ValueState::new("stats") })
    }

    fn process(&mut self, ctx: &mut Context, record: Record<'_>) -> Result<()> {
        let mut s = self.stats.get().unwrap_or_default();
        s.count += 1;
        s.since_upgrade += 1;
        self.stats.set(&s);
        let key = record.key_str().unwrap_or_default();
        ctx.emit_json(&json!({"key": key, "count": s.count, "version": 2}), record.timestamp)
    }

    fn migrate_state(from_version: u32, entry: StateEntry) -> Result<Vec<StateEntry>> {
        match (from_version, entry.state.as_str()) {
            (1, "count") => {
                let count: u64 = entry.value_json().ok_or_else(|| rivulet_sdk::Error::msg("count is not a value state"))??;
                Ok(vec![StateEntry::new_value("stats", entry.key, &Stats { count, since_upgrade: 0 })?])
            }
            _ => Ok(vec![entry]),
        }
    }
}

export_operator!(Counter);
