// What the overview and the job page derive from a job's live detail.
import type { JobDetail, NodeStatus } from '../api/client';

/** Records entering (at the sources) and leaving (at the sinks), as counters. */
export function ioCounters(detail: Pick<JobDetail, 'nodes'>): { in: number; out: number } {
  let input = 0;
  let output = 0;
  for (const n of detail.nodes) {
    if (n.kind === 'source') input += n.records_out;
    if (n.kind === 'sink') output += n.records_in;
  }
  return { in: input, out: output };
}

/** Per-node counters keyed `id:in` / `id:out`, for per-operator throughput. */
export function nodeCounters(nodes: NodeStatus[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const n of nodes) {
    out[`${n.id}:in`] = n.records_in;
    out[`${n.id}:out`] = n.records_out;
  }
  return out;
}

/**
 * How far event time lags behind the wall clock at a node: now − its watermark, in
 * ms. None before the first watermark, or once it is final (the input ended).
 */
export function watermarkLagMs(node: Pick<NodeStatus, 'watermark'>, nowMs: number): number | null {
  const wm = node.watermark;
  if (wm === null || wm === undefined) return null;
  if (wm >= Number.MAX_SAFE_INTEGER || wm > nowMs + 365 * 24 * 3600 * 1000) return null;
  return Math.max(0, nowMs - wm);
}

/** The largest lag over the job's sinks: how stale the output's event time is. */
export function outputLagMs(detail: Pick<JobDetail, 'nodes'>, nowMs: number): number | null {
  let worst: number | null = null;
  for (const n of detail.nodes) {
    if (n.kind !== 'sink') continue;
    const lag = watermarkLagMs(n, nowMs);
    if (lag !== null) worst = worst === null ? lag : Math.max(worst, lag);
  }
  return worst;
}

/** A colour class for backpressure: ok under 10 %, high over 50 %. */
export function pressureLevel(share: number): 'ok' | 'low' | 'high' {
  return share > 0.5 ? 'high' : share > 0.1 ? 'low' : 'ok';
}

/** Whether a job can be operated on (savepoint, stop, upgrade, rescale). */
export function isRunning(status: string): boolean {
  return status === 'running';
}

/** The operator uids of a job (what an upgrade can target). */
export function operatorUids(detail: Pick<JobDetail, 'plugins'>): string[] {
  return Object.keys(detail.plugins).sort();
}
