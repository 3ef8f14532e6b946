//! The `nexmark` source: the Nexmark benchmark's people, auctions and bids
//! ([`model`]), generated deterministically and in parallel, as JSON lines in the shape
//! Flink's Nexmark reads ([`json`]). Event `n` is a function of the seed and `n`, so
//! subtask `s` of `p` generates `n ≡ s (mod p)` and a checkpoint records the next `n`.

pub mod json;
pub mod model;

use std::time::Duration;

use rivulet_checkpoint::SourcePosition;
use rivulet_job::{NexmarkEvent, NexmarkSpec};

use crate::BoxFuture;
use crate::error::ConnectorError;
use crate::sequence::{Sequence, SequenceRecords};
use crate::source::{SourceConnector, SourceContext, SourceTask, own_position};
use model::{EventKind, NexmarkConfig};

/// `type: nexmark` sources.
pub(crate) struct NexmarkConnector {
    spec: NexmarkSpec,
}

impl NexmarkConnector {
    pub(crate) fn new(spec: &NexmarkSpec) -> Self {
        NexmarkConnector { spec: spec.clone() }
    }
}

/// The generator configuration a spec asks for.
pub fn config_of(spec: &NexmarkSpec) -> NexmarkConfig {
    let d = NexmarkConfig::default();
    NexmarkConfig {
        seed: spec.seed.unwrap_or(d.seed),
        base_time_ms: spec.base_time_ms.unwrap_or(d.base_time_ms),
        event_rate: spec.event_rate.unwrap_or(d.event_rate),
    }
}

impl SourceConnector for NexmarkConnector {
    fn open(&self, subtask: u32, parallelism: u32, restored: Option<Vec<SourcePosition>>) -> Result<Box<dyn SourceTask>, ConnectorError> {
        let s = &self.spec;
        let kinds = s.events.clone().unwrap_or_else(|| vec![NexmarkEvent::Person, NexmarkEvent::Auction, NexmarkEvent::Bid]);
        let wanted = |k: NexmarkEvent| kinds.contains(&k);
        Ok(Box::new(NexmarkTask {
            sequence: Sequence {
                id: s.id.clone(),
                count: s.count,
                rate: s.rate,
                subtask,
                parallelism,
                idle_timeout: s.event_time.as_ref().and_then(|et| et.idle_timeout_ms).map(Duration::from_millis),
                start: own_position(restored),
            },
            events: NexmarkEvents {
                config: config_of(s),
                person: wanted(NexmarkEvent::Person),
                auction: wanted(NexmarkEvent::Auction),
                bid: wanted(NexmarkEvent::Bid),
            },
        }))
    }
}

/// One subtask of a Nexmark source.
struct NexmarkTask {
    sequence: Sequence,
    events: NexmarkEvents,
}

/// Event `n` as JSON, if its kind is wanted.
struct NexmarkEvents {
    config: NexmarkConfig,
    person: bool,
    auction: bool,
    bid: bool,
}

impl SequenceRecords for NexmarkEvents {
    fn record(&mut self, n: u64, value: &mut Vec<u8>) -> Option<i64> {
        let wanted = match EventKind::of(n) {
            EventKind::Person => self.person,
            EventKind::Auction => self.auction,
            EventKind::Bid => self.bid,
        };
        if !wanted {
            return None;
        }
        let event = self.config.event(n);
        json::write_event(&event, value);
        Some(event.date_time())
    }
}

impl SourceTask for NexmarkTask {
    fn run(self: Box<Self>, ctx: SourceContext) -> BoxFuture<'static, Result<(), ConnectorError>> {
        let NexmarkTask { sequence, events } = *self;
        Box::pin(sequence.run(ctx, events))
    }
}
