//! Tumbling event-time windows per sensor: the host assigns records to 10 s windows,
//! fires them by watermark and sends late records to a side output; this operator
//! aggregates each window into count, average, min and max.
//!
//! Build: `cargo build --release` in `plugins-examples/`; run: see `job.yaml`.

use rivulet_sdk::{Config, Context, Error, Operator, Record, Result, Window, export_operator};
use std::borrow::Cow;

use serde::{Deserialize, Serialize};

struct SensorWindows;

#[derive(Deserialize)]
struct Reading<'a> {
    /// Borrowed from the record unless the JSON string has escapes.
    #[serde(borrow)]
    sensor: Cow<'a, str>,
    value: f64,
}

#[derive(Serialize)]
struct Summary<'a> {
    sensor: &'a str,
    window_start: i64,
    window_end: i64,
    count: u64,
    avg: f64,
    min: f64,
    max: f64,
}

impl Operator for SensorWindows {
    fn open(_ctx: &mut Context, _config: &Config) -> Result<Self> {
        Ok(SensorWindows)
    }

    fn process(&mut self, _ctx: &mut Context, _record: Record<'_>) -> Result<()> {
        Err(Error::msg("sensor-windows must be given a `window` in the job spec"))
    }

    fn process_window(&mut self, ctx: &mut Context, window: Window, records: Vec<Record<'_>>) -> Result<()> {
        let Some(first) = records.first() else { return Ok(()) };
        let sensor = first.json::<Reading<'_>>()?.sensor;
        let (mut count, mut sum, mut min, mut max) = (0u64, 0.0f64, f64::INFINITY, f64::NEG_INFINITY);
        for r in &records {
            let v = r.json::<Reading<'_>>()?.value;
            count += 1;
            sum += v;
            min = min.min(v);
            max = max.max(v);
        }
        let summary = Summary { sensor: &sensor, window_start: window.start, window_end: window.end, count, avg: sum / count as f64, min, max };
        ctx.emit_json(&summary, window.end - 1)
    }
}

export_operator!(SensorWindows);
