//! `GET /metrics`: the live counters of every job in the Prometheus text format,
//! encoded by `prometheus-client` from a registry filled at scrape time.
//!
//! - per operator (labels `job`, `node`, `kind`): records in/out, late records, dead letters,
//!   processing latency (guest time per record), backpressure, watermark lag;
//! - per job: checkpoint duration and size (last), checkpoints completed and failed,
//!   restarts;
//! - per plugin: time in guest, traps, memory.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use rivulet_dataflow::{NodeRole, now_ms};

use crate::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    job: String,
    node: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    job: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Render every metric.
pub fn render(state: &AppState) -> String {
    let mut reg = Registry::with_prefix("rivulet");
    let records_in = Family::<NodeLabels, Counter>::default();
    let records_out = Family::<NodeLabels, Counter>::default();
    let late = Family::<NodeLabels, Counter>::default();
    let dead_letters = Family::<NodeLabels, Counter>::default();
    let latency = Family::<NodeLabels, FloatGauge>::default();
    let backpressure = Family::<NodeLabels, FloatGauge>::default();
    let wm_lag = Family::<NodeLabels, FloatGauge>::default();
    let ck_duration = Family::<JobLabels, FloatGauge>::default();
    let ck_size = Family::<JobLabels, Gauge>::default();
    let ck_done = Family::<JobLabels, Counter>::default();
    let ck_failed = Family::<JobLabels, Counter>::default();
    let restarts = Family::<JobLabels, Counter>::default();
    let guest = Family::<PluginLabels, FloatGauge>::default();
    let traps = Family::<PluginLabels, Counter>::default();
    let memory = Family::<PluginLabels, Gauge>::default();
    let jobs = Family::<StatusLabels, Gauge>::default();
    reg.register("records_in", "Records received by a node", records_in.clone());
    reg.register("records_out", "Records emitted by a node", records_out.clone());
    reg.register("late_records", "Records routed to a window's late side output", late.clone());
    reg.register("dead_letters", "Undecodable records a source sent to its dead-letter output", dead_letters.clone());
    reg.register("processing_latency_seconds", "Mean time in the guest per record received", latency.clone());
    reg.register("backpressure_seconds", "Time a node's subtasks waited on full downstream channels", backpressure.clone());
    reg.register("watermark_lag_seconds", "Wall clock minus the node's watermark", wm_lag.clone());
    reg.register("checkpoint_duration_seconds", "Duration of the last completed snapshot", ck_duration.clone());
    reg.register("checkpoint_size_bytes", "Bytes written for the last completed snapshot", ck_size.clone());
    reg.register("checkpoints_completed", "Snapshots completed since the server started", ck_done.clone());
    reg.register("checkpoints_failed", "Snapshots that failed since the server started", ck_failed.clone());
    reg.register("job_restarts", "Restarts of a job after task failures", restarts.clone());
    reg.register("plugin_guest_seconds", "Time spent inside a plugin's guest calls", guest.clone());
    reg.register("plugin_traps", "Failures attributed to a plugin (traps, timeouts, guest errors)", traps.clone());
    reg.register("plugin_memory_bytes", "Largest linear memory of any instance of a plugin", memory.clone());
    reg.register("jobs", "Jobs by status", jobs.clone());

    let now = now_ms();
    let mut by_status: BTreeMap<String, i64> = BTreeMap::new();
    for job in state.jobs.metrics() {
        *by_status.entry(job.status.to_string()).or_default() += 1;
        for plugin in job.recorded_failures.iter().flatten() {
            traps.get_or_create(&PluginLabels { plugin: plugin.clone() }).inc();
        }
        let jl = JobLabels { job: job.id.clone(), name: job.name.clone() };
        restarts.get_or_create(&jl).inc_by(job.restarts);
        let Some((nodes, live)) = job.run else { continue };
        if let Some(last) = live.snapshots.last() {
            ck_duration.get_or_create(&jl).set(last.duration_ms as f64 / 1e3);
            ck_size.get_or_create(&jl).set(last.bytes as i64);
        }
        ck_done.get_or_create(&jl).inc_by(live.snapshots.len() as u64);
        ck_failed.get_or_create(&jl).inc_by(live.snapshot_failures.len() as u64);
        for plugin in live.failures.iter().filter_map(|f| f.plugin.as_ref()) {
            traps.get_or_create(&PluginLabels { plugin: plugin.clone() }).inc();
        }
        for (m, node) in live.metrics.iter().zip(nodes.iter()) {
            let nl = NodeLabels { job: job.id.clone(), node: m.id.clone(), kind: node.role.to_string() };
            let r_in = m.records_in.load(Ordering::Relaxed);
            records_in.get_or_create(&nl).inc_by(r_in);
            records_out.get_or_create(&nl).inc_by(m.records_out.load(Ordering::Relaxed));
            late.get_or_create(&nl).inc_by(m.late_records.load(Ordering::Relaxed));
            dead_letters.get_or_create(&nl).inc_by(m.dead_letters.load(Ordering::Relaxed));
            let guest_ns = m.guest_ns.load(Ordering::Relaxed);
            if r_in > 0 && node.role == NodeRole::Operator {
                latency.get_or_create(&nl).set(guest_ns as f64 / 1e9 / r_in as f64);
            }
            backpressure.get_or_create(&nl).set(m.backpressure_ns.load(Ordering::Relaxed) as f64 / 1e9);
            let wm = m.watermark.load(Ordering::Relaxed);
            if wm != i64::MIN && wm != i64::MAX {
                wm_lag.get_or_create(&nl).set((now - wm) as f64 / 1e3);
            }
            if let Some(p) = &node.plugin {
                let pl = PluginLabels { plugin: p.clone() };
                let g = guest.get_or_create(&pl);
                g.set(g.get() + guest_ns as f64 / 1e9);
                let mem = memory.get_or_create(&pl);
                mem.set(mem.get().max(m.memory_bytes.load(Ordering::Relaxed) as i64));
            }
        }
    }
    for (status, n) in by_status {
        jobs.get_or_create(&StatusLabels { status }).set(n);
    }
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &reg) {
        tracing::error!(error = %e, "encoding metrics");
    }
    out
}
