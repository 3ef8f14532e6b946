//! Matching a compiled pattern, one event at a time, over a set of partial matches (an
//! NFA simulation in the spirit of FlinkCEP's): pure, no host calls, so its semantics
//! are unit-tested natively. Events must come in event-time order.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::pattern::{AfterMatchSkip, Compiled, Contiguity, Guard};

/// One event taken into a partial match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "E: Serialize + DeserializeOwned")]
pub(crate) struct Taken<E> {
    pub(crate) stage: u16,
    pub(crate) seq: u64,
    pub(crate) ts: i64,
    pub(crate) event: E,
}

/// A partial match: the events taken so far, the stage that took the last one, and
/// which continuations are still possible.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "E: Serialize + DeserializeOwned")]
pub(crate) struct Partial<E> {
    /// The stage that took the last event.
    stage: u16,
    /// How many events that stage has taken.
    taken: u32,
    /// The stage may still take more events.
    loop_open: bool,
    /// The following stages may still start.
    next_open: bool,
    /// Events seen since the last one taken.
    skipped: u32,
    events: Vec<Taken<E>>,
}

impl<E> Partial<E> {
    fn start(&self) -> i64 {
        self.events.first().map_or(i64::MIN, |t| t.ts)
    }
    /// When it times out under a pattern time of `within` ms.
    pub(crate) fn deadline(&self, within: i64) -> i64 {
        self.start().saturating_add(within)
    }
    fn first_seq(&self) -> u64 {
        self.events.first().map_or(0, |t| t.seq)
    }
}

/// A (complete or timed-out) match: the events of each stage, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Match<E> {
    names: Vec<String>,
    events: Vec<Taken<E>>,
}

impl<E> Match<E> {
    /// The events the stage `name` took, in order (empty if none).
    pub fn get(&self, name: &str) -> Vec<&E> {
        self.taken(name).map(|t| &t.event).collect()
    }
    /// The event times of the stage `name`'s events.
    pub fn timestamps(&self, name: &str) -> Vec<i64> {
        self.taken(name).map(|t| t.ts).collect()
    }
    /// Every event with its stage name and time, in order.
    pub fn events(&self) -> impl Iterator<Item = (&str, i64, &E)> {
        self.events.iter().map(|t| (self.names[usize::from(t.stage)].as_str(), t.ts, &t.event))
    }
    /// The time of the first event.
    pub fn first_timestamp(&self) -> i64 {
        self.events.first().map_or(i64::MIN, |t| t.ts)
    }
    /// The time of the last event.
    pub fn last_timestamp(&self) -> i64 {
        self.events.last().map_or(i64::MIN, |t| t.ts)
    }
    fn taken(&self, name: &str) -> impl Iterator<Item = &Taken<E>> {
        let stage = self.names.iter().position(|n| n == name).map(|i| i as u16);
        self.events.iter().filter(move |t| Some(t.stage) == stage)
    }
    fn seqs(&self, name: &str) -> Vec<u64> {
        self.taken(name).map(|t| t.seq).collect()
    }
}

/// What one step produced.
#[derive(Debug)]
pub(crate) struct Found<E> {
    pub(crate) matches: Vec<Match<E>>,
    pub(crate) timed_out: Vec<Match<E>>,
}

impl<E> Default for Found<E> {
    fn default() -> Self {
        Found { matches: Vec::new(), timed_out: Vec::new() }
    }
}

impl<E: Clone> Compiled<E> {
    fn to_match(&self, events: Vec<Taken<E>>) -> Match<E> {
        Match { names: self.stages.iter().map(|s| s.name.clone()).collect(), events }
    }

    /// Whether a partial whose stage `k` has taken `taken` events is a complete match.
    fn complete(&self, k: usize, taken: u32) -> bool {
        taken >= self.stages[k].min && self.stages[k + 1..].iter().all(|s| s.min == 0)
    }

    /// Whether it can still grow.
    fn can_grow(&self, k: usize, taken: u32) -> bool {
        self.stages[k].max.is_none_or(|m| taken < m) || k + 1 < self.stages.len()
    }

    /// Record a partial that just took an event: a match if complete, kept if it can grow.
    fn settle(&self, p: Partial<E>, next: &mut Vec<Partial<E>>, completed: &mut Vec<Partial<E>>) {
        let (k, taken) = (usize::from(p.stage), p.taken);
        if self.complete(k, taken) {
            completed.push(p.clone());
        }
        if self.can_grow(k, taken) {
            next.push(p);
        }
    }

    /// The stages a partial at stage `k` (satisfied) may start next: `k + 1` and,
    /// past optional stages, the ones after.
    fn next_targets(&self, k: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut j = k + 1;
        while j < self.stages.len() {
            out.push(j);
            if self.stages[j].min > 0 {
                break;
            }
            j += 1;
        }
        out
    }

    fn take(&self, p: &Partial<E>, stage: usize, taken: u32, e: &E, ts: i64, seq: u64) -> Partial<E> {
        let mut events = p.events.clone();
        events.push(Taken { stage: stage as u16, seq, ts, event: e.clone() });
        Partial { stage: stage as u16, taken, loop_open: true, next_open: true, skipped: 0, events }
    }

    fn consume(&self, p: Partial<E>, e: &E, ts: i64, seq: u64, next: &mut Vec<Partial<E>>, completed: &mut Vec<Partial<E>>) {
        let k = usize::from(p.stage);
        let stage = &self.stages[k];
        // More of the same stage.
        let mut loop_open = p.loop_open && stage.max.is_none_or(|m| p.taken < m);
        let mut took_loop = false;
        if loop_open {
            if stage.until.as_ref().is_some_and(|u| u(e)) {
                loop_open = false;
            } else if stage.matches(e) {
                self.settle(self.take(&p, k, p.taken + 1, e, ts, seq), next, completed);
                took_loop = true;
            }
        }
        // The next stages.
        let mut next_open = p.next_open && p.taken >= stage.min && k + 1 < self.stages.len();
        let mut took_next = false;
        if next_open {
            let targets = self.next_targets(k);
            for &j in &targets {
                let violated = targets.iter().take_while(|&&t| t <= j).any(|&t| {
                    self.stages[t].guards.iter().any(|g| match g {
                        Guard::NotNext(c) => p.skipped == 0 && c(e),
                        Guard::NotFollowedBy(c) => c(e),
                    })
                });
                if violated {
                    next_open = false;
                    break;
                }
                if self.stages[j].matches(e) {
                    self.settle(self.take(&p, j, 1, e, ts, seq), next, completed);
                    took_next = true;
                }
            }
        }
        // Ignoring the event: each continuation by its contiguity.
        let survives = |open: bool, contiguity: Contiguity, took: bool| match contiguity {
            _ if !open => false,
            Contiguity::Strict => false,
            Contiguity::Relaxed => !took,
            Contiguity::NonDeterministic => true,
        };
        let loop_survives = survives(loop_open, stage.inner, took_loop);
        let entry = self.stages.get(k + 1).map_or(Contiguity::Strict, |s| s.entry);
        let next_survives = survives(next_open, entry, took_next);
        if loop_survives || next_survives {
            next.push(Partial { loop_open: loop_survives, next_open: next_survives, skipped: p.skipped + 1, ..p });
        }
    }

    /// Feed one event (in event-time order, `seq` increasing): partial matches grow,
    /// die or time out; complete ones are returned, skip strategy applied.
    pub(crate) fn step(&self, partials: &mut Vec<Partial<E>>, e: &E, ts: i64, seq: u64) -> Found<E> {
        let mut found = Found::default();
        let (mut next, mut completed) = (Vec::new(), Vec::new());
        for p in partials.drain(..) {
            if self.within.is_some_and(|w| ts.saturating_sub(p.start()) >= w) {
                found.timed_out.push(self.to_match(p.events));
                continue;
            }
            self.consume(p, e, ts, seq, &mut next, &mut completed);
        }
        // Any event may begin a match (at the first stage, or past optional ones).
        let start = Partial { stage: 0, taken: 0, loop_open: false, next_open: false, skipped: 0, events: Vec::new() };
        let mut j = 0;
        while j < self.stages.len() {
            if self.stages[j].matches(e) {
                self.settle(self.take(&start, j, 1, e, ts, seq), &mut next, &mut completed);
            }
            if self.stages[j].min > 0 {
                break;
            }
            j += 1;
        }
        completed.sort_by_key(|p| (p.first_seq(), p.events.last().map_or(0, |t| t.seq)));
        let mut cut: Option<(u64, bool)> = None; // (first_seq bound, inclusive)
        for p in completed {
            let dropped = |c: Option<(u64, bool)>, s: u64| c.is_some_and(|(b, inclusive)| if inclusive { s <= b } else { s < b });
            if dropped(cut, p.first_seq()) {
                continue;
            }
            let m = self.to_match(p.events);
            let first = m.events.first().map_or(0, |t| t.seq);
            let bound = match &self.skip {
                AfterMatchSkip::NoSkip => None,
                AfterMatchSkip::SkipToNext => Some((first, true)),
                AfterMatchSkip::SkipPastLastEvent => Some((m.events.last().map_or(0, |t| t.seq), true)),
                AfterMatchSkip::SkipToFirst(name) => m.seqs(name).first().map(|s| (*s, false)),
                AfterMatchSkip::SkipToLast(name) => m.seqs(name).last().map(|s| (*s, false)),
            };
            if let Some(b) = bound {
                let same_start_only = self.skip == AfterMatchSkip::SkipToNext;
                next.retain(|q| if same_start_only { q.first_seq() != first } else { !dropped(Some(b), q.first_seq()) });
                cut = if same_start_only { cut } else { Some(b) };
            }
            found.matches.push(m);
        }
        *partials = next;
        found
    }

    /// The watermark reached `watermark`: partial matches that can no longer complete
    /// within the pattern's time time out.
    pub(crate) fn expire(&self, partials: &mut Vec<Partial<E>>, watermark: i64) -> Vec<Match<E>> {
        let Some(w) = self.within else { return Vec::new() };
        let (gone, kept): (Vec<_>, Vec<_>) = partials.drain(..).partition(|p| p.start().saturating_add(w) <= watermark);
        *partials = kept;
        gone.into_iter().map(|p| self.to_match(p.events)).collect()
    }
}

#[cfg(test)]
#[path = "nfa_tests.rs"]
mod tests;
