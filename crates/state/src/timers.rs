//! The timers of one operator subtask, ordered by time per domain.

use std::collections::BTreeSet;

/// Which clock a timer follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimeDomain {
    /// Fires when the watermark passes it.
    EventTime,
    /// Fires when the host's clock passes it.
    ProcessingTime,
}

/// Registered timers of one operator subtask: (time, key) per domain.
#[derive(Debug, Default)]
pub struct TimerService {
    event: BTreeSet<(i64, Vec<u8>)>,
    processing: BTreeSet<(i64, Vec<u8>)>,
}

impl TimerService {
    fn set(&mut self, domain: TimeDomain) -> &mut BTreeSet<(i64, Vec<u8>)> {
        match domain {
            TimeDomain::EventTime => &mut self.event,
            TimeDomain::ProcessingTime => &mut self.processing,
        }
    }

    /// Register a timer (again: no effect).
    pub fn register(&mut self, domain: TimeDomain, timestamp: i64, key: Vec<u8>) {
        self.set(domain).insert((timestamp, key));
    }

    /// Delete a timer (absent: no effect).
    pub fn delete(&mut self, domain: TimeDomain, timestamp: i64, key: Vec<u8>) {
        self.set(domain).remove(&(timestamp, key));
    }

    /// The time of the earliest event-time timer.
    pub fn peek_event(&self) -> Option<i64> {
        self.event.first().map(|(t, _)| *t)
    }

    /// Remove and return the earliest event-time timer at or before `watermark`.
    pub fn pop_event_due(&mut self, watermark: i64) -> Option<(i64, Vec<u8>)> {
        match self.event.first() {
            Some((t, _)) if *t <= watermark => self.event.pop_first(),
            _ => None,
        }
    }

    /// Remove and return the earliest processing-time timer at or before `now`.
    pub fn pop_processing_due(&mut self, now: i64) -> Option<(i64, Vec<u8>)> {
        match self.processing.first() {
            Some((t, _)) if *t <= now => self.processing.pop_first(),
            _ => None,
        }
    }

    /// When the next processing-time timer is due.
    pub fn next_processing(&self) -> Option<i64> {
        self.processing.first().map(|(t, _)| *t)
    }

    /// Every timer: (domain, time, key).
    pub fn iter(&self) -> impl Iterator<Item = (TimeDomain, i64, &[u8])> {
        self.event
            .iter()
            .map(|(t, k)| (TimeDomain::EventTime, *t, k.as_slice()))
            .chain(self.processing.iter().map(|(t, k)| (TimeDomain::ProcessingTime, *t, k.as_slice())))
    }

    /// Number of registered timers (both domains).
    pub fn len(&self) -> usize {
        self.event.len() + self.processing.len()
    }

    /// Whether no timer is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_timers_pop_in_time_order_per_domain() {
        let mut t = TimerService::default();
        t.register(TimeDomain::EventTime, 20, b"b".to_vec());
        t.register(TimeDomain::EventTime, 10, b"a".to_vec());
        t.register(TimeDomain::EventTime, 10, b"a".to_vec());
        t.register(TimeDomain::ProcessingTime, 5, b"p".to_vec());
        assert_eq!(t.len(), 3);
        assert_eq!(t.pop_event_due(15), Some((10, b"a".to_vec())));
        assert_eq!(t.pop_event_due(15), None);
        assert_eq!(t.next_processing(), Some(5));
        t.delete(TimeDomain::ProcessingTime, 5, b"p".to_vec());
        assert_eq!(t.pop_processing_due(i64::MAX), None);
        assert_eq!(t.iter().map(|(d, ts, _)| (d, ts)).collect::<Vec<_>>(), vec![(TimeDomain::EventTime, 20)]);
    }
}
