//! Restarts: a failed run starts again from the newest snapshot the run completed, as
//! the restart strategy allows (Flink's `fixed-delay`: attempts, delay).

use std::sync::Arc;
use std::time::Duration;

use rivulet_dataflow::now_ms;
use rivulet_job::{JobGraph, RestartSpec};
use rivulet_plugin::PluginEngine;

use crate::control::JobControl;
use crate::error::{FailureRecord, JobError};
use crate::options::{RestoreFrom, RunOptions};
use crate::report::JobReport;
use crate::run::run_job;

/// Run `graph`, restarting from the latest checkpoint after a task failure as `restart`
/// allows (attempts, fixed delay). Every failure is recorded in the report.
pub async fn run_job_with_restarts(
    graph: &JobGraph,
    engine: &Arc<PluginEngine>,
    opts: &RunOptions,
    restart: Option<&RestartSpec>,
) -> Result<JobReport, JobError> {
    let mut opts = opts.clone();
    // The handle also counts the snapshots each attempt completes (restart decisions).
    let control = opts.control.get_or_insert_with(JobControl::new).clone();
    let result = run_with_restarts(graph, engine, &mut opts, restart).await;
    control.close();
    result
}

async fn run_with_restarts(
    graph: &JobGraph,
    engine: &Arc<PluginEngine>,
    opts: &mut RunOptions,
    restart: Option<&RestartSpec>,
) -> Result<JobReport, JobError> {
    let mut failures = Vec::new();
    let max = restart.map_or(0, |r| r.attempts);
    let snapshots_before = opts.control.as_ref().map_or(0, |c| c.live().snapshots.len());
    // What failures say is shown (logs, exceptions): never with a secret of the spec in it.
    let secrets = rivulet_job::secrets::Secrets::of_graph(graph);
    loop {
        match run_job(graph, engine, opts).await {
            Ok(mut report) => {
                report.failures = failures;
                return Ok(report);
            }
            Err(e) => {
                let (operator, plugin) = e.culprit();
                let reason = secrets.scrub(&e.to_string());
                tracing::error!(attempt = opts.attempt, error = %reason, "job failed");
                let record = FailureRecord { attempt: opts.attempt, operator, plugin, reason: reason.clone(), at_ms: now_ms() };
                if let Some(c) = &opts.control {
                    c.update(|l| l.failures.push(record.clone()));
                }
                failures.push(record);
                if !e.is_restartable() || opts.attempt >= max || opts.control.as_ref().is_some_and(|c| c.cancelled()) {
                    return Err(e);
                }
                let completed_now = opts.control.as_ref().map_or(0, |c| c.live().snapshots.len());
                if opts.probation {
                    if completed_now == snapshots_before {
                        return Err(e);
                    }
                    opts.probation = false;
                }
                let delay = Duration::from_millis(restart.map_or(0, |r| r.delay_ms));
                let from_latest = opts.checkpoint.is_some() && completed_now > snapshots_before;
                eprintln!(
                    "[rivulet] attempt {} failed: {reason}; restarting in {} ms from {} ({} of {max} restarts)",
                    opts.attempt,
                    delay.as_millis(),
                    if from_latest || opts.restore == RestoreFrom::Latest { "the latest checkpoint" } else { "where the run started" },
                    opts.attempt + 1
                );
                tokio::time::sleep(delay).await;
                opts.attempt += 1;
                // Restart from the newest snapshot this run completed; when it completed
                // none, from where the run started (a fresh start discards the failed
                // attempt's uncommitted output; a savepoint is restored again). Never from
                // an older snapshot than one whose output was committed.
                if from_latest {
                    opts.restore = RestoreFrom::Latest;
                }
            }
        }
    }
}
