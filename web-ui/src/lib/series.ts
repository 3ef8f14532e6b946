// Rates from counters sampled over time, and bounded time series for the charts.

/** Per-second rates of monotonic counters between successive samples. */
export class RateTracker {
  private prev: { t: number; counters: Record<string, number> } | null = null;

  /**
   * Record a sample at `tMs`; returns the rate of each counter since the previous
   * sample (none for the first sample). A counter that went down was reset (a new run
   * after a restart or swap): its rate counts from zero.
   */
  update(tMs: number, counters: Record<string, number>): Record<string, number> | null {
    const prev = this.prev;
    this.prev = { t: tMs, counters: { ...counters } };
    if (!prev || tMs <= prev.t) return null;
    const dt = (tMs - prev.t) / 1000;
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(counters)) {
      const before = prev.counters[k];
      const delta = before === undefined || v < before ? v : v - before;
      out[k] = delta / dt;
    }
    return out;
  }
}

/** A point of a series. */
export interface Point {
  t: number;
  v: number;
}

/** The last `capacity` points of a time series. */
export class Series {
  readonly points: Point[] = [];
  constructor(readonly capacity = 120) {}

  push(t: number, v: number): void {
    this.points.push({ t, v });
    if (this.points.length > this.capacity) this.points.splice(0, this.points.length - this.capacity);
  }

  last(): number | null {
    return this.points.length ? this.points[this.points.length - 1].v : null;
  }

  max(): number {
    return this.points.reduce((m, p) => Math.max(m, p.v), 0);
  }
}
