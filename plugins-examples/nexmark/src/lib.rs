//! The Nexmark benchmark's queries q0, q1, q2, q3, q4, q5, q7, q8, q9 and q11 as one
//! operator component: the job spec's `config: {stage: …}` says which query (or which
//! stage of a two-stage query) an operator runs. `README.md` states each query's
//! semantics; `jobs/` has a job spec per query.
//!
//! Build: `cargo build --release` in `plugins-examples/` (or `make plugins`).

mod events;
mod joins;
mod stateless;
mod windows;

use rivulet_sdk::{CoGroup, Config, Context, Error, Operator, Record, Result, TimeDomain, Window, export_operator};

/// The stages, by their `config.stage` names.
enum Stage {
    /// Events of some kinds only, passed through unchanged (a job reading the events
    /// from a file rather than the generator splits them with these).
    Filter([bool; 3]),
    Q0,
    Q1,
    Q2,
    Q3(joins::Q3),
    /// q4's first stage (`q4-winning`) and q9.
    WinningBids(joins::WinningBids),
    Q4Average(joins::CategoryAverage),
    Q5Count(windows::Q5Count),
    Q5Hot(windows::Q5Hot),
    Q7Max(windows::Q7Max),
    Q7Highest(windows::Q7Highest),
    Q8,
    Q11(windows::Q11),
}

const STAGES: &str = "filter, q0, q1, q2, q3, q4-winning, q4-average, q5-count, q5-hot, q7-max, q7-highest, q8, q9, q11";

struct Nexmark {
    stage: Stage,
}

impl Operator for Nexmark {
    fn open(_ctx: &mut Context, config: &Config) -> Result<Self> {
        let name: String = config.get("stage")?.ok_or_else(|| Error::msg(format!("config.stage is missing: one of {STAGES}")))?;
        let stage = match name.as_str() {
            "filter" => {
                let kinds: Vec<String> = config.get("events")?.ok_or_else(|| Error::msg("config.events is missing: a list of person, auction, bid"))?;
                let mut keep = [false; 3];
                for k in &kinds {
                    let i = ["person", "auction", "bid"].iter().position(|n| n == k).ok_or_else(|| Error::msg(format!("config.events: '{k}' is not person, auction or bid")))?;
                    keep[i] = true;
                }
                Stage::Filter(keep)
            }
            "q0" => Stage::Q0,
            "q1" => Stage::Q1,
            "q2" => Stage::Q2,
            "q3" => Stage::Q3(joins::Q3::new()),
            "q4-winning" => Stage::WinningBids(joins::WinningBids::new(false)),
            "q4-average" => Stage::Q4Average(joins::CategoryAverage::new()),
            "q5-count" => Stage::Q5Count(windows::Q5Count::new()),
            "q5-hot" => Stage::Q5Hot(windows::Q5Hot::new()),
            "q7-max" => Stage::Q7Max(windows::Q7Max::new()),
            "q7-highest" => Stage::Q7Highest(windows::Q7Highest::new()),
            "q8" => Stage::Q8,
            "q9" => Stage::WinningBids(joins::WinningBids::new(true)),
            "q11" => Stage::Q11(windows::Q11::new()),
            other => return Err(Error::msg(format!("config.stage '{other}' is not one of {STAGES}"))),
        };
        Ok(Nexmark { stage })
    }

    fn process(&mut self, ctx: &mut Context, record: Record<'_>) -> Result<()> {
        match &mut self.stage {
            Stage::Filter(keep) => {
                if keep[events::event_type(&record)? as usize] {
                    ctx.emit(record.key, record.value, record.timestamp);
                }
                Ok(())
            }
            Stage::Q0 => stateless::q0(ctx, &record),
            Stage::Q1 => stateless::q1(ctx, &record),
            Stage::Q2 => stateless::q2(ctx, &record),
            Stage::Q3(q) => q.process(ctx, &record),
            Stage::WinningBids(w) => w.process(ctx, &record),
            Stage::Q4Average(a) => a.process(ctx, &record),
            Stage::Q5Count(q) => q.process(ctx, &record),
            Stage::Q5Hot(q) => q.process(ctx, &record),
            Stage::Q7Max(q) => q.process(ctx, &record),
            Stage::Q7Highest(q) => q.process(ctx, &record),
            Stage::Q11(q) => q.process(ctx, &record),
            Stage::Q8 => Err(Error::msg("q8 runs on windows: give its operator a `window` in the job spec")),
        }
    }

    fn co_group(&mut self, ctx: &mut Context, window: Window, inputs: CoGroup<'_>) -> Result<()> {
        match &self.stage {
            Stage::Q8 => joins::q8(ctx, window, &inputs),
            _ => Err(Error::msg("only q8 runs on windows: remove the operator's `window`")),
        }
    }

    fn on_timer(&mut self, ctx: &mut Context, timestamp: i64, _domain: TimeDomain) -> Result<()> {
        match &mut self.stage {
            Stage::WinningBids(w) => w.on_timer(ctx, timestamp),
            Stage::Q5Count(q) => q.on_timer(ctx, timestamp),
            Stage::Q5Hot(q) => q.on_timer(ctx, timestamp),
            Stage::Q7Max(q) => q.on_timer(ctx, timestamp),
            Stage::Q7Highest(q) => q.on_timer(ctx, timestamp),
            Stage::Q11(q) => q.on_timer(ctx, timestamp),
            _ => Ok(()),
        }
    }
}

export_operator!(Nexmark);
