/**
 * The confusion matrix the ring counts (confusion.ts) is the one the coordinator used to
 * count itself with the final model (report-data.ts's confusionOf: evaluate() on the
 * split, or on its evenly spaced sample past the bound): for a ring of any size, through
 * the sampled count after training and through the final evaluation's own counts; and a
 * real worker's `done` carries it for the weights it sends.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { rankRange, type Table, takeRows } from '@ringtrain/data';
import { evaluate, Mlp, selectBackend } from '@ringtrain/model';
import { uint32s } from '@ringtrain/protocol';
import { confusionPlan, evalData, openJob, type OpenedJob, parseJobSpec, sampledRow } from '@ringtrain/train';
import { ConfusionCounter } from './confusion.js';
import { TrainingWorker } from './worker.js';
import { FakeCoordinator, is, TOKEN } from './worker.fixture.js';

const SPEC = `name: confusion-test
data:
  source: synthetic:rows=400,features=5,classes=4,seed=7
  split: { validation: 0.1, test: 0.25, seed: 3 }
model:
  hidden: [{ units: 6, activation: tanh }]
training: { epochs: 1, seed: 11 }
`;

let job: OpenedJob;
let mlp: Mlp;
const coordinators: FakeCoordinator[] = [];
before(async () => {
  await selectBackend('cpu');
  job = await openJob(parseJobSpec(SPEC), null);
  mlp = Mlp.create(job.mlp.arch, 5);
});
after(async () => {
  await Promise.all(coordinators.map((c) => c.close()));
});

/** A ring of `world` in one process: each rank's all-reduce resolves with the sum of all once every rank has called it. */
function fakeRing(world: number): (sums: Float32Array) => Promise<void> {
  let waiting: { sums: Float32Array; resolve: () => void }[] = [];
  return (sums) =>
    new Promise<void>((resolve) => {
      waiting.push({ sums, resolve });
      if (waiting.length < world) return;
      const total = new Float32Array(sums.length);
      for (const w of waiting) for (let i = 0; i < total.length; i++) total[i]! += w.sums[i]!;
      for (const w of waiting) {
        w.sums.set(total);
        w.resolve();
      }
      waiting = [];
    });
}

const flat = (m: number[][] | null): number[] => m!.flat();

test('a sampled split (past the bound): the ranks count the sample in their slices after training, and the sum is the single-process count of the same rows', async () => {
  const test = job.data.test;
  for (const max of [7, 33, 99]) {
    const plan = confusionPlan(job.data, max)!;
    assert.equal(plan.split, 'test');
    assert.ok(plan.rows < plan.splitRows, 'sampled');
    const sample = Array.from({ length: plan.rows }, (_, i) => sampledRow(i, plan.splitRows, plan.rows));
    const expected = flat(evaluate(mlp, evalData(takeRows(test, sample)), job.loss).confusion);
    for (const world of [1, 2, 3, 5]) {
      const ring = fakeRing(world);
      const counters = Array.from({ length: world }, () => new ConfusionCounter(plan));
      assert.equal(counters[0]!.countsFor('test'), 0, 'a sampled split is not counted by the evaluator');
      const asked: number[][] = [];
      await Promise.all(
        counters.map((c, rank) =>
          c.countSample(mlp, 42, {
            rank,
            world,
            table: test,
            loss: job.loss,
            ensure: async (split, indices) => {
              assert.equal(split, 'test');
              asked.push([...indices]);
            },
            allReduce: (sums) => ring(sums),
          }),
        ),
      );
      assert.deepEqual(asked.flat().sort((a, b) => a - b), sample, 'each rank needs only the sample rows of its slice');
      for (const c of counters) {
        const m = c.message()!;
        assert.deepEqual({ split: m.split, rows: m.rows }, { split: 'test', rows: max });
        assert.deepEqual([...uint32s(m.counts, 'counts')], expected, `${max} rows, world ${world}`);
      }
    }
  }
});

test('a split within the bound: the slices` counts, added up as the evaluator all-reduces them, are the whole split`s; other splits carry none', async () => {
  const plan = confusionPlan(job.data)!;
  const k = plan.classes;
  const t: Table = job.data.test;
  const expected = flat(evaluate(mlp, evalData(t), job.loss).confusion);
  for (const world of [1, 2, 4, 7]) {
    const ring = fakeRing(world);
    const counters = Array.from({ length: world }, () => new ConfusionCounter(plan));
    assert.deepEqual([counters[0]!.countsFor('test'), counters[0]!.countsFor('validation'), counters[0]!.countsFor('train')], [k * k, 0, 0]);
    assert.equal(counters[0]!.message(), null, 'nothing before the counts are in');
    await Promise.all(
      counters.map(async (c, rank) => {
        const [a, b] = rankRange(t.rows, rank, world);
        const sums = new Float32Array(3 + c.countsFor('test'));
        const part: Table = { ...t, rows: b - a, features: t.features.subarray(a * t.cols, b * t.cols), labels: t.labels.subarray(a, b) };
        if (b > a) ConfusionCounter.flatten(evaluate(mlp, evalData(part), job.loss).confusion, sums.subarray(3));
        await ring(sums);
        c.took(sums.subarray(3));
        // The counter keeps its own copy: the sums buffer may be reused.
        sums.fill(-1);
      }),
    );
    for (const c of counters) assert.deepEqual([...uint32s(c.message()!.counts, 'counts')], expected, `world ${world}`);
  }
  // No test rows: the validation split is the one; regression: none at all.
  const noTest = new ConfusionCounter(confusionPlan({ ...job.data, test: { ...job.data.test, rows: 0 } }));
  assert.deepEqual([noTest.countsFor('test'), noTest.countsFor('validation')], [0, k * k]);
  const regression = new ConfusionCounter(null);
  assert.deepEqual([regression.countsFor('test'), regression.sampled, regression.message()], [0, false, null]);
});

test('a worker`s done carries the confusion matrix of the weights it sends, on the test split, counted by its final evaluation', async () => {
  const c = await FakeCoordinator.start();
  coordinators.push(c);
  const w = new TrainingWorker({ coordinator: c.url, token: TOKEN, id: 'w1', bindHost: '127.0.0.1', advertiseHost: '127.0.0.1', backend: 'cpu', log: pino({ level: 'silent' }), minBackoffMs: 20, maxBackoffMs: 80 });
  const exit = w.run();
  await c.waitFor('register', is('register'));
  c.sendJob();
  c.sendGeneration(1);
  const done = await c.waitFor('done', is('done'));
  const head = done.params!;
  await c.waitFor('the last chunk of the final weights', is('chunk', (m) => m.id === head.id && m.offset + m.data.byteLength === head.bytes));
  const bytes = c.payload(head);
  const weights = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const { data, loss, mlp: start } = c.job;
  const final = Mlp.fromParams(start.arch, weights);
  const confusion = done.result.confusion!;
  assert.deepEqual({ split: confusion.split, rows: confusion.rows }, { split: 'test', rows: data.test.rows });
  assert.deepEqual([...uint32s(confusion.counts, 'counts')], flat(evaluate(final, evalData(data.test), loss).confusion));
  // The matrix agrees with the run's own test accuracy.
  const k = data.task.kind === 'classification' ? data.task.classes.length : 0;
  const counts = uint32s(confusion.counts, 'counts');
  const diagonal = Array.from({ length: k }, (_, i) => counts[i * k + i]!).reduce((a, b) => a + b, 0);
  assert.equal(diagonal / data.test.rows, done.result.final.test!.accuracy);
  c.send({ type: 'finished', reason: 'completed' });
  assert.equal(await exit, 0);
});
