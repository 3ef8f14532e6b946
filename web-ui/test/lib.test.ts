import { describe, expect, it } from 'vitest';
import type { NodeRole } from '../src/api/client';
import { fmtAge, fmtBytes, fmtCount, fmtDuration, fmtPercent, fmtRate, shortDigest } from '../src/lib/format';
import { href, parseRoute } from '../src/lib/hooks';
import { ioCounters, nodeCounters, outputLagMs, pressureLevel, watermarkLagMs } from '../src/lib/jobstats';
import { edgePath, layoutGraph, NODE_W } from '../src/lib/layout';
import { allows } from '../src/lib/role';
import { RateTracker, Series } from '../src/lib/series';

describe('format', () => {
  it('counts and rates', () => {
    expect(fmtCount(0)).toBe('0');
    expect(fmtCount(999)).toBe('999');
    expect(fmtCount(1234)).toBe('1.23k');
    expect(fmtCount(2_500_000)).toBe('2.5M');
    expect(fmtCount(3.25)).toBe('3.3');
    expect(fmtCount(null)).toBe('–');
    expect(fmtRate(12_300)).toBe('12.3k/s');
    expect(fmtRate(undefined)).toBe('–');
  });
  it('bytes', () => {
    expect(fmtBytes(512)).toBe('512 B');
    expect(fmtBytes(1536)).toBe('1.5 KiB');
    expect(fmtBytes(1024 ** 3)).toBe('1 GiB');
  });
  it('durations and ages', () => {
    expect(fmtDuration(850)).toBe('850 ms');
    expect(fmtDuration(12_500)).toBe('12.5 s');
    expect(fmtDuration(200_000)).toBe('3m 20s');
    expect(fmtDuration(2 * 3600_000 + 5 * 60_000)).toBe('2h 5m');
    expect(fmtDuration(-5)).toBe('0 ms');
    expect(fmtAge(1000, 6000)).toBe('5 s ago');
    expect(fmtAge(null)).toBe('never');
  });
  it('digests and shares', () => {
    expect(shortDigest('sha256:0123456789abcdef0123')).toBe('sha256:0123456789ab…');
    expect(fmtPercent(0.425)).toBe('43%');
  });
});

describe('RateTracker', () => {
  it('gives per-second rates between samples', () => {
    const r = new RateTracker();
    expect(r.update(0, { a: 0 })).toBeNull();
    expect(r.update(2000, { a: 100 })).toEqual({ a: 50 });
    expect(r.update(3000, { a: 400 })).toEqual({ a: 300 });
  });
  it('treats a counter that went down as reset (a new run)', () => {
    const r = new RateTracker();
    r.update(0, { a: 1000 });
    expect(r.update(1000, { a: 30 })).toEqual({ a: 30 });
  });
  it('ignores samples that do not move forward in time', () => {
    const r = new RateTracker();
    r.update(1000, { a: 1 });
    expect(r.update(1000, { a: 5 })).toBeNull();
  });
});

describe('Series', () => {
  it('keeps the last points', () => {
    const s = new Series(3);
    for (let i = 0; i < 5; i++) s.push(i, i * 10);
    expect(s.points.map((p) => p.v)).toEqual([20, 30, 40]);
    expect(s.last()).toBe(40);
    expect(s.max()).toBe(40);
  });
});

describe('layoutGraph', () => {
  const nodes = [{ id: 'src' }, { id: 'a' }, { id: 'b' }, { id: 'sink' }];
  const edges = [
    { from: 'src', to: 'a' },
    { from: 'src', to: 'b' },
    { from: 'a', to: 'sink' },
    { from: 'b', to: 'sink' },
  ];
  it('puts every edge left to right, columns by longest path', () => {
    const l = layoutGraph(nodes, edges);
    expect(l.nodes.get('src')?.column).toBe(0);
    expect(l.nodes.get('a')?.column).toBe(1);
    expect(l.nodes.get('b')?.column).toBe(1);
    expect(l.nodes.get('sink')?.column).toBe(2);
    for (const e of edges) expect(l.nodes.get(e.from)!.x).toBeLessThan(l.nodes.get(e.to)!.x);
    expect(l.nodes.get('a')?.y).not.toBe(l.nodes.get('b')?.y);
    expect(l.width).toBeGreaterThan(3 * NODE_W);
  });
  it('a longer branch pushes the join further right', () => {
    const l = layoutGraph([{ id: 's' }, { id: 'x' }, { id: 'y' }, { id: 'j' }], [
      { from: 's', to: 'x' },
      { from: 'x', to: 'y' },
      { from: 'y', to: 'j' },
      { from: 's', to: 'j' },
    ]);
    expect(l.nodes.get('j')?.column).toBe(3);
  });
  it('survives cycles, unknown nodes and an empty graph', () => {
    const l = layoutGraph([{ id: 'a' }, { id: 'b' }], [
      { from: 'a', to: 'b' },
      { from: 'b', to: 'a' },
      { from: 'a', to: 'ghost' },
    ]);
    expect(l.nodes.size).toBe(2);
    expect(layoutGraph([], []).width).toBe(0);
  });
  it('draws edges from the right side to the left side', () => {
    const p = edgePath({ x: 0, y: 0, column: 0, row: 0 }, { x: 300, y: 100, column: 1, row: 0 });
    expect(p.startsWith(`M${NODE_W},`)).toBe(true);
  });
});

describe('job stats', () => {
  const node = (id: string, kind: NodeRole, records_in: number, records_out: number, watermark: number | null = null) => ({
    id,
    kind,
    records_in,
    records_out,
    watermark,
    parallelism: 1,
    late_records: 0,
    dead_letter_records: 0,
    backpressure: 0,
    guest_ms: 0,
    memory_bytes: 0,
    workers: [] as number[],
  });
  const nodes = [node('in', 'source', 0, 100), node('op', 'operator', 100, 90), node('out', 'sink', 90, 0, 9000), node('out2', 'sink', 5, 0, 9500)];
  it('counts records at the sources and sinks', () => {
    expect(ioCounters({ nodes })).toEqual({ in: 100, out: 95 });
    expect(nodeCounters(nodes)['op:out']).toBe(90);
  });
  it('measures watermark lag, the worst sink', () => {
    expect(watermarkLagMs({ watermark: 9000 }, 10_000)).toBe(1000);
    expect(watermarkLagMs({ watermark: null }, 10_000)).toBeNull();
    expect(watermarkLagMs({ watermark: 9223372036854775807 }, 10_000)).toBeNull();
    expect(outputLagMs({ nodes }, 10_000)).toBe(1000);
  });
  it('grades backpressure', () => {
    expect(pressureLevel(0.05)).toBe('ok');
    expect(pressureLevel(0.2)).toBe('low');
    expect(pressureLevel(0.9)).toBe('high');
  });
});

describe('routes', () => {
  it('round-trips', () => {
    for (const r of [{ page: 'overview' }, { page: 'plugins' }, { page: 'submit' }, { page: 'job', id: 'a b/c' }] as const) {
      expect(parseRoute(href(r))).toEqual(r);
    }
    expect(parseRoute('#/nowhere').page).toBe('missing');
    expect(parseRoute('').page).toBe('overview');
  });
});

describe('roles', () => {
  it('each role allows what the roles below it do', () => {
    expect(allows('viewer', 'viewer')).toBe(true);
    expect(allows('viewer', 'operator')).toBe(false);
    expect(allows('operator', 'operator')).toBe(true);
    expect(allows('operator', 'admin')).toBe(false);
    expect(allows('admin', 'operator')).toBe(true);
  });
});
