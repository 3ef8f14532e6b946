//! The generator source: sequence or seeded-random records, bounded or not, rate-limited.

use std::time::{Duration, Instant};

use super::SourceOutput;
use crate::checkpoint::manifest::SourcePosition;
use crate::error::JobError;
use crate::job::GeneratorKind;

/// One generator subtask: produces ids `subtask, subtask + parallelism, …` below `count`.
pub struct Generator {
    /// Sequence or random.
    pub kind: GeneratorKind,
    /// Total records over all subtasks (`None`: unbounded).
    pub count: Option<u64>,
    /// Records per second over all subtasks.
    pub rate: Option<f64>,
    /// Distinct keys.
    pub keys: u64,
    /// Event-time step per id.
    pub interval_ms: i64,
    /// Random seed.
    pub seed: u64,
    /// This subtask.
    pub subtask: u32,
    /// All subtasks.
    pub parallelism: u32,
    /// Idle after this long without output (rate-limited sources).
    pub idle_timeout: Option<Duration>,
    /// Where to resume (from a checkpoint).
    pub start: Option<SourcePosition>,
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
    pub async fn run(self, mut out: SourceOutput) -> Result<(), JobError> {
        let per_subtask_rate = self.rate.map(|r| r / f64::from(self.parallelism.max(1)));
        let mut produced: u64 = 0;
        let mut id = u64::from(self.subtask);
        match &self.start {
            Some(SourcePosition::Finished) => return out.finish_restored().await,
            Some(SourcePosition::Generator { next_id, produced: p, max_ts }) => {
                id = *next_id;
                produced = *p;
                out.restore_max_ts(*max_ts);
            }
            Some(other) => {
                return Err(JobError::Internal(format!("cannot resume a generator from {other:?}")));
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
                            if let Some(b) = b {
                                out.barrier(b, SourcePosition::Generator { next_id: id, produced, max_ts: out.max_ts() }).await?;
                                if b.stop {
                                    return Ok(());
                                }
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
                out.barrier(b, SourcePosition::Generator { next_id: id, produced, max_ts: out.max_ts() }).await?;
                if b.stop {
                    return Ok(());
                }
            }
        }
        out.finish().await
    }
}
