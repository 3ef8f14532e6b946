//! The generator source: sequence or seeded-random records, bounded or not,
//! rate-limited. Its position in checkpoints is the next id it would produce.

use std::time::Duration;

use rivulet_checkpoint::SourcePosition;
use rivulet_job::{GeneratorKind, GeneratorSpec};

use crate::BoxFuture;
use crate::error::ConnectorError;
use crate::sequence::{Sequence, SequenceRecords};
use crate::source::{SourceConnector, SourceContext, SourceTask, own_position};

/// `type: generator` sources.
pub(crate) struct GeneratorConnector {
    spec: GeneratorSpec,
}

impl GeneratorConnector {
    pub(crate) fn new(spec: &GeneratorSpec) -> Self {
        GeneratorConnector { spec: spec.clone() }
    }
}

impl SourceConnector for GeneratorConnector {
    fn open(&self, subtask: u32, parallelism: u32, restored: Option<Vec<SourcePosition>>) -> Result<Box<dyn SourceTask>, ConnectorError> {
        let s = &self.spec;
        Ok(Box::new(Generator {
            sequence: Sequence {
                id: s.id.clone(),
                count: s.count,
                rate: s.rate,
                subtask,
                parallelism,
                idle_timeout: s.event_time.as_ref().and_then(|et| et.idle_timeout_ms).map(Duration::from_millis),
                start: own_position(restored),
            },
            records: GeneratorRecords { kind: s.kind, keys: s.keys.unwrap_or(100), interval_ms: s.interval_ms.unwrap_or(1), seed: s.seed.unwrap_or(0) },
        }))
    }
}

/// One generator subtask: ids `subtask, subtask + parallelism, …` below `count`.
struct Generator {
    sequence: Sequence,
    records: GeneratorRecords,
}

/// What a generator makes of id `n`.
struct GeneratorRecords {
    kind: GeneratorKind,
    keys: u64,
    /// Event-time step per id.
    interval_ms: i64,
    seed: u64,
}

impl SourceTask for Generator {
    fn run(self: Box<Self>, ctx: SourceContext) -> BoxFuture<'static, Result<(), ConnectorError>> {
        let Generator { sequence, records } = *self;
        Box::pin(sequence.run(ctx, records))
    }
}

/// SplitMix64: a tiny, well-mixed, seedable generator (deterministic across platforms).
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl SequenceRecords for GeneratorRecords {
    fn record(&mut self, id: u64, value: &mut Vec<u8>) -> Option<i64> {
        let (key, v) = match self.kind {
            GeneratorKind::Sequence => (id % self.keys.max(1), id),
            GeneratorKind::Random => {
                let r = splitmix(self.seed ^ splitmix(id));
                (r % self.keys.max(1), splitmix(r) % 1_000_000)
            }
        };
        let ts = (id as i64).saturating_mul(self.interval_ms);
        use std::io::Write;
        let _ = write!(value, r#"{{"id":{id},"key":"k{key}","value":{v},"timestamp":{ts}}}"#);
        Some(ts)
    }
}
