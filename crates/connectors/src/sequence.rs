//! Sources that compute record `n` from `n` alone (the generator, Nexmark): subtask `s`
//! of `p` produces `n = s, s + p, …` below a count, paced to a rate or as fast as
//! downstream takes them. Their position in checkpoints is the next `n`.

use std::time::{Duration, Instant};

use rivulet_checkpoint::SourcePosition;
use rivulet_dataflow::NodeRole;
use serde::{Deserialize, Serialize};

use crate::error::ConnectorError;
use crate::source::SourceContext;

/// Where a sequence subtask was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum SequencePosition {
    /// The generator's and Nexmark's position (the tag is the generator's, as it was).
    Generator { next_id: u64, produced: u64, max_ts: i64 },
}

/// What a sequence source makes of each number.
pub(crate) trait SequenceRecords: Send {
    /// Write record `n` into `value` (cleared) and return its event time, or `None` if
    /// this source skips `n`.
    fn record(&mut self, n: u64, value: &mut Vec<u8>) -> Option<i64>;
}

/// One subtask of a sequence source.
pub(crate) struct Sequence {
    /// The source's id (for errors).
    pub id: String,
    /// Numbers in total over all subtasks (`None`: unbounded).
    pub count: Option<u64>,
    /// Numbers per second over all subtasks (`None`: unpaced). Skipped numbers count.
    pub rate: Option<f64>,
    /// This subtask.
    pub subtask: u32,
    /// Of this many.
    pub parallelism: u32,
    /// Idle after this long without output (paced sources).
    pub idle_timeout: Option<Duration>,
    /// Where to resume (from a checkpoint).
    pub start: Option<SourcePosition>,
}

impl Sequence {
    /// Produce every record of this subtask into `out`.
    pub(crate) async fn run(self, mut out: SourceContext, mut records: impl SequenceRecords) -> Result<(), ConnectorError> {
        let per_subtask_rate = self.rate.map(|r| r / f64::from(self.parallelism.max(1)));
        let mut produced: u64 = 0;
        let mut n = u64::from(self.subtask);
        match &self.start {
            Some(p) if p.is_finished() => return out.finish_restored().await,
            Some(p) => {
                let SequencePosition::Generator { next_id, produced: p, max_ts } =
                    p.decode().map_err(|e| ConnectorError::failed(NodeRole::Source, &self.id, e.to_string()))?;
                n = next_id;
                produced = p;
                out.restore_max_ts(max_ts);
            }
            None => {}
        }
        let position = |n: u64, produced: u64, max_ts: i64| SourcePosition::encode(&SequencePosition::Generator { next_id: n, produced, max_ts });
        // The rate applies from (re)start: as if the restored records were produced on time.
        let started = Instant::now() - per_subtask_rate.map_or(Duration::ZERO, |r| Duration::from_secs_f64(produced as f64 / r));
        let step = u64::from(self.parallelism.max(1));
        let mut value = Vec::with_capacity(256);
        loop {
            if self.count.is_some_and(|c| n >= c) {
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
                            out.barrier(b, position(n, produced, out.max_ts())).await?;
                            if b.stop {
                                return Ok(());
                            }
                            continue;
                        }
                    }
                }
            }
            value.clear();
            if let Some(ts) = records.record(n, &mut value) {
                out.push(None, &value, ts).await?;
            }
            produced += 1;
            n += step;
            if let Some(b) = out.poll_barrier() {
                out.barrier(b, position(n, produced, out.max_ts())).await?;
                if b.stop {
                    return Ok(());
                }
            }
        }
        out.finish().await
    }
}
