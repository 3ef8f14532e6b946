//! Click-through rate per ad and minute: a window co-group of two inputs. The host
//! assigns impressions and clicks to tumbling 60 s event-time windows per `ad` and, when
//! a window fires, hands this operator both inputs' records of that ad and window.
//!
//! Build: `cargo build --release` in `plugins-examples/`; run: see `job.yaml`.

use rivulet_sdk::{CoGroup, Config, Context, Operator, Result, Window, export_operator};
use serde::{Deserialize, Serialize};

struct AdAttribution;

#[derive(Deserialize)]
struct Event<'a> {
    ad: &'a str,
}

#[derive(Serialize)]
struct Rate<'a> {
    ad: &'a str,
    window_start: i64,
    window_end: i64,
    impressions: usize,
    clicks: usize,
    ctr: f64,
}

impl Operator for AdAttribution {
    fn open(_ctx: &mut Context, _config: &Config) -> Result<Self> {
        Ok(AdAttribution)
    }

    fn co_group(&mut self, ctx: &mut Context, window: Window, inputs: CoGroup<'_>) -> Result<()> {
        let (impressions, clicks) = (inputs.named("impressions"), inputs.named("clicks"));
        // Only windows in which the ad was shown.
        let Some(first) = impressions.first() else { return Ok(()) };
        let ad = first.json::<Event<'_>>()?.ad;
        let rate = Rate {
            ad,
            window_start: window.start,
            window_end: window.end,
            impressions: impressions.len(),
            clicks: clicks.len(),
            ctr: clicks.len() as f64 / impressions.len() as f64,
        };
        ctx.emit_json(&rate, window.end - 1)
    }
}

export_operator!(AdAttribution);
