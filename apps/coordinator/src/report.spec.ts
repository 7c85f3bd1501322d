/**
 * report.html as a file (report.ts), without a browser: one self-contained page with
 * nothing to fetch, exactly the three scripts it means to have however hostile the
 * data, the data read back whole from its JSON element, and written next to the run's
 * steps.jsonl. tests/report.spec.ts opens real reports in chromium.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { selectBackend } from '@ringtrain/model';
import { openJob, parseJobSpec, type RunSummary, StepLog } from '@ringtrain/train';
import type { ReportData } from './report-data.js';
import { REPORT_FILE, reportHtml, writeReport } from './report.js';

const HOSTILE = '</script><script>alert(1)</script><!--';

const DATA: ReportData = {
  format: 1,
  job: `job ${HOSTILE}`,
  outcome: 'completed',
  writtenAt: '2025-01-01T00:00:00.000Z',
  source: `csv:/tmp/${HOSTILE}.csv`,
  backend: 'cpu',
  task: { kind: 'classification', classes: ['a', HOSTILE] },
  loss: 'cross-entropy',
  parameters: 10,
  rows: { train: 8, validation: 1, test: 2 },
  timings: { seconds: 1, samplesPerSecond: 8, steps: 2, plannedSteps: 2, epochs: 1, plannedEpochs: 1, stepsPerEpoch: 2, bestEpoch: 1, stoppedEarly: false, earlyStopping: null },
  steps: { x: [1, 2], y: [0.7, 0.6], logged: 2 },
  epochs: [{ epoch: 1, train: { loss: 0.65, accuracy: 0.5 }, validation: null, learningRate: 0.01, seconds: 1, samplesPerSecond: 8 }],
  generations: [],
  final: { train: { loss: 0.6, accuracy: 0.5 }, validation: null, test: { loss: 0.6, accuracy: 0.5 } },
  confusion: { split: 'test', classes: ['a', HOSTILE], matrix: [[1, 0], [0, 1]], rows: 2, splitRows: 2 },
  spec: `name: x\n# ${HOSTILE}\n`,
};

test('one page with everything inline: nothing to fetch, a CSP that forbids fetching, three scripts however hostile the data, the data back whole', async () => {
  const html = await reportHtml(DATA);
  // Nothing loaded from anywhere: no src or href but data: URLs, no CSS import, and a policy that allows only what is inline.
  const refs = [...html.matchAll(/\b(?:src|href)\s*=\s*["']?([^"'\s>]*)/gi)].map((m) => m[1]!);
  assert.deepEqual(refs.filter((r) => !r.startsWith('data:')), [], 'no references out of the page');
  assert.doesNotMatch(html, /@import|url\(\s*['"]?(?:https?:|\/\/)/i);
  assert.match(html, /http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"/);
  // uPlot, the data and the module: the hostile strings ended none of them early.
  assert.equal(html.match(/<\/script/gi)?.length, 3);
  assert.equal(html.match(/<script\b/gi)?.length, 3);
  assert.equal(html.match(/<\/style/gi)?.length, 2);
  assert.ok(!html.includes('<!--', html.indexOf('<style>')), 'no comment opener after the head comment');
  const json = /<script type="application\/json" id="report-data">([\s\S]*?)<\/script>/.exec(html)?.[1];
  assert.ok(json);
  assert.deepEqual(JSON.parse(json), DATA);
  // The chart code is the dashboard's own, and uPlot is inside.
  assert.match(html, /\/\/ ---- charts\.js\n/);
  assert.match(html, /renderReport\(JSON\.parse\(document\.getElementById\('report-data'\)\.textContent\)\);/);
  assert.ok(html.includes(readFileSync(new URL('../../../node_modules/uplot/dist/uPlot.iife.min.js', import.meta.url), 'utf8').slice(0, 200)));
});

test('writeReport puts report.html in the run directory with the step losses of its steps.jsonl', async () => {
  await selectBackend('cpu');
  const dir = await mkdtemp(join(tmpdir(), 'ringtrain-report-'));
  const job = await openJob(parseJobSpec('name: r\ndata: { source: "synthetic:rows=200,features=4,classes=2,seed=1", split: { validation: 0.1, test: 0.2, seed: 1 } }\ntraining: { epochs: 1, batchSize: 20 }\n'), null);
  const log = new StepLog(dir);
  for (let step = 0; step < 7; step++) log.add({ step, epoch: 1, loss: 1 - step / 10, samples: 20 });
  log.flush();
  const summary = { job: 'r', source: job.data.source, backend: 'cpu', loss: job.loss, parameters: job.mlp.layout.size, epochs: 0, steps: 7, bestEpoch: 0, stoppedEarly: false, interrupted: true, seconds: 1, samplesPerSecond: 140, history: [], final: null } as unknown as RunSummary;
  const path = await writeReport(dir, { spec: job.spec, data: job.data, summary, model: null });
  assert.equal(path, join(dir, REPORT_FILE));
  const html = readFileSync(path, 'utf8');
  const data = JSON.parse(/<script type="application\/json" id="report-data">([\s\S]*?)<\/script>/.exec(html)![1]!) as ReportData;
  assert.deepEqual(data.steps, { x: [1, 2, 3, 4, 5, 6, 7], y: [1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4], logged: 7 });
  assert.equal(data.outcome, 'interrupted');
  assert.ok(Buffer.byteLength(html) < 150_000, `${Buffer.byteLength(html)} bytes`);
});
