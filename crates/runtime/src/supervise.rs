//! Supervising a running job: task failures, the coordinator's reports, periodic
//! checkpoints, savepoints asked for (by a controller, SIGUSR1, a trigger file or a
//! record count), cancellation, and the wrap-up once every task has ended.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rivulet_checkpoint::{Coordinator, CoordinatorOutcome, SnapshotKind, TaskReport};
use rivulet_dataflow::{NodeMetrics, NodeRole};
use rivulet_job::JobGraph;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::control::{SavepointError, SavepointReply};
use crate::error::JobError;
use crate::options::RunOptions;
use crate::report::JobReport;

/// How often the supervisor looks at its clock and its controller.
const TICK: Duration = Duration::from_millis(20);

/// The supervisor of one run.
pub(crate) struct Supervisor<'a> {
    opts: &'a RunOptions,
    coordinator: Option<Coordinator>,
    metrics: &'a [Arc<NodeMetrics>],
    sources: Vec<usize>,
    first_error: Option<JobError>,
    cancelled: bool,
    stop_requested: bool,
    savepoint_requested: bool,
    next_checkpoint: Option<Instant>,
    /// Savepoints a controller asked for, by snapshot id.
    waiting: HashMap<u64, oneshot::Sender<SavepointReply>>,
    /// The job's secret values, scrubbed from what it logs.
    secrets: rivulet_job::secrets::Secrets,
}

/// How a supervised run ended.
pub(crate) enum Ended {
    /// Every task ended (a failure, if any, is in the result).
    Done(Result<(), JobError>),
    /// The controller cancelled the run.
    Cancelled,
}

impl<'a> Supervisor<'a> {
    /// Supervise a run of `graph` with `coordinator` (if it checkpoints).
    pub fn new(graph: &JobGraph, opts: &'a RunOptions, coordinator: Option<Coordinator>, metrics: &'a [Arc<NodeMetrics>]) -> Self {
        let interval = opts.checkpoint.as_ref().and_then(|c| c.interval);
        Supervisor {
            opts,
            coordinator,
            metrics,
            sources: graph.nodes_with(NodeRole::Source).collect(),
            first_error: None,
            cancelled: false,
            stop_requested: false,
            savepoint_requested: false,
            next_checkpoint: interval.map(|i| Instant::now() + i),
            waiting: HashMap::new(),
            secrets: rivulet_job::secrets::Secrets::of_graph(graph),
        }
    }

    /// Run until every task has ended; then complete the snapshot in progress and, for a
    /// job whose input is exhausted, the final checkpoint that commits the sinks.
    pub async fn run(
        mut self,
        mut tasks: JoinSet<Result<(), JobError>>,
        mut reports: mpsc::UnboundedReceiver<TaskReport>,
        report: &mut JobReport,
    ) -> Ended {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        #[cfg(unix)]
        let mut usr1 =
            if self.opts.savepoint_on_signal { tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()).ok() } else { None };
        let mut reports_open = true;
        loop {
            #[cfg(unix)]
            let signal = async {
                match usr1.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let signal = std::future::pending::<Option<()>>();
            tokio::select! {
                joined = tasks.join_next() => {
                    let Some(joined) = joined else { break };
                    let result = match joined {
                        Ok(result) => result,
                        // Only this supervisor aborts tasks, after a failure or a cancel it
                        // has already recorded: an aborted task is an echo, never the cause.
                        Err(e) if e.is_cancelled() => continue,
                        Err(e) => Err(JobError::Internal(format!("task panicked: {e}"))),
                    };
                    if let Err(e) = result {
                        self.fail(e, &mut tasks);
                    }
                }
                rep = reports.recv(), if reports_open => match rep {
                    Some(rep) => self.on_report(rep, report, &mut tasks).await,
                    None => reports_open = false,
                },
                _ = signal => self.savepoint_requested = true,
                _ = tick.tick() => self.on_tick(&mut tasks).await,
            }
        }
        self.wrap_up(&mut reports, report).await;
        if self.cancelled {
            return Ended::Cancelled;
        }
        Ended::Done(match self.first_error.take() {
            // The stop's savepoint completed and committed the sinks: the job is over, and
            // a task failing while it wound down must not start it again.
            Some(e) if report.stopped_with_savepoint.is_some() => {
                tracing::warn!(error = %self.secrets.scrub(&e.to_string()), "a task failed after the job stopped with its savepoint");
                Ok(())
            }
            Some(e) => Err(e),
            None => Ok(()),
        })
    }

    /// A failure: the first cause is kept (an echo of it, like a downstream task gone,
    /// gives way to the cause), every task stops.
    fn fail(&mut self, e: JobError, tasks: &mut JoinSet<Result<(), JobError>>) {
        if self.first_error.as_ref().is_none_or(|first| first.is_secondary() && !e.is_secondary()) {
            self.first_error = Some(e);
        }
        tasks.abort_all();
    }

    async fn on_report(&mut self, rep: TaskReport, report: &mut JobReport, tasks: &mut JoinSet<Result<(), JobError>>) {
        let Some(c) = self.coordinator.as_mut() else { return };
        match c.on_report(rep).await {
            Ok(Some(done)) => self.note_snapshot(report, &done),
            Ok(None) => self.settle_failed(),
            Err(e) => {
                self.first_error.get_or_insert(e.into());
                tasks.abort_all();
            }
        }
    }

    async fn on_tick(&mut self, tasks: &mut JoinSet<Result<(), JobError>>) {
        if let Some(ctl) = &self.opts.control {
            if ctl.cancelled() && !self.cancelled {
                self.cancelled = true;
                tasks.abort_all();
                return;
            }
            if self.coordinator.is_none()
                && let Some(r) = ctl.next_request()
            {
                let _ = r.reply.send(Err(SavepointError::NoLocation));
            }
        }
        let Some(c) = self.coordinator.as_mut() else { return };
        if let Some(reason) = self.opts.control.as_ref().and_then(|ctl| ctl.take_abort())
            && let Err(e) = c.abort_savepoint(reason).await
        {
            self.first_error.get_or_insert(e.into());
            tasks.abort_all();
            return;
        }
        if let Err(e) = c.check_timeout().await {
            self.first_error.get_or_insert(e.into());
            tasks.abort_all();
            return;
        }
        self.settle_failed();
        self.trigger_due();
    }

    /// Start whatever snapshot is due: a controller's savepoint, a triggered or counted
    /// one, or the periodic checkpoint.
    fn trigger_due(&mut self) {
        let Some(c) = self.coordinator.as_mut() else { return };
        if let Some(ctl) = &self.opts.control
            && !c.busy()
            && !self.stop_requested
            && let Some(r) = ctl.next_request()
            // A requester that stopped waiting (it gave up) no longer wants it.
            && !r.reply.is_closed()
        {
            match c.trigger_savepoint(r.format, r.stop) {
                Some(id) => {
                    self.stop_requested |= r.stop;
                    self.waiting.insert(id, r.reply);
                }
                None => ctl.push_front(r),
            }
        }
        if let Some(f) = &self.opts.savepoint_trigger_file
            && f.exists()
        {
            let _ = std::fs::remove_file(f);
            self.savepoint_requested = true;
        }
        if let Some(limit) = self.opts.stop_with_savepoint_after_records {
            let emitted: u64 = self.sources.iter().map(|&i| self.metrics[i].records_out.load(Ordering::Relaxed)).sum();
            if emitted >= limit && !self.stop_requested && !c.busy() && c.trigger(SnapshotKind::Savepoint, true).is_some() {
                self.stop_requested = true;
            }
        }
        if self.savepoint_requested && !c.busy() && !self.stop_requested && c.trigger(SnapshotKind::Savepoint, false).is_some() {
            self.savepoint_requested = false;
        }
        if let Some(due) = self.next_checkpoint
            && Instant::now() >= due
            && !c.busy()
            && !self.stop_requested
        {
            c.trigger(SnapshotKind::Checkpoint, false);
            let interval = self.opts.checkpoint.as_ref().and_then(|c| c.interval);
            self.next_checkpoint = interval.map(|i| Instant::now() + i);
        }
    }

    /// Every task is done: the remaining reports (uploads still finishing) complete the
    /// snapshot in progress; then the final checkpoint commits what the sinks hold.
    async fn wrap_up(&mut self, reports: &mut mpsc::UnboundedReceiver<TaskReport>, report: &mut JobReport) {
        if self.first_error.is_none()
            && let Some(c) = self.coordinator.as_mut()
        {
            let mut done = Vec::new();
            while let Some(rep) = reports.recv().await {
                match c.on_report(rep).await {
                    Ok(Some(d)) => done.push(d),
                    Ok(None) => {}
                    Err(e) => {
                        self.first_error = Some(e.into());
                        break;
                    }
                }
            }
            if self.first_error.is_none() && !self.stop_requested && c.all_finished() {
                match c.finish().await {
                    Ok(d) => done.push(d),
                    Err(e) => self.first_error = Some(e.into()),
                }
            }
            for d in &done {
                self.note_snapshot(report, d);
            }
            if self.first_error.is_none() && self.stop_requested && report.stopped_with_savepoint.is_none() {
                self.first_error = Some(JobError::Internal("the job stopped but its savepoint did not complete".into()));
            }
        }
        if let Some(c) = &self.coordinator {
            report.snapshot_failures = c.failures.clone();
            if let Some(ctl) = &self.opts.control {
                ctl.update(|l| l.snapshot_failures.extend(c.failures.iter().cloned()));
            }
        }
        for (_, reply) in self.waiting.drain() {
            let _ = reply.send(Err(SavepointError::JobEnded));
        }
    }

    /// Answer savepoint requests whose snapshot failed.
    fn settle_failed(&mut self) {
        let Some(c) = &self.coordinator else { return };
        for (id, reason) in &c.failures {
            if let Some(reply) = self.waiting.remove(id) {
                let _ = reply.send(Err(SavepointError::Failed { id: *id, reason: reason.clone() }));
            }
        }
    }

    fn note_snapshot(&mut self, report: &mut JobReport, done: &CoordinatorOutcome) {
        if let Some(reply) = self.waiting.remove(&done.id) {
            let _ = reply.send(Ok(done.location.clone()));
        }
        if let Some(ctl) = &self.opts.control {
            ctl.update(|l| l.snapshots.push(done.clone()));
        }
        if done.kind == SnapshotKind::Savepoint {
            eprintln!("[rivulet] savepoint {} complete: {}", done.id, done.location);
            if done.stop {
                report.stopped_with_savepoint = Some(done.location.clone());
            } else {
                report.savepoints.push(done.location.clone());
            }
        }
        report.snapshots.push(done.clone());
    }
}
