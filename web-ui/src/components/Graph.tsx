// The job graph: operators and connectors as boxes, edges as arrows labelled with
// their partitioning; each box shows parallelism, throughput, backpressure,
// watermark lag and, when the job runs on workers, which workers run its subtasks.
import type { EdgeStatus, NodeStatus } from '../api/client';
import { fmtDuration, fmtPercent, fmtRate } from '../lib/format';
import { pressureLevel, watermarkLagMs } from '../lib/jobstats';

/** Where a node's subtasks run: `0→#1, 1→#2` (subtask → worker), or `server`. */
export function placementText(n: NodeStatus): string {
  return n.workers.length ? n.workers.map((w, i) => `${i}→#${w}`).join(', ') : 'server';
}
import { NODE_H, NODE_W, edgePath, layoutGraph } from '../lib/layout';

export function JobGraph({ nodes, edges, rates, nowMs }: { nodes: NodeStatus[]; edges: EdgeStatus[]; rates: Record<string, number> | null; nowMs: number }) {
  const layout = layoutGraph(nodes, edges);
  return (
    <div class="graph-scroll" tabIndex={0} aria-label="job graph (scrollable)">
      <div class="visually-hidden">
      <table>
        <caption>Operators and connectors of the job</caption>
        <thead>
          <tr>
            <th>Node</th>
            <th>Kind</th>
            <th>Plugin</th>
            <th>Parallelism</th>
            <th>Records in per second</th>
            <th>Records out per second</th>
            <th>Backpressure</th>
            <th>Watermark lag</th>
            <th>Subtasks on workers</th>
            <th>Feeds</th>
          </tr>
        </thead>
        <tbody>
          {nodes.map((n) => {
            const lag = watermarkLagMs(n, nowMs);
            return (
              <tr key={n.id}>
                <td>{n.id}</td>
                <td>{n.kind}</td>
                <td>{n.plugin ?? ''}</td>
                <td>{n.parallelism}</td>
                <td>{fmtRate(rates?.[`${n.id}:in`])}</td>
                <td>{fmtRate(rates?.[`${n.id}:out`])}</td>
                <td>{fmtPercent(n.backpressure)}</td>
                <td>{lag === null ? '' : fmtDuration(lag)}</td>
                <td data-testid="placement">{placementText(n)}</td>
                <td>
                  {edges
                    .filter((e) => e.from === n.id)
                    .map((e) => `${e.to} (${e.partitioning}${e.tag ? `, ${e.tag}` : ''})`)
                    .join(', ')}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      </div>
      <svg
        class="graph"
        width={layout.width}
        height={layout.height}
        viewBox={`0 0 ${layout.width} ${layout.height}`}
        aria-hidden="true"
      >
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="8" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path d="M0,0 L10,5 L0,10 z" class="arrowhead" />
          </marker>
        </defs>
        {edges.map((e) => {
          const a = layout.nodes.get(e.from);
          const b = layout.nodes.get(e.to);
          if (!a || !b) return null;
          const label = e.tag ? `${e.partitioning} · ${e.tag}` : e.partitioning;
          return (
            <g key={`${e.from}->${e.to}:${e.tag ?? ''}`} class={`edge ${e.tag ? 'side' : ''}`}>
              <path d={edgePath(a, b)} marker-end="url(#arrow)" />
              <text x={(a.x + NODE_W + b.x) / 2} y={(a.y + b.y) / 2 + NODE_H / 2 - 6} text-anchor="middle">
                {label}
              </text>
            </g>
          );
        })}
        {nodes.map((n) => {
          const p = layout.nodes.get(n.id);
          if (!p) return null;
          const level = pressureLevel(n.backpressure);
          const lag = watermarkLagMs(n, nowMs);
          const rateIn = rates?.[`${n.id}:in`];
          const rateOut = rates?.[`${n.id}:out`];
          const flow = n.kind === 'source' ? `out ${fmtRate(rateOut)}` : n.kind === 'sink' ? `in ${fmtRate(rateIn)}` : `in ${fmtRate(rateIn)} · out ${fmtRate(rateOut)}`;
          return (
            <g key={n.id} class={`node kind-${n.kind} pressure-${level}`} transform={`translate(${p.x},${p.y})`} data-node={n.id}>
              <title>
                {`${n.id} (${n.kind}${n.plugin ? `, ${n.plugin}` : ''}), parallelism ${n.parallelism}; records in ${n.records_in}, out ${n.records_out}; backpressure ${fmtPercent(n.backpressure)}${lag === null ? '' : `; watermark lag ${fmtDuration(lag)}`}${n.dead_letter_records ? `; ${n.dead_letter_records} undecodable records to dead-letter` : ''}${n.workers.length ? `; subtasks on workers ${placementText(n)}` : ''}`}
              </title>
              <rect width={NODE_W} height={NODE_H} rx="8" />
              <rect class="pressure-bar" x="0" y={NODE_H - 5} width={Math.max(2, NODE_W * Math.min(1, n.backpressure))} height="5" rx="2" />
              <text x="10" y="18" class="node-title">
                {n.id.length > 22 ? `${n.id.slice(0, 21)}…` : n.id}
              </text>
              <text x={NODE_W - 10} y="18" class="node-par" text-anchor="end">
                ×{n.parallelism}
              </text>
              <text x="10" y="35" class="node-sub">
                {n.plugin ?? n.kind}
                {n.workers.length ? ` · on #${[...new Set(n.workers)].join(' #')}` : ''}
              </text>
              <text x="10" y="52" class="node-sub">
                {flow}
              </text>
              <text x="10" y="67" class="node-sub">
                bp {fmtPercent(n.backpressure)}
                {lag === null ? '' : ` · wm lag ${fmtDuration(lag)}`}
                {n.dead_letter_records ? ` · ${n.dead_letter_records} dead` : ''}
              </text>
            </g>
          );
        })}
      </svg>
    </div>
  );
}
