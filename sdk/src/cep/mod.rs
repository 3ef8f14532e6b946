//! Complex event processing: find patterns in each key's events, in event-time order,
//! with the pattern API of FlinkCEP — stages chained by `next` (strict),
//! `followed_by` (relaxed) and `followed_by_any`, negative stages (`not_next`,
//! `not_followed_by`), quantifiers (`times`, `times_range`, `one_or_more`, `optional`,
//! `consecutive`, `allow_combinations`, `until`), conditions (`where_`, `or`), a time
//! limit (`within`) and after-match skip strategies.
//!
//! [`Cep`] keeps everything in keyed state — events waiting for the watermark, partial
//! matches — so they are checkpointed, rescaled and carried through a hot swap with the
//! job; `within` and event-time order use event-time timers. Conditions see one event
//! (FlinkCEP's iterative conditions, which look at the events matched so far, are not
//! offered); a pattern cannot end with a negative stage. (Built only for guests.)

mod nfa;
mod pattern;

pub use nfa::Match;
pub use pattern::{AfterMatchSkip, Contiguity, Pattern, PatternError};

mod keyed;
pub use keyed::{Cep, CepOutput};
