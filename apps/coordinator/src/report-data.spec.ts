/**
 * What report.html shows (report-data.ts), without a browser: the step losses thinned
 * to a bound with both ends kept, the timings, an interrupted run without final metrics
 * or matrix, and the confusion matrix from the same evaluate() as `ringtrain eval`,
 * sampled evenly past its row bound.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Table } from '@ringtrain/data';
import { evaluate, selectBackend } from '@ringtrain/model';
import { type EpochRecord, evalData, jobSpecToYaml, openJob, type OpenedJob, parseJobSpec, type RunSummary } from '@ringtrain/train';
import { confusionOf, REPORT_MAX_STEPS, reportData, sampleRows } from './report-data.js';

const SPEC = `name: report-test
data:
  source: synthetic:rows=1000,features=6,classes=3,seed=4
  split: { validation: 0.1, test: 0.3, seed: 1 }
model:
  hidden: [{ units: 8, activation: relu }]
training:
  batchSize: 10
  epochs: 4
  seed: 3
  earlyStopping: { patience: 2 }
`;

let job: OpenedJob;
before(async () => {
  await selectBackend('cpu');
  job = await openJob(parseJobSpec(SPEC), null);
});

const epoch = (n: number): EpochRecord => ({ epoch: n, train: { loss: 1 / n, accuracy: 0.5 }, validation: { loss: 1.1 / n, accuracy: 0.4 }, learningRate: 0.001, seconds: 2, samplesPerSecond: 300 });

function summary(o: Partial<RunSummary> = {}): RunSummary {
  const m = { loss: 0.5, accuracy: 0.8 };
  return {
    job: 'report-test',
    source: job.data.source,
    backend: 'cpu',
    loss: job.loss,
    parameters: job.mlp.layout.size,
    epochs: 3,
    steps: 210,
    bestEpoch: 2,
    stoppedEarly: true,
    interrupted: false,
    seconds: 6.5,
    samplesPerSecond: 320,
    history: [epoch(1), epoch(2), epoch(3)],
    final: { train: m, validation: m, test: m },
    ...o,
  } as RunSummary;
}

test('a completed run: thinned steps with both ends, timings, generations, final metrics, a confusion matrix over the test split, the spec', async () => {
  const steps = Array.from({ length: 10_000 }, (_, s) => [s, 1 / (s + 3)] as const);
  const r = await reportData({ spec: job.spec, data: job.data, summary: summary(), steps, model: job.mlp, generations: [{ generation: 1, step: 0, world: 2, time: 'x' } as never, { generation: 2, step: 120, world: 3 }] });
  assert.equal(r.outcome, 'completed');
  assert.ok(r.steps.x.length <= REPORT_MAX_STEPS && r.steps.x.length > REPORT_MAX_STEPS / 2, `${r.steps.x.length} steps`);
  assert.equal(r.steps.x.length, r.steps.y.length);
  assert.equal(r.steps.logged, 10_000);
  // x is steps done (the dashboard's axis): step 0 at 1, the last step at 10,000.
  assert.equal(r.steps.x[0], 1);
  assert.equal(r.steps.x.at(-1), 10_000);
  assert.equal(r.steps.y[0], Number((1 / 3).toPrecision(6)));
  assert.ok(r.steps.x.every((x, i) => i === 0 || x > r.steps.x[i - 1]!));
  assert.deepEqual(r.timings, {
    seconds: 6.5,
    samplesPerSecond: 320,
    steps: 210,
    plannedSteps: 4 * 60,
    epochs: 3,
    plannedEpochs: 4,
    stepsPerEpoch: 60,
    bestEpoch: 2,
    stoppedEarly: true,
    earlyStopping: { patience: 2, minDelta: 0 },
  });
  assert.deepEqual(r.generations, [
    { generation: 1, step: 0, world: 2 },
    { generation: 2, step: 120, world: 3 },
  ]);
  assert.deepEqual(r.rows, { train: 600, validation: 100, test: 300 });
  assert.equal(r.final?.test?.accuracy, 0.8);
  assert.ok(r.confusion);
  assert.equal(r.confusion.split, 'test');
  assert.deepEqual(r.confusion.classes, job.data.task.kind === 'classification' ? job.data.task.classes : []);
  assert.equal(r.confusion.matrix.flat().reduce((a, b) => a + b, 0), 300);
  assert.equal(r.spec, jobSpecToYaml(job.spec));
  assert.match(r.spec, /^name: report-test$/m);
  assert.match(r.spec, /^ {4}beta1: 0\.9$/m, 'resolved: defaults written out');
  // A short run is embedded whole.
  assert.equal((await reportData({ spec: job.spec, data: job.data, summary: summary(), steps: steps.slice(0, 50), model: null })).steps.x.length, 50);
});

test('an interrupted run: the curves so far, no final metrics and no confusion matrix, even with a model at hand', async () => {
  const r = await reportData({ spec: job.spec, data: job.data, summary: summary({ interrupted: true, final: null, stoppedEarly: false }), steps: [[0, 1], [1, 0.9]], model: job.mlp });
  assert.equal(r.outcome, 'interrupted');
  assert.equal(r.final, null);
  assert.equal(r.confusion, null);
  assert.deepEqual(r.steps, { x: [1, 2], y: [1, 0.9], logged: 2 });
  assert.equal(r.epochs.length, 3);
});

test("confusionOf counts what ringtrain eval's evaluate() counts; past its bound it takes evenly spaced rows and says so", async () => {
  const full = (await confusionOf(job.mlp, job.data, job.loss))!;
  assert.deepEqual(full.matrix, evaluate(job.mlp, evalData(job.data.test), job.loss).confusion);
  assert.equal(full.rows, 300);
  const sampled = (await confusionOf(job.mlp, job.data, job.loss, 40))!;
  assert.equal(sampled.rows, 40);
  assert.equal(sampled.splitRows, 300);
  assert.equal(sampled.matrix.flat().reduce((a, b) => a + b, 0), 40);
  // No test rows: the validation split, named; regression: none.
  assert.equal((await confusionOf(job.mlp, { ...job.data, test: { ...job.data.test, rows: 0 } }, job.loss))!.split, 'validation');
  assert.equal((await confusionOf(job.mlp, { ...job.data, task: { kind: 'regression', target: 'y' } }, job.loss)), null);
});

test('sampleRows: every row up to the bound, past it evenly spaced rows from the first', () => {
  const table = { ...job.data.test, rows: 10, features: Float32Array.from({ length: 10 * 6 }, (_, i) => Math.floor(i / 6)), labels: Int32Array.from({ length: 10 }, (_, i) => i % 3) } as Table;
  assert.equal(sampleRows(table, 10), table);
  const four = sampleRows(table, 4);
  assert.equal(four.rows, 4);
  assert.deepEqual([...four.features].filter((_, i) => i % 6 === 0), [0, 2, 5, 7]);
  assert.deepEqual([...four.labels], [0, 2, 2, 1]);
});

test('a confusion matrix counted elsewhere (the cluster`s workers) is shown as given, and no model is evaluated; none given and no model: none', async () => {
  const given = { split: 'test' as const, classes: ['0', '1', '2'], matrix: [[90, 5, 5], [0, 100, 0], [1, 2, 97]], rows: 300, splitRows: 300 };
  const poisoned = new Proxy(job.mlp, { get: () => assert.fail('the model was used') });
  assert.deepEqual((await reportData({ spec: job.spec, data: job.data, summary: summary(), steps: [], model: poisoned, confusion: given })).confusion, given);
  assert.equal((await reportData({ spec: job.spec, data: job.data, summary: summary(), steps: [], confusion: given })).confusion, given);
  assert.equal((await reportData({ spec: job.spec, data: job.data, summary: summary(), steps: [], confusion: null })).confusion, null);
  assert.equal((await reportData({ spec: job.spec, data: job.data, summary: summary(), steps: [] })).confusion, null);
  // An interrupted run shows none, whatever was given.
  assert.equal((await reportData({ spec: job.spec, data: job.data, summary: summary({ interrupted: true, final: null }), steps: [], confusion: given })).confusion, null);
});
