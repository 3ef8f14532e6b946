//! Progress on stderr while a job runs (`rivulet run` without `--quiet`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rivulet_dataflow::{NodeMetrics, NodeRole};
use rivulet_job::JobGraph;

/// Every two seconds: records in (at the sources) and out (at the sinks), rates, and the
/// sinks' watermark.
pub(crate) async fn report_progress(metrics: Vec<Arc<NodeMetrics>>, graph: JobGraph) {
    let sources: Vec<usize> = graph.nodes_with(NodeRole::Source).collect();
    let sinks: Vec<usize> = graph.nodes_with(NodeRole::Sink).collect();
    let started = Instant::now();
    let (mut last_in, mut last_out) = (0u64, 0u64);
    let period = Duration::from_secs(2);
    loop {
        tokio::time::sleep(period).await;
        let r_in: u64 = sources.iter().map(|&i| metrics[i].records_out.load(Ordering::Relaxed)).sum();
        let r_out: u64 = sinks.iter().map(|&i| metrics[i].records_in.load(Ordering::Relaxed)).sum();
        let wm = sinks.iter().map(|&i| metrics[i].watermark.load(Ordering::Relaxed)).min().unwrap_or(i64::MIN);
        let wm = match wm {
            i64::MIN => "none".to_owned(),
            i64::MAX => "end of input".to_owned(),
            w => w.to_string(),
        };
        eprintln!(
            "[rivulet] {:>6.1}s  in {r_in} ({:.0}/s)  out {r_out} ({:.0}/s)  watermark {wm}",
            started.elapsed().as_secs_f64(),
            (r_in - last_in) as f64 / period.as_secs_f64(),
            (r_out - last_out) as f64 / period.as_secs_f64(),
        );
        (last_in, last_out) = (r_in, r_out);
    }
}
