//! Where a run starts from: the snapshot found and checked against the job, and the dry
//! run of a restore that a hot swap does before it stops anything.

use std::sync::Arc;

use rivulet_checkpoint::{CheckpointError, Committers, RestorePoint, find_restore_point, open_snapshot};
use rivulet_dataflow::{NodeMetrics, now_ms};
use rivulet_job::{JobGraph, NodeKind};
use rivulet_plugin::PluginEngine;
use rivulet_state::BackendKind;

use crate::error::JobError;
use crate::operator_setup::{OperatorSetup, SubtaskSpec};
use crate::options::{RestoreFrom, RunOptions};

/// Find and verify the snapshot a run starts from, and check it fits the job: same key
/// groups, and no state of operators the job no longer has unless
/// `allow_non_restored_state`.
pub(crate) async fn restore_point(graph: &JobGraph, opts: &RunOptions, committers: &Committers) -> Result<Option<RestorePoint>, JobError> {
    let point = match &opts.restore {
        RestoreFrom::Nothing => None,
        RestoreFrom::Latest => match &opts.checkpoint {
            Some(c) => find_restore_point(&c.storage, &graph.name, committers).await?,
            None => return Err(CheckpointError::Mismatch("--restore latest needs a checkpoint location (--checkpoint-dir)".into()).into()),
        },
        RestoreFrom::Path(p) => Some(open_snapshot(p, &graph.name, committers).await?.1),
    };
    let Some(point) = point else { return Ok(None) };
    if point.manifest.max_parallelism != graph.max_parallelism {
        return Err(CheckpointError::Mismatch(format!(
            "the snapshot has {} key groups (max_parallelism) and the job {}; key groups cannot change",
            point.manifest.max_parallelism, graph.max_parallelism
        ))
        .into());
    }
    let uids: Vec<&str> = graph.operator_uids().collect();
    for uid in point.operator_uids() {
        if !uids.contains(&uid) {
            not_restored(opts, &point, &format!("state for operator uid '{uid}'"), &format!("the state of operator '{uid}'"))?;
        }
    }
    // Sinks the job no longer has: their staged output belongs to the snapshot and is
    // committed all the same (`rivulet_connectors::committer_for`).
    Ok(Some(point))
}

/// Something of the snapshot (`what` it holds; `dropped`, as it is dropped) that the job
/// has no place for: dropped with `--allow-non-restored-state`, refused without.
fn not_restored(opts: &RunOptions, point: &RestorePoint, what: &str, dropped: &str) -> Result<(), JobError> {
    if opts.allow_non_restored_state {
        tracing::warn!(%what, "dropping what the job no longer has");
        eprintln!("[rivulet] dropping {dropped} (not in the job; --allow-non-restored-state)");
        return Ok(());
    }
    Err(CheckpointError::Mismatch(format!(
        "{} holds {what}, which the job does not have; pass --allow-non-restored-state to drop it",
        point.location
    ))
    .into())
}

/// Restore the operators `uids` of `graph` from the snapshot at `location` into
/// throwaway in-memory instances — state versions compared, `migrate-state` run where
/// they differ — without opening them or running anything: a dry run of a restore.
pub async fn dry_run_restore(graph: &JobGraph, engine: &Arc<PluginEngine>, location: &str, uids: &[String]) -> Result<(), JobError> {
    let (_, point) = open_snapshot(location, &graph.name, &Committers::with_fallback(rivulet_connectors::committer_for)).await?;
    let dir = std::env::temp_dir().join(format!("rivulet-dry-run-{}-{}", std::process::id(), now_ms()));
    let opts = RunOptions::new(BackendKind::Memory, dir.clone());
    let setup = OperatorSetup { graph, engine, opts: &opts, point: Some(&point), run_dir: &dir };
    let result = async {
        for node in &graph.nodes {
            let NodeKind::Operator { plugin_path, spec } = &node.kind else { continue };
            if !uids.contains(&spec.uid) {
                continue;
            }
            let (e, path) = (engine.clone(), plugin_path.clone());
            let plugin = tokio::task::spawn_blocking(move || e.load_file(&path)).await.map_err(|e| JobError::Internal(e.to_string()))??;
            for t in 0..node.parallelism {
                let metrics = Arc::new(NodeMetrics::new(&node.id));
                let s = SubtaskSpec { spec, plugin: plugin.clone(), subtask: t, parallelism: node.parallelism };
                setup.start(s, Vec::new(), metrics, false).await?;
            }
        }
        Ok(())
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}
