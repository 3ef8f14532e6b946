// How numbers, sizes, durations and times read on the page.

/** `1.2k`, `3.4M`: a count or rate with an SI suffix. */
export function fmtCount(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '–';
  const a = Math.abs(n);
  if (a >= 1e9) return `${trim(n / 1e9)}G`;
  if (a >= 1e6) return `${trim(n / 1e6)}M`;
  if (a >= 1e3) return `${trim(n / 1e3)}k`;
  return a >= 10 || Number.isInteger(n) ? String(Math.round(n)) : n.toFixed(1);
}

function trim(x: number): string {
  return (Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2)).replace(/\.?0+$/, '');
}

/** `12.3k/s`. */
export function fmtRate(perSecond: number | null | undefined): string {
  return perSecond === null || perSecond === undefined ? '–' : `${fmtCount(perSecond)}/s`;
}

/** `512 B`, `1.5 MiB`. */
export function fmtBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return i === 0 ? `${v} B` : `${trim(v)} ${units[i]}`;
}

/** `850 ms`, `12.5 s`, `3m 20s`, `2h 5m`, `3d 4h`. */
export function fmtDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '–';
  if (ms < 0) return fmtDuration(0);
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${trim(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${Math.floor(s % 60)}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** `5 s ago`, from a time in ms since the epoch. */
export function fmtAge(atMs: number | null | undefined, nowMs: number = Date.now()): string {
  if (atMs === null || atMs === undefined) return 'never';
  return `${fmtDuration(Math.max(0, nowMs - atMs))} ago`;
}

/** Local date and time of ms since the epoch: `2026-11-28 22:05:27`. */
export function fmtTime(atMs: number | null | undefined): string {
  if (atMs === null || atMs === undefined) return '–';
  const d = new Date(atMs);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** `sha256:0123456789ab…`. */
export function shortDigest(digest: string): string {
  return digest.length > 19 ? `${digest.slice(0, 19)}…` : digest;
}

/** A share as `42%`. */
export function fmtPercent(share: number | null | undefined): string {
  if (share === null || share === undefined || !Number.isFinite(share)) return '–';
  return `${Math.round(share * 100)}%`;
}
