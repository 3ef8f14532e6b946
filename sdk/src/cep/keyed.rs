//! A pattern matched over each key's events inside an operator, with everything in
//! keyed state (built only for guests).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::nfa::{Match, Partial};
use super::pattern::{Compiled, Pattern, PatternError};
use crate::{Context, MapState, Result, ValueState};

/// The per-key state of a pattern: partial matches and the event counter.
#[derive(Serialize, Deserialize)]
#[serde(bound = "E: Serialize + DeserializeOwned")]
struct Progress<E> {
    partials: Vec<Partial<E>>,
    seq: u64,
}

/// What a timer brought: complete matches and partial matches that timed out (`within`).
pub struct CepOutput<E> {
    /// Complete matches, in the order they completed.
    pub matches: Vec<Match<E>>,
    /// Partial matches that can no longer complete in time.
    pub timed_out: Vec<Match<E>>,
}

/// A pattern matched over the events of each key, in event-time order.
///
/// [`Cep::process`] buffers an event in keyed state and sets an event-time timer at its
/// time; the operator's `on_timer` calls [`Cep::on_timer`], which runs the events whose
/// time the watermark has reached through the pattern, in time order (events of equal
/// time in arrival order), and returns the matches. Events at or before the watermark
/// on arrival are late: `process` returns `false` and they are not matched.
pub struct Cep<E> {
    pattern: Compiled<E>,
    progress: ValueState<Progress<E>>,
    pending: MapState<i64, Vec<E>>,
}

impl<E: Serialize + DeserializeOwned + Clone + 'static> Cep<E> {
    /// Match `pattern`; `name` names its keyed states (`cep.<name>.*`), so an operator
    /// can run several patterns.
    pub fn new(name: &str, pattern: Pattern<E>) -> std::result::Result<Self, PatternError> {
        Ok(Cep {
            pattern: pattern.compile()?,
            progress: ValueState::new(&format!("cep.{name}.partials")),
            pending: MapState::new(&format!("cep.{name}.pending")),
        })
    }

    /// Take one event of the current key at `timestamp`. Returns `false` (and drops
    /// it) when it is late.
    pub fn process(&self, ctx: &mut Context, event: E, timestamp: i64) -> bool {
        if timestamp <= ctx.current_watermark() {
            return false;
        }
        let mut at = self.pending.get(&timestamp).unwrap_or_default();
        at.push(event);
        self.pending.put(&timestamp, &at);
        ctx.register_event_time_timer(timestamp);
        true
    }

    /// An event-time timer of the current key fired at `timestamp`: match the events
    /// of that time and time out what can no longer complete.
    pub fn on_timer(&self, ctx: &mut Context, timestamp: i64) -> Result<CepOutput<E>> {
        let mut out = CepOutput { matches: Vec::new(), timed_out: Vec::new() };
        let events = self.pending.get(&timestamp);
        let mut progress = self.progress.get().unwrap_or(Progress { partials: Vec::new(), seq: 0 });
        let had = progress.partials.len();
        if let Some(events) = &events {
            self.pending.remove(&timestamp);
            for e in events {
                progress.seq += 1;
                let found = self.pattern.step(&mut progress.partials, e, timestamp, progress.seq);
                out.matches.extend(found.matches);
                out.timed_out.extend(found.timed_out);
            }
        }
        out.timed_out.extend(self.pattern.expire(&mut progress.partials, timestamp));
        if let Some(w) = self.pattern.within {
            // A timer at each new partial match's deadline, so it times out on time.
            for p in &progress.partials {
                ctx.register_event_time_timer(p.deadline(w));
            }
        }
        if progress.partials.is_empty() && self.pending.keys().is_empty() {
            self.progress.clear();
        } else if events.is_some() || had != progress.partials.len() {
            self.progress.set(&progress);
        }
        Ok(out)
    }
}
