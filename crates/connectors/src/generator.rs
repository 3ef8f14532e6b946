//! The generator source: sequence or seeded-random records, bounded or not,
//! rate-limited. Its position in checkpoints is the next id it would produce.

use std::time::{Duration, Instant};

use rivulet_checkpoint::SourcePosition;
use rivulet_dataflow::NodeRole;
use rivulet_job::{GeneratorKind, GeneratorSpec};
use serde::{Deserialize, Serialize};

use crate::BoxFuture;
use crate::error::ConnectorError;
use crate::source::{SourceConnector, SourceContext, SourceTask, own_position};

/// Where a generator subtask was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum GeneratorPosition {
    Generator { next_id: u64, produced: u64, max_ts: i64 },
}

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
            id: s.id.clone(),
            kind: s.kind,
            count: s.count,
            rate: s.rate,
            keys: s.keys.unwrap_or(100),
            interval_ms: s.interval_ms.unwrap_or(1),
            seed: s.seed.unwrap_or(0),
            subtask,
            parallelism,
            idle_timeout: s.event_time.as_ref().and_then(|et| et.idle_timeout_ms).map(Duration::from_millis),
            start: own_position(restored),
        }))
    }
}

/// One generator subtask: produces ids `subtask, subtask + parallelism, …` below `count`.
struct Generator {
    id: String,
    kind: GeneratorKind,
    /// Total records over all subtasks (`None`: unbounded).
    count: Option<u64>,
    /// Records per second over all subtasks.
    rate: Option<f64>,
    keys: u64,
    /// Event-time step per id.
    interval_ms: i64,
    seed: u64,
    subtask: u32,
    parallelism: u32,
    /// Idle after this long without output (rate-limited sources).
    idle_timeout: Option<Duration>,
    /// Where to resume (from a checkpoint).
    start: Option<SourcePosition>,
}

impl SourceTask for Generator {
    fn run(self: Box<Self>, ctx: SourceContext) -> BoxFuture<'static, Result<(), ConnectorError>> {
        Box::pin(self.generate(ctx))
    }
}

/// SplitMix64: a tiny, well-mixed, seedable generator (deterministic across platforms).
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Generator {
    /// Produce every record of this subtask into `out`.
    async fn generate(self: Box<Self>, mut out: SourceContext) -> Result<(), ConnectorError> {
        let per_subtask_rate = self.rate.map(|r| r / f64::from(self.parallelism.max(1)));
        let mut produced: u64 = 0;
        let mut id = u64::from(self.subtask);
        match &self.start {
            Some(p) if p.is_finished() => return out.finish_restored().await,
            Some(p) => {
                let GeneratorPosition::Generator { next_id, produced: p, max_ts } =
                    p.decode().map_err(|e| ConnectorError::failed(NodeRole::Source, &self.id, e.to_string()))?;
                id = next_id;
                produced = p;
                out.restore_max_ts(max_ts);
            }
            None => {}
        }
        // The rate applies from (re)start: as if the restored records were produced on time.
        let started = Instant::now() - per_subtask_rate.map_or(Duration::ZERO, |r| Duration::from_secs_f64(produced as f64 / r));
        let step = u64::from(self.parallelism.max(1));
        let mut value = Vec::with_capacity(96);
        loop {
            if let Some(c) = self.count
                && id >= c
            {
                break;
            }
            if let Some(rate) = per_subtask_rate {
                let due = started + Duration::from_secs_f64(produced as f64 / rate);
                let now = Instant::now();
                if due > now {
                    out.flush().await?;
                    if let Some(idle) = self.idle_timeout
                        && due - now > idle
                    {
                        out.idle().await?;
                    }
                    tokio::select! {
                        () = tokio::time::sleep_until(due.into()) => {}
                        b = out.next_barrier() => {
                            let max_ts = out.max_ts();
                            out.barrier(b, SourcePosition::encode(&GeneratorPosition::Generator { next_id: id, produced, max_ts })).await?;
                            if b.stop {
                                return Ok(());
                            }
                            continue;
                        }
                    }
                }
            }
            let (key, v) = match self.kind {
                GeneratorKind::Sequence => (id % self.keys.max(1), id),
                GeneratorKind::Random => {
                    let r = splitmix(self.seed ^ splitmix(id));
                    (r % self.keys.max(1), splitmix(r) % 1_000_000)
                }
            };
            let ts = (id as i64).saturating_mul(self.interval_ms);
            value.clear();
            use std::io::Write;
            let _ = write!(value, r#"{{"id":{id},"key":"k{key}","value":{v},"timestamp":{ts}}}"#);
            out.push(None, &value, ts).await?;
            produced += 1;
            id += step;
            if let Some(b) = out.poll_barrier() {
                let max_ts = out.max_ts();
                out.barrier(b, SourcePosition::encode(&GeneratorPosition::Generator { next_id: id, produced, max_ts })).await?;
                if b.stop {
                    return Ok(());
                }
            }
        }
        out.finish().await
    }
}
