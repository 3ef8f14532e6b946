//! Runs of a job in the background, and what their end means for the job: finished,
//! stopped, cancelled, failed — or, for a swap on probation, rolled back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use rivulet_checkpoint::find_restore_point;
use rivulet_job::RestartSpec;
use rivulet_runtime::{
    CheckpointOverrides, JobControl, JobError, JobReport, RestoreFrom, RunOptions, checkpoint_config, committers, run_job_with_restarts,
};
use tokio::sync::watch;

use crate::ServerError;
use crate::entry::{JobEntry, RunHandle};
use crate::manager::JobManager;
use crate::record::{ExceptionInfo, HistoryEvent, HistoryKind, JobStatus, PluginRef, versions};

/// What a swap on probation rolls back to, and where it says so.
#[derive(Debug, Clone)]
pub(crate) struct Rollback {
    /// The versions before the swap.
    pub plugins: BTreeMap<String, PluginRef>,
    /// The parallelism before it.
    pub parallelism: Option<u32>,
    /// The savepoint both versions start from.
    pub savepoint: String,
    /// Receives the reason when the new version fails on probation and is rolled back.
    pub verdict: Arc<watch::Sender<Option<String>>>,
}

impl JobManager {
    /// Start a run of `entry` in the background (on probation when `probation` says what
    /// to roll back to).
    pub(crate) fn start_run(self: &Arc<Self>, entry: &mut JobEntry, restore: RestoreFrom, probation: Option<Rollback>) -> Result<(), ServerError> {
        let graph = entry.graph()?;
        let spec = entry.spec()?.clone();
        let record = &mut entry.record;
        let storage = self.storage(&spec, &record.id)?;
        let control = JobControl::with_guest_log(entry.log.clone());
        let mut opts = RunOptions::new(record.state_backend, self.data_dir.join("state").join(&record.id));
        opts.checkpoint = Some(checkpoint_config(
            storage.clone(),
            spec.checkpoint.as_ref(),
            &CheckpointOverrides::default(),
            Some(self.defaults.checkpoint_interval),
        ));
        opts.allow_non_restored_state = record.allow_non_restored_state;
        opts.control = Some(control.clone());
        opts.probation = probation.is_some();
        opts.hosts = self.defaults.hosts.clone();
        opts.job_id = Some(record.id.clone());
        let restart = spec.restart.clone().unwrap_or(RestartSpec { attempts: 3, delay_ms: 1000 });
        let (tx, rx) = watch::channel(false);
        entry.run = Some(RunHandle { control, ended: rx, finished: false, started: Instant::now() });
        record.status = JobStatus::Running;
        record.error = None;
        let manager = self.clone();
        let id = record.id.clone();
        let initial = record.initial_savepoint.clone();
        tokio::spawn(async move {
            // `latest` falls back to the savepoint the job was first started from.
            opts.restore = match (restore, initial) {
                (RestoreFrom::Latest, Some(sp)) => match find_restore_point(&storage, &graph.name, &committers(&graph, &opts)).await {
                    Ok(Some(_)) => RestoreFrom::Latest,
                    _ => RestoreFrom::Path(sp),
                },
                (restore, _) => restore,
            };
            let result = run_job_with_restarts(&graph, manager.registry.engine(), &opts, Some(&restart)).await;
            manager.run_ended(&id, &opts, result, probation);
            // Workers made for the job go when it comes to rest (not between the two runs
            // of a swap, a rescale or a rollback: the job is running again by then).
            let at_rest = manager.with_job(&id, |e| Ok(!matches!(e.record.status, JobStatus::Running | JobStatus::Upgrading))).unwrap_or(true);
            let _ = tx.send(true);
            if let (true, Some(hosts)) = (at_rest, &opts.hosts) {
                hosts.job_ended(&id).await;
            }
        });
        Ok(())
    }

    /// Record how a run ended; roll a swap on probation back.
    fn run_ended(self: &Arc<Self>, id: &str, opts: &RunOptions, result: Result<JobReport, JobError>, probation: Option<Rollback>) {
        // A run that fails while the server shuts down gracefully (its tasks torn down
        // with the process) is no failure of the job: it stays active, as recorded by the
        // shutdown, and resumes on the next start.
        if let Err(e) = &result
            && self.is_shutting_down()
        {
            let error = self.scrub(id, &e.to_string());
            tracing::info!(job = %id, %error, "a run ended during the graceful shutdown; the job resumes on the next start");
            return;
        }
        let ended = self.with_job(id, |entry| {
            let live = opts.control.as_ref().map(|c| c.live()).unwrap_or_default();
            entry.record.add_exceptions(live.failures.iter().map(ExceptionInfo::from));
            entry.record.restarts += u64::from(live.attempt);
            if let Some(r) = &mut entry.run {
                r.finished = true;
            }
            let event = |entry: &JobEntry, kind, detail| HistoryEvent { detail, ..HistoryEvent::new(kind, entry.record.versions()) };
            match result {
                Ok(report) if report.cancelled => {
                    entry.record.status = JobStatus::Cancelled;
                    entry.record.push(event(entry, HistoryKind::Cancelled, None));
                }
                Ok(report) if report.stopped_with_savepoint.is_some() => {
                    // A stop, or the first half of a swap (which starts the next run).
                    if entry.record.status != JobStatus::Upgrading {
                        entry.record.status = JobStatus::Stopped;
                        let e = HistoryEvent { savepoint: report.stopped_with_savepoint.clone(), ..event(entry, HistoryKind::Stopped, None) };
                        entry.record.push(e);
                    }
                }
                Ok(_) => {
                    entry.record.status = JobStatus::Finished;
                    entry.record.push(event(entry, HistoryKind::Finished, None));
                }
                Err(e) => match probation {
                    Some(rb) if live.snapshots.is_empty() => self.roll_back(entry, rb, e.to_string()),
                    _ => {
                        entry.record.status = JobStatus::Failed;
                        entry.record.error = Some(e.to_string());
                        entry.record.push(event(entry, HistoryKind::Failed, Some(e.to_string())));
                    }
                },
            }
            self.persist(&entry.record)
        });
        if let Err(e) = ended {
            tracing::error!(job = %id, error = %e, "cannot record the end of a run");
        }
    }

    /// The new version failed on probation: back to the old one, from the same savepoint.
    pub(crate) fn roll_back(self: &Arc<Self>, entry: &mut JobEntry, rb: Rollback, reason: String) {
        tracing::warn!(job = %entry.record.id, reason = %entry.secrets.scrub(&reason), "the new version failed on probation; rolling back");
        let from = entry.record.versions();
        entry.set_version(rb.plugins.clone(), rb.parallelism, &self.registry);
        entry.record.push(HistoryEvent {
            from_versions: Some(from),
            savepoint: Some(rb.savepoint.clone()),
            parallelism: rb.parallelism,
            detail: Some(reason.clone()),
            ..HistoryEvent::new(HistoryKind::Rollback, versions(&rb.plugins))
        });
        if let Err(e) = self.start_run(entry, RestoreFrom::Path(rb.savepoint.clone()), None) {
            entry.record.status = JobStatus::Failed;
            entry.record.error = Some(format!("rollback failed: {e}"));
        }
        let _ = rb.verdict.send(Some(reason));
    }
}
