//! Emits every record unchanged: measures the cost of the Wasm boundary itself.
//!
//! Build: `cargo build --release` in `plugins-examples/`; used by `cargo bench`.

use rivulet_sdk::{Config, Context, Operator, Record, Result, export_operator};

struct Passthrough;

impl Operator for Passthrough {
    fn open(_ctx: &mut Context, _config: &Config) -> Result<Self> {
        Ok(Passthrough)
    }

    fn process(&mut self, ctx: &mut Context, record: Record<'_>) -> Result<()> {
        ctx.emit(record.key, record.value, record.timestamp);
        Ok(())
    }
}

export_operator!(Passthrough);
