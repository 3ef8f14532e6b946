//! The pattern API, after FlinkCEP's: stages named and chained by how strictly they
//! follow each other, each with a condition, a quantifier and optional guards.

use std::fmt;
use std::rc::Rc;

/// A condition on one event.
pub(crate) type Condition<E> = Rc<dyn Fn(&E) -> bool>;

/// How an event relates to the one matched before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contiguity {
    /// Directly after it: any event in between breaks the partial match (`next`,
    /// `consecutive`).
    Strict,
    /// After it, skipping events that do not match (`followed_by`; the default between
    /// the events of a looping stage).
    Relaxed,
    /// After it, skipping any events, even matching ones: every combination is tried
    /// (`followed_by_any`, `allow_combinations`).
    NonDeterministic,
}

/// Which partial matches are dropped after a match is emitted (FlinkCEP's
/// `AfterMatchSkipStrategy`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AfterMatchSkip {
    /// Keep every partial match: overlapping matches are all emitted.
    #[default]
    NoSkip,
    /// Drop partial matches that started with the same event as the match.
    SkipToNext,
    /// Drop every partial match that started before or at the match's last event:
    /// matching restarts after it.
    SkipPastLastEvent,
    /// Drop partial matches that started before the first event of the named stage in
    /// the match.
    SkipToFirst(String),
    /// Drop partial matches that started before the last event of the named stage.
    SkipToLast(String),
}

/// What must not happen before a stage's first event.
#[derive(Clone)]
pub(crate) enum Guard<E> {
    /// The event directly after the previous stage must not match (`not_next`).
    NotNext(Condition<E>),
    /// No event before this stage's first one may match (`not_followed_by`).
    NotFollowedBy(Condition<E>),
}

/// One positive stage of a compiled pattern.
#[derive(Clone)]
pub(crate) struct Stage<E> {
    pub(crate) name: String,
    /// Alternatives: an event matches when any does (`where_` adds to the last one with
    /// AND, `or` starts a new one).
    pub(crate) conditions: Vec<Vec<Condition<E>>>,
    pub(crate) min: u32,
    pub(crate) max: Option<u32>,
    /// How its first event relates to the previous stage's last.
    pub(crate) entry: Contiguity,
    /// How its events relate to each other (looping stages).
    pub(crate) inner: Contiguity,
    /// An event that ends the loop (`until`).
    pub(crate) until: Option<Condition<E>>,
    /// Guards before its first event.
    pub(crate) guards: Vec<Guard<E>>,
}

impl<E> Stage<E> {
    pub(crate) fn matches(&self, e: &E) -> bool {
        self.conditions.is_empty() || self.conditions.iter().any(|all| all.iter().all(|c| c(e)))
    }
}

/// A stage as written, before negative stages become guards.
struct Written<E> {
    name: String,
    negative: Option<bool>, // Some(true): not_next, Some(false): not_followed_by
    entry: Contiguity,
    conditions: Vec<Vec<Condition<E>>>,
    min: u32,
    max: Option<u32>,
    inner: Contiguity,
    until: Option<Condition<E>>,
}

/// A sequence of stages to find in each key's events, in event-time order.
///
/// ```ignore
/// let login_attack = Pattern::<Login>::begin("fails")
///     .where_(|e| e.kind == "fail").times(3).consecutive()
///     .next("success").where_(|e| e.kind == "success")
///     .within(60_000)
///     .skip(AfterMatchSkip::SkipPastLastEvent);
/// ```
pub struct Pattern<E> {
    written: Vec<Written<E>>,
    within: Option<i64>,
    skip: AfterMatchSkip,
}

/// A pattern that cannot be matched as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError(pub String);

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid pattern: {}", self.0)
    }
}

impl<E: 'static> Pattern<E> {
    /// Start a pattern with the stage `name` (any event may begin a match).
    pub fn begin(name: &str) -> Self {
        let mut p = Pattern { written: Vec::new(), within: None, skip: AfterMatchSkip::NoSkip };
        p.push(name, None, Contiguity::Relaxed);
        p
    }

    fn push(&mut self, name: &str, negative: Option<bool>, entry: Contiguity) {
        self.written.push(Written {
            name: name.to_owned(),
            negative,
            entry,
            conditions: Vec::new(),
            min: 1,
            max: Some(1),
            inner: Contiguity::Relaxed,
            until: None,
        });
    }

    fn last(&mut self) -> &mut Written<E> {
        let n = self.written.len() - 1;
        &mut self.written[n]
    }

    /// A stage directly after the previous one (strict contiguity).
    pub fn next(mut self, name: &str) -> Self {
        self.push(name, None, Contiguity::Strict);
        self
    }

    /// A stage after the previous one, skipping events that do not match it.
    pub fn followed_by(mut self, name: &str) -> Self {
        self.push(name, None, Contiguity::Relaxed);
        self
    }

    /// A stage after the previous one, skipping any events: every later matching event
    /// starts its own continuation.
    pub fn followed_by_any(mut self, name: &str) -> Self {
        self.push(name, None, Contiguity::NonDeterministic);
        self
    }

    /// The event directly after the previous stage must not match this stage.
    pub fn not_next(mut self, name: &str) -> Self {
        self.push(name, Some(true), Contiguity::Strict);
        self
    }

    /// No event between the previous stage and the next one may match this stage.
    pub fn not_followed_by(mut self, name: &str) -> Self {
        self.push(name, Some(false), Contiguity::Relaxed);
        self
    }

    /// The current stage's events must satisfy `condition` (with the stage's other
    /// `where_` conditions, AND).
    pub fn where_(mut self, condition: impl Fn(&E) -> bool + 'static) -> Self {
        let last = self.last();
        if last.conditions.is_empty() {
            last.conditions.push(Vec::new());
        }
        let n = last.conditions.len() - 1;
        last.conditions[n].push(Rc::new(condition));
        self
    }

    /// …or `condition` instead (OR with what the stage had).
    pub fn or(mut self, condition: impl Fn(&E) -> bool + 'static) -> Self {
        self.last().conditions.push(vec![Rc::new(condition)]);
        self
    }

    /// The current stage matches exactly `n` events.
    pub fn times(mut self, n: u32) -> Self {
        let last = self.last();
        (last.min, last.max) = (n, Some(n));
        self
    }

    /// The current stage matches `min` to `max` events.
    pub fn times_range(mut self, min: u32, max: u32) -> Self {
        let last = self.last();
        (last.min, last.max) = (min, Some(max));
        self
    }

    /// The current stage matches one or more events.
    pub fn one_or_more(mut self) -> Self {
        let last = self.last();
        (last.min, last.max) = (last.min.max(1), None);
        self
    }

    /// The current stage may match no event at all.
    pub fn optional(mut self) -> Self {
        self.last().min = 0;
        self
    }

    /// The events of the current (looping) stage must follow each other directly.
    pub fn consecutive(mut self) -> Self {
        self.last().inner = Contiguity::Strict;
        self
    }

    /// The events of the current (looping) stage may skip matching events too.
    pub fn allow_combinations(mut self) -> Self {
        self.last().inner = Contiguity::NonDeterministic;
        self
    }

    /// The current (looping) stage stops at an event that satisfies `condition` (that
    /// event is not taken into the loop).
    pub fn until(mut self, condition: impl Fn(&E) -> bool + 'static) -> Self {
        self.last().until = Some(Rc::new(condition));
        self
    }

    /// A match must complete within `ms` of event time from its first event; partial
    /// matches older than that time out.
    pub fn within(mut self, ms: i64) -> Self {
        self.within = Some(ms);
        self
    }

    /// What happens to other partial matches after a match.
    pub fn skip(mut self, strategy: AfterMatchSkip) -> Self {
        self.skip = strategy;
        self
    }

    /// The positive stages with their guards, checked.
    pub(crate) fn compile(self) -> Result<Compiled<E>, PatternError> {
        let mut stages: Vec<Stage<E>> = Vec::new();
        let mut guards: Vec<Guard<E>> = Vec::new();
        let n = self.written.len();
        for (i, w) in self.written.into_iter().enumerate() {
            if w.max.is_some_and(|m| m < w.min.max(1)) {
                return Err(PatternError(format!("stage '{}': times_range with max below min", w.name)));
            }
            if let Some(not_next) = w.negative {
                if i + 1 == n {
                    return Err(PatternError(format!("stage '{}': a pattern cannot end with a negative stage", w.name)));
                }
                let cond: Condition<E> = {
                    let alts = w.conditions;
                    Rc::new(move |e: &E| alts.is_empty() || alts.iter().any(|all| all.iter().all(|c| c(e))))
                };
                guards.push(if not_next { Guard::NotNext(cond) } else { Guard::NotFollowedBy(cond) });
                continue;
            }
            if stages.iter().any(|s| s.name == w.name) {
                return Err(PatternError(format!("stage '{}' is named twice", w.name)));
            }
            stages.push(Stage {
                name: w.name,
                conditions: w.conditions,
                min: w.min,
                max: w.max,
                entry: w.entry,
                inner: w.inner,
                until: w.until,
                guards: std::mem::take(&mut guards),
            });
        }
        if stages.iter().all(|s| s.min == 0) {
            return Err(PatternError("every stage is optional: a match would need no event".into()));
        }
        if let AfterMatchSkip::SkipToFirst(name) | AfterMatchSkip::SkipToLast(name) = &self.skip
            && !stages.iter().any(|s| s.name == *name)
        {
            return Err(PatternError(format!("the skip strategy names stage '{name}', which the pattern does not have")));
        }
        Ok(Compiled { stages, within: self.within, skip: self.skip })
    }
}

/// A checked pattern.
pub(crate) struct Compiled<E> {
    pub(crate) stages: Vec<Stage<E>>,
    pub(crate) within: Option<i64>,
    pub(crate) skip: AfterMatchSkip,
}
