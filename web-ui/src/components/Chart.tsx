// A small SVG line chart of one or more time series sharing a y axis.
import type { Point } from '../lib/series';

export interface Line {
  label: string;
  points: Point[];
  className: string;
}

const W = 520;
const H = 150;
const PAD_L = 56;
const PAD_B = 20;
const PAD_T = 10;

/** The nice upper bound of an axis: 1, 2 or 5 × 10^k at or above `max`. */
export function niceMax(max: number): number {
  if (!(max > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 5, 10]) if (m * p >= max) return m * p;
  return 10 * p;
}

export function Chart({
  title,
  lines,
  format,
  windowMs = 120_000,
  emptyText = 'collecting samples…',
}: {
  title: string;
  lines: Line[];
  format: (v: number) => string;
  windowMs?: number;
  emptyText?: string;
}) {
  const all = lines.flatMap((l) => l.points);
  const tMax = all.reduce((m, p) => Math.max(m, p.t), 0);
  const tMin = tMax - windowMs;
  const top = niceMax(all.reduce((m, p) => Math.max(m, p.v), 0));
  const x = (t: number) => PAD_L + ((t - tMin) / windowMs) * (W - PAD_L - 4);
  const y = (v: number) => PAD_T + (1 - v / top) * (H - PAD_T - PAD_B);
  return (
    <figure class="chart">
      <figcaption>
        {title}
        <span class="legend">
          {lines.map((l) => (
            <span key={l.label} class={`key ${l.className}`}>
              {l.label}: {l.points.length ? format(l.points[l.points.length - 1].v) : '–'}
            </span>
          ))}
        </span>
      </figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={title} preserveAspectRatio="none">
        {(all.length ? [0, 0.5, 1] : [0]).map((f) => (
          <g key={f}>
            <line class="grid" x1={PAD_L} x2={W} y1={y(top * f)} y2={y(top * f)} />
            <text class="axis" x={PAD_L - 6} y={y(top * f) + 4} text-anchor="end">
              {format(top * f)}
            </text>
          </g>
        ))}
        <text class="axis" x={PAD_L} y={H - 4}>
          −{Math.round(windowMs / 1000)} s
        </text>
        <text class="axis" x={W - 4} y={H - 4} text-anchor="end">
          now
        </text>
        {all.length === 0 && (
          <text class="axis" x={(W + PAD_L) / 2} y={H / 2} text-anchor="middle">
            {emptyText}
          </text>
        )}
        {lines.map((l) => (
          <polyline
            key={l.label}
            class={`line ${l.className}`}
            points={l.points
              .filter((p) => p.t >= tMin)
              .map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`)
              .join(' ')}
          />
        ))}
      </svg>
    </figure>
  );
}
