//! Running a job's tasks on the registered workers: placement into free slots, plugins
//! and the deployment shipped, readiness, barriers out, reports and counters back, and
//! the run's presence on its workers (cancelled everywhere when it ends).

use super::*;

/// A run's presence on its workers: dropped (the run ended, failed or was aborted), it
/// cancels the run's share on every worker and stops the run's forwarders.
struct RunGuard {
    inner: Arc<Inner>,
    run: RunId,
    workers: Vec<WorkerId>,
    forwarders: Mutex<Vec<AbortHandle>>,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        for f in self.forwarders.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            f.abort();
        }
        for w in &self.workers {
            self.inner.send(*w, &ToWorker::Cancel { run: self.run });
            if let Some(entry) = self.inner.lock().get_mut(w) {
                entry.runs.remove(&self.run);
            }
        }
        // Its slots are free again.
        self.inner.changed.notify_waiters();
    }
}

impl TaskHosts for Cluster {
    fn start<'a>(&'a self, run: RemoteRun<'a>) -> StartFuture<'a> {
        Box::pin(start_run(self.inner.clone(), run))
    }

    fn job_ended<'a>(&'a self, job: &'a str) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            if let Some(p) = &self.inner.config.provisioner {
                match tokio::time::timeout(PROVISION_TIMEOUT, p.release(job)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(job, "cluster: {e}"),
                    Err(_) => tracing::warn!(job, "cluster: removing the job's workers: no answer within {PROVISION_TIMEOUT:?}"),
                }
            }
        })
    }

    fn retain_jobs<'a>(&'a self, active: &'a [String]) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            if let Some(p) = &self.inner.config.provisioner {
                match tokio::time::timeout(PROVISION_TIMEOUT, p.retain(active)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!("cluster: {e}"),
                    Err(_) => tracing::warn!("cluster: removing workers of other jobs: no answer within {PROVISION_TIMEOUT:?}"),
                }
            }
        })
    }
}

fn worker_error(worker: WorkerId, failure: RemoteFailure) -> JobError {
    JobError::Worker { worker, failure }
}

/// Start `run`'s tasks on the cluster's workers: get workers, place the tasks, ship
/// plugins and deployments, wait for readiness, start, then forward barriers and
/// completed snapshots and supervise each worker's share.
async fn start_run(inner: Arc<Inner>, run: RemoteRun<'_>) -> Result<StartedTasks, JobError> {
    let needed = run.graph.nodes.iter().map(|n| n.parallelism).max().unwrap_or(1);
    provide_workers(&inner, run.job, needed).await?;
    let placement = place_tasks(&inner, &run, needed).await?;
    let id = inner.next_run.fetch_add(1, Ordering::Relaxed);
    let plugins = read_plugins(run.graph).await?;
    let mut events = register_shares(&inner, &run, id, &placement)?;
    let guard =
        Arc::new(RunGuard { inner: inner.clone(), run: id, workers: placement.used.iter().copied().collect(), forwarders: Mutex::new(Vec::new()) });
    ship_deployments(&inner, &run, id, &placement, &plugins)?;
    let peers = await_ready(&inner, &mut events, &placement.workers).await?;
    start_tasks(&inner, id, &placement.used, &peers)?;
    tracing::info!(run = id, job = %run.graph.name, workers = ?placement.used, "cluster: run started");
    publish_placement(&run, &placement.hosts);
    let barriers = forward_barriers_and_snapshots(&inner, &run, id, &placement.hosts, &guard);
    let tasks = supervise(events, &guard, &run);
    Ok(StartedTasks { tasks, barriers })
}

/// Where a run's tasks go.
struct Placement {
    /// The workers offered to the run: id, free slots, the host its exchange ports are
    /// reachable at (in id order).
    workers: Vec<(WorkerId, u32, String)>,
    /// The worker of each task of the plan, by task index.
    hosts: Vec<WorkerId>,
    /// The workers with at least one of the run's tasks.
    used: BTreeSet<WorkerId>,
}

/// The plugins of a graph's operators, each read once.
struct Plugins {
    /// The plugin digest of each operator node, by node index.
    by_node: BTreeMap<usize, String>,
    /// Each plugin's bytes, by digest.
    blobs: BTreeMap<String, Bytes>,
}

/// Ask the resource manager (if the cluster has one) for workers for `needed`
/// subtasks of `job`, waiting at most [`PROVISION_TIMEOUT`] for its answer.
async fn provide_workers(inner: &Inner, job: &str, needed: u32) -> Result<(), JobError> {
    if let Some(p) = &inner.config.provisioner {
        match tokio::time::timeout(PROVISION_TIMEOUT, p.provide(job, needed)).await {
            Ok(provided) => provided.map_err(|e| JobError::Internal(e.to_string()))?,
            Err(_) => return Err(JobError::Internal(format!("providing workers for job {job}: no answer within {PROVISION_TIMEOUT:?}"))),
        }
    }
    Ok(())
}

/// Place the plan's tasks into the free slots of the workers that serve the job
/// (waiting for slots as [`Inner::slots_for`] does).
async fn place_tasks(inner: &Inner, run: &RemoteRun<'_>, needed: u32) -> Result<Placement, JobError> {
    let workers = inner.slots_for(run.job, needed).await?;
    let slots: Vec<u32> = workers.iter().map(|(_, s, _)| *s).collect();
    let placement = run.plan.placement(&slots).ok_or(JobError::NoSlots { needed, waited_ms: 0 })?;
    let hosts: Vec<WorkerId> = placement.iter().map(|i| workers[*i].0).collect();
    let used: BTreeSet<WorkerId> = hosts.iter().copied().collect();
    Ok(Placement { workers, hosts, used })
}

/// Read the plugin of every operator of `graph`, keyed by digest (a plugin used by
/// several operators is read and shipped once).
async fn read_plugins(graph: &rivulet_job::JobGraph) -> Result<Plugins, JobError> {
    let mut by_node = BTreeMap::new();
    let mut blobs = BTreeMap::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        if let NodeKind::Operator { plugin_path, spec } = &node.kind {
            let bytes = tokio::fs::read(plugin_path)
                .await
                .map_err(|e| JobError::Internal(format!("operator '{}': reading plugin {}: {e}", spec.uid, plugin_path.display())))?;
            let digest = rivulet_checkpoint::sha256_hex(&bytes);
            by_node.insert(i, digest.clone());
            blobs.insert(digest, Bytes::from(bytes));
        }
    }
    Ok(Plugins { by_node, blobs })
}

/// Register run `id`'s share on each worker it uses (its tasks and the slots they hold)
/// and the channel of that worker's events for it, before anything is sent; fails
/// when one of the workers is gone already.
fn register_shares(
    inner: &Inner,
    run: &RemoteRun<'_>,
    id: RunId,
    placement: &Placement,
) -> Result<BTreeMap<WorkerId, mpsc::UnboundedReceiver<RunEvent>>, JobError> {
    let Placement { hosts, used, .. } = placement;
    let mut events = BTreeMap::new();
    let mut registry = inner.lock();
    if let Some(gone) = used.iter().find(|w| !registry.contains_key(w)) {
        return Err(worker_error(*gone, RemoteFailure::lost("lost before the run started")));
    }
    for w in used {
        let Some(entry) = registry.get_mut(w) else { continue };
        let (tx, rx) = mpsc::unbounded_channel();
        let subtasks: BTreeSet<u32> = run.plan.tasks.iter().zip(hosts).filter(|(_, h)| *h == w).map(|(t, _)| t.subtask()).collect();
        let share = RunShare { events: tx, tasks: hosts.iter().filter(|h| *h == w).count(), slots: (subtasks.len() as u32).min(entry.slots.max(1)) };
        entry.runs.insert(id, share);
        events.insert(*w, rx);
    }
    Ok(events)
}

/// Send each worker the run uses the plugins it does not have yet and its deployment:
/// the graph, the run's options and restore point, its tasks and where every channel's
/// receiver runs.
fn ship_deployments(inner: &Inner, run: &RemoteRun<'_>, id: RunId, placement: &Placement, plugins: &Plugins) -> Result<(), JobError> {
    let Placement { hosts, used, .. } = placement;
    let receivers = receivers_by_host(run.plan, hosts);
    let opts = run.opts;
    // Workers resolve the spec's relative paths as the coordinator does.
    let mut shipped = run.graph.clone();
    shipped.base_dir = std::path::absolute(&shipped.base_dir).unwrap_or(shipped.base_dir);
    let deployment = |w: WorkerId| Deployment {
        graph: shipped.clone(),
        plugins: plugins.by_node.clone(),
        attempt: opts.attempt,
        restore: run.restore.clone(),
        checkpoint_root: opts.checkpoint.as_ref().map(|c| c.storage.url_of("").trim_end_matches('/').to_owned()),
        incremental: opts.checkpoint.as_ref().is_some_and(|c| c.incremental),
        state_backend: opts.state_backend,
        memory_bytes: opts.limits.memory_bytes,
        call_timeout_ms: opts.limits.call_timeout.as_millis() as u64,
        allow_non_restored_state: opts.allow_non_restored_state,
        tasks: hosts.iter().enumerate().filter(|(_, h)| **h == w).map(|(i, _)| i).collect(),
        receivers: receivers.iter().map(|(s, h)| (*s, *h)).collect(),
    };
    for w in used {
        send_missing_plugins(inner, *w, &plugins.blobs)?;
        inner.send(*w, &ToWorker::Prepare { run: id, deployment: Box::new(deployment(*w)) });
    }
    Ok(())
}

/// Send `worker` those of `blobs` it has not been sent before (and note them as sent).
fn send_missing_plugins(inner: &Inner, worker: WorkerId, blobs: &BTreeMap<String, Bytes>) -> Result<(), JobError> {
    let unsent: Vec<(String, Bytes)> = {
        let mut registry = inner.lock();
        let Some(entry) = registry.get_mut(&worker) else { return Ok(()) };
        blobs.iter().filter(|(d, _)| entry.plugins.insert((*d).clone())).map(|(d, b)| (d.clone(), b.clone())).collect()
    };
    for (digest, bytes) in unsent {
        let frame = encode::<ToWorker>(&Frame::Plugin { digest, bytes }).map_err(|e| JobError::Internal(e.to_string()))?;
        if let Some(entry) = inner.lock().get(&worker) {
            let _ = entry.tx.send(frame);
        }
    }
    Ok(())
}

/// Wait (at most the configured prepare timeout, for all together) until every worker
/// says it is ready, and resolve the address of its exchange port; a worker that
/// refuses, is lost or is not ready in time fails the start.
async fn await_ready(
    inner: &Inner,
    events: &mut BTreeMap<WorkerId, mpsc::UnboundedReceiver<RunEvent>>,
    workers: &[(WorkerId, u32, String)],
) -> Result<BTreeMap<WorkerId, SocketAddr>, JobError> {
    let mut peers = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + inner.config.prepare_timeout;
    for (w, rx) in events.iter_mut() {
        let port = loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Err(_) => return Err(worker_error(*w, RemoteFailure::lost(format!("not ready within {:?}", inner.config.prepare_timeout)))),
                Ok(None) => return Err(worker_error(*w, RemoteFailure::lost("lost while preparing"))),
                Ok(Some(RunEvent::Ready(port))) => break port,
                Ok(Some(RunEvent::Refused(f))) => return Err(worker_error(*w, f)),
                Ok(Some(RunEvent::Lost(reason))) => return Err(worker_error(*w, RemoteFailure::lost(reason))),
                Ok(Some(_)) => {}
            }
        };
        let host = workers.iter().find(|(id, _, _)| id == w).map(|(_, _, h)| h.clone()).unwrap_or_default();
        let addr = tokio::net::lookup_host((host.as_str(), port))
            .await
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| worker_error(*w, RemoteFailure::lost(format!("cannot resolve its host '{host}'"))))?;
        peers.insert(*w, addr);
    }
    Ok(peers)
}

/// Tell every worker of the run to start its tasks, with every worker's exchange
/// address (so channels between them can connect).
fn start_tasks(inner: &Inner, id: RunId, used: &BTreeSet<WorkerId>, peers: &BTreeMap<WorkerId, SocketAddr>) -> Result<(), JobError> {
    for w in used {
        if !inner.send(*w, &ToWorker::Start { run: id, peers: peers.clone() }) {
            return Err(worker_error(*w, RemoteFailure::lost("lost before the start")));
        }
    }
    Ok(())
}

/// Show in the run's control which worker runs each node's subtasks.
fn publish_placement(run: &RemoteRun<'_>, hosts: &[WorkerId]) {
    if let Some(control) = &run.opts.control {
        let mut placement: Vec<Vec<u32>> = run.graph.nodes.iter().map(|n| vec![0; n.parallelism as usize]).collect();
        for (task, worker) in run.plan.tasks.iter().zip(hosts) {
            for n in task.nodes() {
                if let Some(slot) = placement.get_mut(*n).and_then(|p| p.get_mut(task.subtask() as usize)) {
                    *slot = *worker;
                }
            }
        }
        control.set_placement(placement);
    }
}

/// Forward the checkpoint coordinator's barriers to every worker with a source
/// subtask, and each snapshot the ledger records as complete to all the run's workers;
/// the forwarders stop with `guard`. Returns where barriers are injected.
fn forward_barriers_and_snapshots(
    inner: &Arc<Inner>,
    run: &RemoteRun<'_>,
    id: RunId,
    hosts: &[WorkerId],
    guard: &RunGuard,
) -> Vec<mpsc::UnboundedSender<rivulet_dataflow::Barrier>> {
    let mut barriers = Vec::new();
    let mut forwarders = Vec::new();
    let sources: BTreeSet<WorkerId> = run.plan.tasks.iter().zip(hosts).filter(|(t, _)| matches!(t, Task::Source { .. })).map(|(_, h)| *h).collect();
    for w in sources {
        let (tx, mut rx) = mpsc::unbounded_channel();
        barriers.push(tx);
        let inner = inner.clone();
        forwarders.push(
            tokio::spawn(async move {
                while let Some(barrier) = rx.recv().await {
                    inner.send(w, &ToWorker::Barrier { run: id, barrier });
                }
            })
            .abort_handle(),
        );
    }
    let mut completed = run.ledger.follow();
    let (inner2, all) = (inner.clone(), guard.workers.clone());
    forwarders.push(
        tokio::spawn(async move {
            while completed.changed().await.is_ok() {
                let snapshot = *completed.borrow_and_update();
                for w in &all {
                    inner2.send(*w, &ToWorker::Completed { run: id, id: snapshot });
                }
            }
        })
        .abort_handle(),
    );
    guard.forwarders.lock().unwrap_or_else(|p| p.into_inner()).extend(forwarders);
    barriers
}

/// One entry per worker in the supervisor's task set: it adds the worker's counters to
/// the run's, passes its snapshot reports on, and ends with the worker's share (with
/// its failure, or the worker's loss); the last to end drops `guard`.
fn supervise(
    events: BTreeMap<WorkerId, mpsc::UnboundedReceiver<RunEvent>>,
    guard: &Arc<RunGuard>,
    run: &RemoteRun<'_>,
) -> JoinSet<Result<(), JobError>> {
    let mut tasks = JoinSet::new();
    for (w, mut rx) in events {
        let guard = guard.clone();
        let metrics: Vec<Arc<NodeMetrics>> = run.metrics.to_vec();
        let reports = run.reports.clone();
        tasks.spawn(async move {
            let _guard = guard;
            let mut last: Vec<NodeTotals> = Vec::new();
            loop {
                match rx.recv().await {
                    Some(RunEvent::Totals(t)) => apply(&metrics, &mut last, t),
                    Some(RunEvent::Report(r)) => {
                        if let Some(reports) = &reports {
                            let _ = reports.send(r);
                        }
                    }
                    Some(RunEvent::Finished { totals, failure }) => {
                        apply(&metrics, &mut last, totals);
                        return failure.map_or(Ok(()), |f| Err(worker_error(w, f)));
                    }
                    Some(RunEvent::Lost(reason)) => return Err(worker_error(w, RemoteFailure::lost(reason))),
                    Some(RunEvent::Refused(f)) => return Err(worker_error(w, f)),
                    Some(RunEvent::Ready(_)) => {}
                    None => return Err(worker_error(w, RemoteFailure::lost("gone"))),
                }
            }
        });
    }
    tasks
}

/// Add what grew since `last` to the coordinator's counters (a worker sends totals).
fn apply(metrics: &[Arc<NodeMetrics>], last: &mut Vec<NodeTotals>, totals: Vec<NodeTotals>) {
    last.resize(totals.len(), NodeTotals::default());
    for ((m, new), old) in metrics.iter().zip(&totals).zip(last.iter()) {
        m.records_in.fetch_add(new.records_in.saturating_sub(old.records_in), Ordering::Relaxed);
        m.records_out.fetch_add(new.records_out.saturating_sub(old.records_out), Ordering::Relaxed);
        m.late_records.fetch_add(new.late.saturating_sub(old.late), Ordering::Relaxed);
        m.batches_in.fetch_add(new.batches_in.saturating_sub(old.batches_in), Ordering::Relaxed);
        m.dead_letters.fetch_add(new.dead_letters.saturating_sub(old.dead_letters), Ordering::Relaxed);
        m.watermark.fetch_max(new.watermark, Ordering::Relaxed);
        m.guest_ns.fetch_add(new.guest_ns.saturating_sub(old.guest_ns), Ordering::Relaxed);
        m.backpressure_ns.fetch_add(new.backpressure_ns.saturating_sub(old.backpressure_ns), Ordering::Relaxed);
        m.memory_bytes.fetch_max(new.memory_bytes, Ordering::Relaxed);
    }
    *last = totals;
}
