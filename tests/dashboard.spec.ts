/**
 * The coordinator's dashboard in a real browser (Debian's chromium through
 * playwright-core) on a real `ringtrain local --workers 3` run: the step advances, the
 * loss chart gains points, three worker rows; after a worker is killed the page shows
 * the next generation and the `lost` event within seconds; Pause with a wrong token is
 * refused with 401, with the run's token it pauses the job, and Resume continues it.
 * And a page left open across a coordinator crash and restart comes back by itself.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { Cluster, coordinatorUrl, killAll, ringtrain, stderrOf, tempDir, writeJob } from './cluster-harness.js';

const CHROMIUM = '/usr/bin/chromium';
/** Generous for a loaded 2-core machine: start-up loads TensorFlow.js in four processes. */
const START_MS = 120_000;
const STEP_MS = 30_000;
/** The bound for a failure to show on the page. */
const FAILURE_SHOWN_MS = 8_000;

let browser: Browser | null = null;
const workerPids: number[] = [];
after(async () => {
  await browser?.close();
  for (const pid of workerPids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone with local
    }
  }
  await killAll();
});

interface Readings {
  readonly state: string;
  readonly step: number;
  readonly generation: number;
  readonly points: number;
  readonly workers: number;
}

/**
 * The page's numbers: the step (from "1,234 / 10,000"), the generation, the loss chart's
 * points, the worker rows. A string, so that it runs as written (tsx would wrap a
 * function's inner names in a helper the page lacks) and needs no DOM types here.
 */
const READINGS = `({
  state: document.getElementById('state').dataset.state ?? '',
  step: Number(document.getElementById('step').textContent.split('/')[0].replace(/[^0-9]/g, '') || -1),
  generation: Number(document.getElementById('generation').textContent || -1),
  points: Number(document.getElementById('loss-chart').dataset.points),
  workers: document.querySelectorAll('#workers tr[data-worker]').length,
})`;

const readings = (page: Page): Promise<Readings> => page.evaluate(READINGS) as Promise<Readings>;

/** Polls the page until `pred` holds; fails with the last readings and the process's stderr. */
async function until(page: Page, local: ChildProcess, what: string, pred: (r: Readings) => boolean, ms: number): Promise<Readings> {
  const deadline = Date.now() + ms;
  let last = await readings(page);
  while (!pred(last)) {
    if (Date.now() > deadline) {
      const events = await page.locator('#events li').allTextContents();
      assert.fail(`${what}: not within ${ms} ms; page shows ${JSON.stringify(last)}; events: ${events.slice(0, 8).join(' | ')}\n${stderrOf(local).slice(-3000)}`);
    }
    await page.waitForTimeout(100);
    last = await readings(page);
  }
  return last;
}

/**
 * Worker processes are `local`'s children (in their own process group) running
 * `ringtrain ... worker`: found in /proc by parent pid and command line (tsx's esbuild
 * service may be a child too).
 */
function workersOf(parent: number): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces, so read after its ')'.
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) !== parent) continue;
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (argv.some((a) => a.endsWith('ringtrain.mjs')) && argv.includes('worker')) pids.push(Number(name));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

test('the dashboard follows a 3-worker run: progress, a killed worker, pause and resume', { timeout: 300_000 }, async () => {
  const dir = await tempDir('dashboard');
  // 200 epochs of 50 steps: minutes of work, far longer than the test needs.
  const job = await writeJob(dir, { epochs: 200, everySteps: 500 });
  const out = join(dir, 'out');
  const local = ringtrain(['local', '--workers', '3', '--job', job, '--out', out, '--port', '0']);
  const url = await coordinatorUrl(local, 'stderr', START_MS);
  const token = readFileSync(join(out, 'token'), 'utf8').trim();

  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  const page = await browser.newPage({ viewport: { width: 1366, height: 768 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${url}/`);

  // Running: three worker rows; the step advances and the loss chart gains points.
  const first = await until(page, local, 'running with three workers and some steps', (r) => r.state === 'running' && r.workers === 3 && r.points > 0, START_MS);
  assert.equal(await page.locator('#job-name').textContent(), 'cluster-test');
  await until(page, local, 'the step advancing and the loss chart gaining points', (r) => r.step > first.step && r.points > first.points, STEP_MS);
  assert.equal(await page.locator('#ring li').count(), 3);
  assert.equal(await page.locator('#connection').getAttribute('data-state'), 'live');

  // A worker killed: the next generation and the `lost` event, within seconds.
  const pids = workersOf(local.pid!);
  assert.equal(pids.length, 3, `local's worker processes: ${pids.join(', ')}`);
  workerPids.push(...pids);
  const before = await readings(page);
  process.kill(pids[1]!, 'SIGKILL');
  const killedAt = Date.now();
  await until(page, local, 'a new generation after the kill', (r) => r.generation > before.generation && r.state === 'running', FAILURE_SHOWN_MS);
  await page.locator('#events li[data-kind="lost"]').first().waitFor({ timeout: Math.max(1, FAILURE_SHOWN_MS - (Date.now() - killedAt)) });
  assert.equal(await page.locator('#ring li').count(), 2);
  assert.match((await page.locator('#events li[data-kind="lost"]').first().textContent()) ?? '', /local-\d lost/);

  // Pause with a wrong token: refused, and the job runs on.
  await page.fill('#token', 'not-the-token-0123456789');
  await page.click('#pause');
  await page.locator('#control-result.error').waitFor({ timeout: STEP_MS });
  assert.match((await page.locator('#control-result').textContent()) ?? '', /401 UNAUTHORIZED/);
  assert.equal((await readings(page)).state, 'running');

  // With the run's token: paused, the step stands still; resumed, it advances.
  await page.fill('#token', token);
  await page.click('#pause');
  await until(page, local, 'the job paused', (r) => r.state === 'paused', STEP_MS);
  assert.match((await page.locator('#control-result').textContent()) ?? '', /pause: the job is/);
  const paused = (await readings(page)).step;
  await page.waitForTimeout(1500);
  assert.equal((await readings(page)).step, paused, 'no step while paused');
  await page.click('#resume');
  await until(page, local, 'the job running again and the step advancing', (r) => r.state === 'running' && r.step > paused, STEP_MS);

  assert.deepEqual(errors, [], 'no script errors on the page');
  await browser.close();
  browser = null;
});

test('the page reconnects by itself after the coordinator is killed and restarted', { timeout: 300_000 }, async () => {
  const dir = await tempDir('dashboard-restart');
  const cluster = new Cluster(await writeJob(dir, { epochs: 200, everySteps: 100 }), join(dir, 'out'));
  await cluster.start();
  cluster.addWorker('a');
  await cluster.waitFor('training', (s) => s.state === 'running' && s.step > 20, START_MS);
  const page = await (browser ??= await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] })).newPage();
  await page.goto(`http://127.0.0.1:${cluster.port}/`);
  const connection = () => page.locator('#connection').getAttribute('data-state');
  await until(page, cluster.coordinatorProcess, 'live and running', (r) => r.state === 'running' && r.step > 0, STEP_MS);
  assert.equal(await connection(), 'live');
  const before = await readings(page);

  cluster.coordinatorProcess.kill('SIGKILL');
  const deadline = Date.now() + STEP_MS;
  while ((await connection()) === 'live' && Date.now() < deadline) await page.waitForTimeout(100);
  assert.notEqual(await connection(), 'live', 'the page shows that it lost the coordinator');

  await cluster.start(); // same port, same directory: it resumes, and the worker rejoins
  await until(page, cluster.coordinatorProcess, 'live again, in a later generation, past the old step', (r) => r.state === 'running' && r.generation > before.generation && r.step > before.step, START_MS);
  assert.equal(await connection(), 'live');
  await page.close();
});
