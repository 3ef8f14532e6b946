// Page-load benchmark of the web UI: a real `rivulet server` (RIVULET_BIN; the release
// binary by default) with N running jobs, loaded in Debian's Chromium — cold (new
// browser context, empty cache) and warm (reload) — reporting the median and worst time
// from navigation to the overview showing the jobs with live rates, and the size of the
// embedded assets. Prints a Markdown table for docs/benchmarks.md.
//   node bench/load.mjs [runs=15] [jobs=5]
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../..');
const target = process.env.CARGO_TARGET_DIR ?? join(repo, 'target');
const bin = process.env.RIVULET_BIN ?? join(target, 'release/rivulet');
const runs = Number(process.argv[2] ?? 15);
const jobs = Number(process.argv[3] ?? 5);
const work = mkdtempSync(join(tmpdir(), 'rivulet-ui-bench-'));

const server = spawn(bin, ['server', '--listen', '127.0.0.1:0', '--data-dir', join(work, 'data')], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
let log = '';
const url = await new Promise((ok, fail) => {
  server.stderr.on('data', (c) => {
    log += c;
    const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(log);
    if (m) ok(m[1]);
  });
  server.on('exit', () => fail(new Error(log)));
});
const api = (path, init) => fetch(url + path, init).then(async (r) => (r.ok ? r.json() : Promise.reject(new Error(await r.text()))));
const wasm = await import('node:fs').then((fs) => fs.readFileSync(join(repo, 'plugins-examples/counter-v1/counter_v1.wasm')));
await api('/v1/plugins?name=counter&version=1', { method: 'POST', headers: { 'Content-Type': 'application/wasm' }, body: wasm });
for (let i = 0; i < jobs; i++) {
  const spec = {
    name: `bench-${i}`,
    sources: [{ id: 'gen', type: 'generator', count: 100000000, keys: 10, rate: 1000 }],
    operators: [{ uid: 'counter', plugin: 'counter@1', inputs: ['gen'], key_by: { field: 'key' } }],
    sinks: [{ id: 'out', type: 'file', path: join(work, `out-${i}`), inputs: ['counter'] }],
  };
  await api('/v1/jobs', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ spec }) });
}
const browser = await chromium.launch({
  executablePath: process.env.RIVULET_CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
});
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const cold = [];
const warm = [];
// Rates need two polls (one second apart, by design): "live" is when every job row
// shows one.
const loaded = (page) =>
  page.waitForFunction((n) => {
    const cells = [...document.querySelectorAll('[data-testid="rate-in"]')];
    return cells.length === n && cells.every((c) => c.textContent.endsWith('/s'));
  }, jobs);
const firstScreen = (page) => page.waitForSelector('table.jobs');
const cold1 = [];
for (let i = 0; i < runs; i++) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  const t0 = performance.now();
  await page.goto(url + '/');
  await firstScreen(page);
  cold1.push(performance.now() - t0);
  await loaded(page);
  cold.push(performance.now() - t0);
  const t1 = performance.now();
  await page.reload();
  await firstScreen(page);
  warm.push(performance.now() - t1);
  await ctx.close();
}
await browser.close();
process.kill(-server.pid, 'SIGKILL');
const dist = join(repo, 'web-ui/dist/assets');
const sizes = readdirSync(dist).map((f) => [f, statSync(join(dist, f)).size]);
const fmt = (ms) => `${Math.round(ms)} ms`;
console.log(`| load of the overview with ${jobs} running jobs (${runs} runs) | median | worst |`);
console.log('|---|---|---|');
console.log(`| cold (new context, empty cache): first screen with the job table | ${fmt(median(cold1))} | ${fmt(Math.max(...cold1))} |`);
console.log(`| cold: every job's live rate shown (needs a second poll, 1 s later) | ${fmt(median(cold))} | ${fmt(Math.max(...cold))} |`);
console.log(`| warm reload: first screen with the job table | ${fmt(median(warm))} | ${fmt(Math.max(...warm))} |`);
console.log(`\nassets: ${sizes.map(([f, s]) => `${f.replace(/-[\w]+\./, '.')} ${(s / 1024).toFixed(1)} KiB`).join(', ')}`);
rmSync(work, { recursive: true, force: true });
