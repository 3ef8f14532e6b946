//! Counts records per key in value state and emits the count (8 bytes, little-endian)
//! keyed like the input: measures keyed-state access through the Wasm boundary.
//!
//! Build: `cargo build --release` in `plugins-examples/`; used by `cargo bench`.

use rivulet_sdk::{Config, Context, Operator, Record, Result, ValueState, export_operator};

struct KeyedCount {
    count: ValueState<u64>,
}

impl Operator for KeyedCount {
    fn open(_ctx: &mut Context, _config: &Config) -> Result<Self> {
        Ok(KeyedCount { count: ValueState::new("count") })
    }

    fn process(&mut self, ctx: &mut Context, record: Record<'_>) -> Result<()> {
        let n = self.count.get().unwrap_or(0) + 1;
        self.count.set(&n);
        ctx.emit(record.key, &n.to_le_bytes(), record.timestamp);
        Ok(())
    }
}

export_operator!(KeyedCount);
