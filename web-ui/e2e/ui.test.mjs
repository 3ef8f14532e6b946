// End-to-end: a real `rivulet server` on 127.0.0.1 and the machine's Chromium, driven by
// playwright-core. One story, as a user would tell it: enter the token, upload a plugin
// (a broken one first), submit a job, watch throughput rise, take a savepoint, upgrade
// counter v1 → v2 with the dry run shown first, find the swap in the history, stop with
// a savepoint. Screenshots of every page go to test-output/screenshots/ (and to
// docs/ui/ with RIVULET_DOCS_SCREENSHOTS=1).
//
// Needs: RIVULET_BIN (default: $CARGO_TARGET_DIR/debug/rivulet), the example plugins
// built (`make plugins`), Chromium at RIVULET_CHROMIUM (default /usr/bin/chromium).
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../..');
const targetDir = process.env.CARGO_TARGET_DIR ?? join(repo, 'target');
const bin = process.env.RIVULET_BIN ?? join(targetDir, 'debug/rivulet');
const chromiumPath = process.env.RIVULET_CHROMIUM ?? '/usr/bin/chromium';
const shots = join(here, '../test-output/screenshots');
const docsShots = process.env.RIVULET_DOCS_SCREENSHOTS === '1' ? join(repo, 'docs/ui') : null;
const TOKEN = 'ui-test-token-4f1c9a';
const VIEWER_TOKEN = 'ui-test-viewer-token-77b2';

const counterV1 = join(repo, 'plugins-examples/counter-v1/counter_v1.wasm');
const counterV2 = join(repo, 'plugins-examples/counter-v2/counter_v2.wasm');
const trapFixture = join(repo, 'tests/fixtures/wasm/fixture_trap.wasm');

let server;
let serverUrl;
let serverLog = '';
let browser;
let page;
let work;
const consoleErrors = [];
const expectedFailures = []; // responses the test provokes on purpose (a bad upload)

/** Start `rivulet server` on a free loopback port; resolves with its URL. */
function startServer(dataDir, tokenFile) {
  return new Promise((resolveUrl, reject) => {
    const child = spawn(bin, ['server', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--auth-token-file', tokenFile, '--checkpoint-interval', '500ms', '--allow-path', dirname(dataDir)], {
      stdio: ['ignore', 'ignore', 'pipe'],
      detached: true,
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'info' },
    });
    server = child;
    const timer = setTimeout(() => reject(new Error(`the server did not start in 60 s:\n${serverLog}`)), 60_000);
    child.stderr.on('data', (chunk) => {
      serverLog += chunk.toString();
      const m = /server listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(serverLog);
      if (m) {
        clearTimeout(timer);
        resolveUrl(m[1]);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the server exited (${code}):\n${serverLog}`));
    });
    child.on('error', reject);
  });
}

async function shot(name) {
  const file = join(shots, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  if (docsShots) copyFileSync(file, join(docsShots, `${name}.png`));
}

before(async () => {
  for (const f of [bin, counterV1, counterV2, trapFixture, chromiumPath]) assert.ok(existsSync(f), `missing ${f}: run \`make test\` (it builds the server, the plugins and installs Chromium)`);
  mkdirSync(shots, { recursive: true });
  if (docsShots) mkdirSync(docsShots, { recursive: true });
  work = mkdtempSync(join(tmpdir(), 'rivulet-ui-'));
  const tokenFile = join(work, 'token');
  writeFileSync(tokenFile, `admin ${TOKEN}\nviewer ${VIEWER_TOKEN}\n`);
  serverUrl = await startServer(join(work, 'data'), tokenFile);
  browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    // The flags that work on a closed network: no background fetches, no sync, no QUIC.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  page = await context.newPage();
  page.on('console', (msg) => {
    if (msg.type() === 'error') consoleErrors.push(`${msg.text()} @ ${msg.location().url}`);
  });
  page.on('pageerror', (err) => consoleErrors.push(`page error: ${err.message}`));
  // Every request of the page must go to the server under test, nowhere else.
  page.on('request', (req) => {
    const url = req.url();
    if (!url.startsWith(serverUrl) && !url.startsWith('data:')) consoleErrors.push(`request outside the server: ${url}`);
  });
});

after(async () => {
  await browser?.close().catch(() => undefined);
  if (server && server.exitCode === null) {
    try {
      process.kill(-server.pid, 'SIGKILL');
    } catch {
      server.kill('SIGKILL');
    }
  }
  if (work) rmSync(work, { recursive: true, force: true });
});

/** The API, as the test's own independent client (for checks, never for the actions). */
async function apiGet(path) {
  const resp = await fetch(serverUrl + path, { headers: { Authorization: `Bearer ${TOKEN}` } });
  assert.equal(resp.status, 200, `${path}: ${resp.status}`);
  return resp.json();
}

async function waitFor(what, check, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await check();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}

/** The app's main navigation link named `name`. */
const navLink = (name) => page.getByRole('navigation', { name: 'main' }).getByRole('link', { name, exact: true });

test('a user operates and hot-swaps a job from the browser', async (top) => {
  let jobId;
  // The steps are one story: after a failed step the rest are skipped, not failed again.
  let broken = null;
  const t = {
    test: (name, fn) =>
      top.test(name, { skip: broken ? `the step "${broken}" failed` : false }, async () => {
        try {
          await fn();
        } catch (e) {
          broken = name;
          throw e;
        }
      }),
  };

  await t.test('the page loads and asks for the token once', async () => {
    const t0 = Date.now();
    await page.goto(serverUrl + '/');
    await page.getByLabel('API token').waitFor();
    const firstPaintMs = Date.now() - t0;
    const nav = await page.evaluate(() => JSON.stringify(performance.getEntriesByType('navigation')[0]));
    writeFileSync(join(shots, '..', 'load-timing.json'), JSON.stringify({ firstScreenMs: firstPaintMs, navigation: JSON.parse(nav) }, null, 2));
    console.log(`# page load: first screen after ${firstPaintMs} ms (domContentLoaded ${Math.round(JSON.parse(nav).domContentLoadedEventEnd)} ms)`);
    await shot('token');
    await page.getByLabel('API token').fill(TOKEN);
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByText('No jobs yet').waitFor();
    await page.getByText('No plugins yet').waitFor();
    await shot('overview-empty');
    // Kept for the session: a reload does not ask again.
    await page.reload();
    await page.getByText('No jobs yet').waitFor();
  });

  await t.test('the header and navigation are keyboard reachable', async () => {
    await page.keyboard.press('Tab');
    const seen = [];
    for (let i = 0; i < 8; i++) {
      await page.keyboard.press('Tab');
      seen.push(await page.evaluate(() => document.activeElement?.textContent?.trim() ?? ''));
    }
    for (const want of ['Overview', 'Plugins', 'Submit job']) assert.ok(seen.includes(want), `Tab reached ${JSON.stringify(seen)}`);
  });

  await t.test('a broken upload shows the server’s error and stores nothing', async () => {
    await navLink('Plugins').click();
    await page.getByText('Drop a .wasm component here').waitFor();
    // Dropped, as a user drags a file onto the page.
    const dt = await page.evaluateHandle(() => {
      const d = new DataTransfer();
      d.items.add(new File([new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00, 0xde, 0xad])], 'broken.wasm', { type: 'application/wasm' }));
      return d;
    });
    await page.dispatchEvent('.dropzone', 'drop', { dataTransfer: dt });
    await page.getByLabel('Version').fill('1');
    expectedFailures.push('/v1/plugins');
    await page.getByRole('button', { name: 'Upload' }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    const text = await alert.innerText();
    assert.match(text, /refused the plugin/);
    // The server's own words (it names what is wrong with the bytes).
    const plugins = await apiGet('/v1/plugins');
    assert.equal(plugins.length, 0, 'nothing stored');
    const direct = await fetch(`${serverUrl}/v1/plugins?name=broken&version=1`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/wasm' },
      body: new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00, 0xde, 0xad]),
    });
    const words = (await direct.json()).error;
    assert.ok(text.includes(words), `page shows ${JSON.stringify(text)}; server says ${JSON.stringify(words)}`);
    await shot('plugins-bad-upload');
  });

  await t.test('plugins upload through the file picker', async () => {
    for (const [file, version] of [
      [counterV1, '1'],
      [counterV2, '2'],
    ]) {
      await page.reload();
      await page.locator('input[type=file]').setInputFiles(file);
      await page.getByLabel('Name').fill('counter');
      await page.getByLabel('Version').fill(version);
      await page.getByRole('button', { name: 'Upload' }).click();
      await page.getByText(`Registered counter@${version}`).waitFor({ timeout: 120_000 });
    }
    await page.locator('[data-plugin="counter@2"]').waitFor();
    await shot('plugins');
    const names = (await apiGet('/v1/plugins')).map((p) => `${p.name}@${p.version}`).sort();
    assert.deepEqual(names, ['counter@1', 'counter@2']);
  });

  await t.test('a job is submitted from a pasted spec with a picked plugin', async () => {
    await navLink('Submit job').click();
    const spec = readFileSync(join(repo, 'plugins-examples/counter-v1/server-job.yaml'), 'utf8')
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .join('\n')
      .replace('plugin: counter@1', 'plugin: ')
      .replace('count: 200000', 'count: 100000000');
    await page.getByLabel('Job spec (YAML or JSON)').fill(spec);
    // Pick the plugin: put the cursor after `plugin: ` and insert the reference.
    await page.getByLabel('Job spec (YAML or JSON)').evaluate((ta) => {
      const at = ta.value.indexOf('plugin: ') + 'plugin: '.length;
      ta.setSelectionRange(at, at);
    });
    await page.getByRole('button', { name: 'counter@1' }).click();
    assert.match(await page.getByLabel('Job spec (YAML or JSON)').inputValue(), /plugin: counter@1\n/);
    await page.getByLabel(/Parameters/).fill(`output=${join(work, 'out')}`);
    await page.getByLabel('Parallelism').fill('2');
    await shot('submit');
    await page.getByRole('button', { name: 'Submit job' }).click();
    await page.waitForURL(/#\/jobs\//);
    jobId = decodeURIComponent(page.url().split('#/jobs/')[1]);
    assert.ok(jobId);
  });

  await t.test('throughput rises on the overview and the job page', async () => {
    await navLink('Overview').click();
    const cell = page.locator(`tr[data-job="${jobId}"] [data-testid="rate-in"]`);
    await waitFor('a positive input rate on the overview', async () => {
      const text = (await cell.innerText()).trim();
      return text !== '–' && !/^0(\/s)?$/.test(text.replace('/s', '')) && text;
    });
    await shot('overview');
    await page.locator(`tr[data-job="${jobId}"] a`).click();
    await page.locator('svg.graph [data-node="counter"]').waitFor();
    const graphText = await page.locator('svg.graph').textContent();
    for (const want of ['gen', 'counter', 'out', 'counter@1', '×2', 'hash']) assert.ok(graphText.includes(want), `graph lacks ${want}: ${graphText}`);
    const line = (chart, cls) => page.getByRole('img', { name: chart }).locator(`polyline.${cls}`);
    await waitFor('the throughput chart to draw', async () => (await line('Throughput (records/s)', 'c1').getAttribute('points'))?.split(' ').length >= 3);
    await waitFor('the latency chart to draw', async () => (await line(/End-to-end latency/, 'c1').getAttribute('points'))?.split(' ').length >= 2);
    await waitFor('a completed checkpoint in the table', async () => (await page.locator('[data-testid="checkpoints"] tbody tr').count()) > 0);
    await shot('job');
  });

  await t.test('a savepoint is triggered and completes', async () => {
    await page.getByRole('button', { name: 'Take savepoint' }).click();
    await page.getByRole('tab', { name: /savepoints/ }).waitFor();
    await waitFor('the savepoint to complete', async () => (await page.locator('[data-testid="savepoints"] .sp-completed').count()) > 0);
    const record = await apiGet(`/v1/jobs/${jobId}`);
    assert.equal(record.savepoints.filter((s) => s.status === 'completed').length, 1);
    await shot('job-savepoints');
  });

  await t.test('counter v1 → v2: dry run first, then the swap and its downtime', async () => {
    await page.getByRole('button', { name: 'Upgrade…' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    assert.equal(await dialog.getByLabel('New version').inputValue(), 'counter@2');
    await dialog.getByRole('button', { name: 'Check (dry run)' }).click();
    await dialog.getByTestId('dry-run').waitFor();
    assert.match(await dialog.getByTestId('dry-run').innerText(), /Dry run passed/);
    // Nothing changed yet.
    assert.equal((await apiGet(`/v1/jobs/${jobId}`)).plugins.counter.version, '1');
    await shot('upgrade-dry-run');
    await dialog.getByRole('button', { name: 'Swap now' }).click();
    await dialog.getByTestId('swap-result').waitFor({ timeout: 120_000 });
    const result = await dialog.getByTestId('swap-result').innerText();
    assert.match(result, /Swapped to counter@2 with .* of downtime/);
    await shot('upgrade-swapped');
    await dialog.getByRole('button', { name: 'Close' }).click();
    const swapRow = page.locator('[data-testid="history"] tr.history-swap');
    await swapRow.waitFor();
    const row = await swapRow.innerText();
    assert.match(row, /counter@1 → counter@2/);
    const history = (await apiGet(`/v1/jobs/${jobId}`)).history.filter((h) => h.kind === 'swap');
    assert.equal(history.length, 1);
    assert.ok(history[0].downtime_ms >= 0);
    await shot('job-history');
  });

  await t.test('rescale 2 → 3 through the dialog', async () => {
    await page.getByRole('button', { name: 'Rescale…' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('New parallelism').fill('3');
    await dialog.getByRole('button', { name: 'Rescale' }).click();
    await page.getByTestId('notice').filter({ hasText: 'Rescaled to 3' }).waitFor({ timeout: 120_000 });
    await waitFor('the graph to show ×3', async () => (await page.locator('svg.graph [data-node="counter"]').textContent()).includes('×3'));
    const job = await apiGet(`/v1/jobs/${jobId}`);
    assert.equal(job.nodes.find((n) => n.id === 'counter').parallelism, 3);
    assert.equal(job.plugins.counter.version, '2', 'the rescale keeps the swapped version');
  });

  await t.test('the page works in a narrow window', async () => {
    await page.setViewportSize({ width: 420, height: 860 });
    await page.getByRole('button', { name: 'Stop with savepoint' }).waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `the job page scrolls sideways by ${overflow}px`);
    await shot('job-narrow');
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  await t.test('stop with savepoint asks first, then stops', async () => {
    await page.getByRole('button', { name: 'Stop with savepoint' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    // Escape backs out without stopping.
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    assert.equal((await apiGet(`/v1/jobs/${jobId}`)).status, 'running');
    await page.getByRole('button', { name: 'Stop with savepoint' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Stop with savepoint' }).click();
    await page.getByTestId('notice').waitFor({ timeout: 60_000 });
    await waitFor('the stopped badge', async () => (await page.locator('.job-head .status-stopped').count()) > 0);
    const job = await apiGet(`/v1/jobs/${jobId}`);
    assert.equal(job.status, 'stopped');
    assert.ok(job.savepoints.some((s) => s.stop && s.status === 'completed'), 'a stop savepoint completed');
    await shot('job-stopped');
  });

  await t.test('a trapping operator shows up under exceptions with its plugin and message', async () => {
    const resp = await fetch(`${serverUrl}/v1/plugins?name=trapper&version=1`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/wasm' },
      body: readFileSync(trapFixture),
    });
    assert.equal(resp.status, 201);
    await navLink('Submit job').click();
    const spec = [
      'name: trapping',
      'restart: { attempts: 1, delay_ms: 100 }',
      'sources:',
      '  - { id: gen, type: generator, count: 1000, keys: 4, rate: 100 }',
      'operators:',
      '  - { uid: trapper, plugin: trapper@1, inputs: [gen] }',
      'sinks:',
      `  - { id: out, type: file, path: ${join(work, 'trap-out')}, inputs: [trapper] }`,
    ].join('\n');
    await page.getByLabel('Job spec (YAML or JSON)').fill(spec);
    await page.getByRole('button', { name: 'Submit job' }).click();
    await page.waitForURL(/#\/jobs\//);
    await page.getByRole('tab', { name: /exceptions/ }).click();
    const item = page.locator('ul.exceptions li').first();
    await item.waitFor({ timeout: 60_000 });
    const text = await item.innerText();
    assert.match(text, /trapper/);
    assert.match(text, /trapper@1/);
    assert.match(text, /deliberate trap/);
    await shot('job-exceptions');
  });

  await t.test('a viewer token sees everything and is offered no changes', async () => {
    await page.getByRole('button', { name: 'Forget token' }).click();
    await page.getByLabel('API token').fill(VIEWER_TOKEN);
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByTestId('role').filter({ hasText: 'viewer' }).waitFor();
    assert.equal(await page.getByRole('navigation', { name: 'main' }).getByRole('link', { name: 'Submit job' }).count(), 0);
    await navLink('Plugins').click();
    await page.getByRole('cell', { name: 'trapper' }).first().waitFor();
    assert.equal(await page.getByRole('heading', { name: 'Upload a plugin' }).count(), 0);
    assert.equal(await page.getByRole('button', { name: /^Delete / }).count(), 0);
    await navLink('Overview').click();
    await page.getByRole('link', { name: 'trapping' }).first().click();
    await page.getByRole('tab', { name: /history/ }).waitFor();
    assert.equal(await page.getByRole('toolbar', { name: 'job actions' }).count(), 0);
    await shot('viewer-job');
  });

  await t.test('no console errors but the provoked one', async () => {
    const unexpected = consoleErrors.filter((e) => !(e.includes('status of 422') && expectedFailures.some((p) => e.includes(p))));
    assert.deepEqual(unexpected, []);
  });
});
