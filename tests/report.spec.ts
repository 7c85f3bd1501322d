/**
 * report.html in a real browser (Debian's chromium through playwright-core), opened from
 * disk with the network off, after real runs: `ringtrain train` and `ringtrain local
 * --workers 2` on Iris, and a `train` stopped with Ctrl-C. The charts drew (their
 * canvases hold the series' colours), with the series and points the run logged; the
 * confusion matrix counts the test rows and agrees with the run's test accuracy; the
 * spec is job.yaml; nothing was fetched and no script failed.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { exited, killAll, ringtrain, stderrOf, tempDir } from './cluster-harness.js';

const CHROMIUM = '/usr/bin/chromium';
const IRIS = fileURLToPath(new URL('../examples/iris.yaml', import.meta.url));
const RUN_MS = 120_000;
/** charts.js's colours: the step losses, the epoch training and validation lines, a generation's mark. */
const COLORS = { step: '#93b4e8', train: '#1d4ed8', validation: '#c2410c', generation: '#7c3aed' };

let browser: Browser;
before(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
});
after(async () => {
  await browser?.close();
  await killAll();
});

/** Runs ringtrain to its end; its stdout. */
async function runToEnd(args: readonly string[], interruptWhen?: () => boolean): Promise<string> {
  const child = ringtrain(args);
  let stdout = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  if (interruptWhen) void interrupt(child, interruptWhen);
  const code = await exited(child, RUN_MS);
  assert.equal(code, 0, `ringtrain ${args.join(' ')} exited ${code}:\n${stderrOf(child)}`);
  return stdout;
}

async function interrupt(child: ChildProcess, when: () => boolean): Promise<void> {
  while (child.exitCode === null && !when()) await new Promise((r) => setTimeout(r, 50));
  child.kill('SIGINT');
}

/**
 * Pixels of each colour (within a small distance, for anti-aliasing) on a chart's
 * canvas. A string, so that it runs in the page as written.
 */
const COLOR_PIXELS = `((id, colors) => {
  const canvas = document.querySelector('#' + id + ' canvas');
  if (!canvas) return null;
  const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
  const rgb = Object.fromEntries(Object.entries(colors).map(([k, hex]) => [k, [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16))]));
  const counts = Object.fromEntries(Object.keys(colors).map((k) => [k, 0]));
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] < 200) continue;
    for (const [k, [r, g, b]] of Object.entries(rgb)) {
      if (Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) <= 30) counts[k] += 1;
    }
  }
  return { width: canvas.width, height: canvas.height, counts };
})`;

interface Pixels {
  readonly width: number;
  readonly height: number;
  readonly counts: Record<keyof typeof COLORS, number>;
}

/** The page's readings: outcome, legends, points, confusion cells, spec, stats. */
const READINGS = `({
  outcome: document.getElementById('outcome').dataset.state,
  interruptedNote: document.getElementById('interrupted').hidden ? null : document.getElementById('interrupted').textContent,
  lossSeries: [...document.querySelectorAll('#loss-chart .u-legend .u-series')].map((e) => e.textContent.trim()),
  accuracySeries: [...document.querySelectorAll('#accuracy-chart .u-legend .u-series')].map((e) => e.textContent.trim()),
  lossPoints: Number(document.getElementById('loss-chart').dataset.points),
  accuracyPoints: Number(document.getElementById('accuracy-chart').dataset.points),
  cells: [...document.querySelectorAll('#confusion td[data-count]')].map((td) => Number(td.dataset.count)),
  diagonal: [...document.querySelectorAll('#confusion td.hit')].map((td) => Number(td.dataset.count)),
  confusionText: document.getElementById('confusion').textContent,
  finalText: document.getElementById('final').textContent,
  spec: document.getElementById('spec').textContent,
  stats: document.getElementById('stats').textContent,
  title: document.title,
})`;

interface Readings {
  readonly outcome: string;
  readonly interruptedNote: string | null;
  readonly lossSeries: string[];
  readonly accuracySeries: string[];
  readonly lossPoints: number;
  readonly accuracyPoints: number;
  readonly cells: number[];
  readonly diagonal: number[];
  readonly confusionText: string;
  readonly finalText: string;
  readonly spec: string;
  readonly stats: string;
  readonly title: string;
}

/** Opens a report from disk with the network off; fails on any request, script error or console error. */
async function open(report: string): Promise<{ page: Page; readings: Readings; loss: Pixels; accuracy: Pixels; close: () => Promise<void> }> {
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 }, offline: true });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => void (m.type() === 'error' && problems.push(`console: ${m.text()}`)));
  page.on('request', (r) => void (r.url().startsWith('file:') || r.url().startsWith('data:') || problems.push(`request: ${r.url()}`)));
  await page.goto(pathToFileURL(report).href);
  await page.waitForFunction(`document.getElementById('outcome').dataset.state !== ''`, undefined, { timeout: 10_000 });
  await page.waitForTimeout(300); // uPlot draws on the next frame
  const readings = (await page.evaluate(READINGS)) as Readings;
  const loss = (await page.evaluate(`${COLOR_PIXELS}('loss-chart', ${JSON.stringify(COLORS)})`)) as Pixels;
  const accuracy = (await page.evaluate(`${COLOR_PIXELS}('accuracy-chart', ${JSON.stringify(COLORS)})`)) as Pixels;
  assert.deepEqual(problems, [], 'nothing fetched, no errors');
  return { page, readings, loss, accuracy, close: () => context.close() };
}

const lines = (file: string): number => readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '').length;

interface Summary {
  readonly epochs: number;
  readonly final: { readonly test: { readonly accuracy: number } } | null;
}

/** What every completed Iris report shows. */
function checkCompletedIris(out: string, r: Readings, loss: Pixels, accuracy: Pixels): void {
  const summary = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')) as Summary;
  assert.equal(r.outcome, 'completed');
  assert.equal(r.interruptedNote, null);
  assert.match(r.title, /^iris: completed/);
  // Both charts drew: the series in their legends, every logged step, every epoch, and their lines on the canvas.
  assert.deepEqual(r.lossSeries, ['train (step)', 'train (epoch)', 'validation']);
  assert.deepEqual(r.accuracySeries, ['train', 'validation']);
  assert.equal(r.lossPoints, lines(join(out, 'steps.jsonl')));
  assert.equal(r.accuracyPoints, summary.epochs);
  assert.ok(loss.width > 300 && loss.height > 100, `loss canvas ${loss.width}x${loss.height}`);
  for (const k of ['step', 'train', 'validation'] as const) assert.ok(loss.counts[k] > 50, `loss chart: ${k} line drawn (${JSON.stringify(loss.counts)})`);
  for (const k of ['train', 'validation'] as const) assert.ok(accuracy.counts[k] > 50, `accuracy chart: ${k} line drawn (${JSON.stringify(accuracy.counts)})`);
  // The confusion matrix: 3 x 3, the 30 test rows, and the run's own test accuracy on its diagonal.
  assert.equal(r.cells.length, 9);
  assert.equal(r.cells.reduce((a, b) => a + b, 0), 30);
  assert.equal(r.diagonal.reduce((a, b) => a + b, 0) / 30, summary.final!.test.accuracy);
  assert.match(r.finalText, /test30/);
  assert.equal(r.spec, readFileSync(join(out, 'job.yaml'), 'utf8'));
  assert.match(r.stats, /early stopping/);
}

test('ringtrain train: report.html, its path in --json, charts drawn offline, the confusion matrix of the test split, the spec', { timeout: 180_000 }, async () => {
  const out = join(await tempDir('report-train'), 'run');
  const stdout = await runToEnd(['train', '--job', IRIS, '--out', out, '--json']);
  const printed = JSON.parse(stdout) as { report: string };
  assert.equal(printed.report, join(out, 'report.html'));
  assert.ok(!('report' in JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'))), 'metrics.json stays the run summary');
  const { readings, loss, accuracy, close } = await open(printed.report);
  checkCompletedIris(out, readings, loss, accuracy);
  assert.doesNotMatch(readings.stats, /generations/, 'one process: no generations');
  assert.equal(loss.counts.generation, 0);
  await close();
});

test('ringtrain local --workers 2: the coordinator writes the report, generations marked; local prints its path', { timeout: 240_000 }, async () => {
  const out = join(await tempDir('report-local'), 'run');
  const stdout = await runToEnd(['local', '--workers', '2', '--job', IRIS, '--out', out]);
  assert.match(stdout, new RegExp(`^output: ${out}\\nreport: ${join(out, 'report.html')}\\n$`, 'm'));
  const { readings, loss, accuracy, close } = await open(join(out, 'report.html'));
  checkCompletedIris(out, readings, loss, accuracy);
  assert.match(readings.stats, /generations1 up to 2 workers/);
  assert.ok(loss.counts.generation > 10, `the generation's dashed line (${JSON.stringify(loss.counts)})`);
  await close();
});

test('a train run stopped with Ctrl-C: a report of the curves so far, marked interrupted, without final metrics', { timeout: 180_000 }, async () => {
  const dir = await tempDir('report-interrupted');
  const job = join(dir, 'job.yaml');
  // Many short steps: the first epoch (3,000 steps) ends within seconds, the job would take minutes.
  await writeFile(
    job,
    'name: long\ndata: { source: "synthetic:rows=30000,features=16,classes=5,seed=3", split: { validation: 0.1, test: 0.1, seed: 2 } }\n' +
      'model: { hidden: [{ units: 32, activation: relu }] }\ntraining: { batchSize: 8, epochs: 500, seed: 5, backend: wasm }\n',
  );
  const out = join(dir, 'run');
  const steps = join(out, 'steps.jsonl');
  const stdout = await runToEnd(['train', '--job', job, '--out', out], () => existsSync(steps) && statSync(steps).size > 0);
  assert.match(stdout, /^interrupted after \d+ steps/m);
  assert.match(stdout, new RegExp(`^report: ${join(out, 'report.html')}$`, 'm'));
  const { readings, loss, close } = await open(join(out, 'report.html'));
  assert.equal(readings.outcome, 'interrupted');
  assert.match(readings.interruptedNote ?? '', /^Interrupted after [\d,]+ of 1,500,000 steps/);
  assert.equal(readings.lossPoints > 0 && readings.lossPoints <= 3000, true, `${readings.lossPoints} points`);
  assert.ok(loss.counts.step > 50, `step losses drawn (${JSON.stringify(loss.counts)})`);
  assert.deepEqual(readings.cells, []);
  assert.match(readings.confusionText, /interrupted/);
  assert.match(readings.finalText, /interrupted/);
  await close();
});
