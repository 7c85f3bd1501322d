import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { prepareDataset, type PreparedDataset } from '@ringtrain/data';
import { evaluate, Mlp, selectBackend } from '@ringtrain/model';
import { loadJobSpec, parseJobSpec, type JobSpec } from './spec.js';

/** The Iris spec, as shipped: the contract the docs and examples build on. */
const IRIS_EXAMPLE = fileURLToPath(new URL('../../../examples/iris.yaml', import.meta.url));
import { architectureFor, resolveLoss } from './job-model.js';
import { evalData } from './batches.js';
import { type Collective, train, type TrainResult, type TrainSnapshot } from './trainer.js';

/**
 * W workers in one process, each running train() on its own Mlp. allReduce waits until
 * every rank has handed in its buffer for the step, then writes the rank-ordered sum
 * into every buffer, as the ring does.
 */
function inProcessWorld(world: number): Collective[] {
  let waiting: { buffer: Float32Array | Float64Array; resolve: () => void }[] = [];
  return Array.from({ length: world }, (_, rank) => ({
    rank,
    world,
    allReduce: (buffer: Float32Array | Float64Array) =>
      new Promise<void>((resolve) => {
        waiting[rank] = { buffer, resolve };
        if (waiting.filter(Boolean).length < world) return;
        const sum = buffer instanceof Float64Array ? new Float64Array(buffer.length) : new Float32Array(buffer.length);
        for (const w of waiting) for (let i = 0; i < sum.length; i++) sum[i] = sum[i]! + w.buffer[i]!;
        const done = waiting;
        waiting = [];
        for (const w of done) {
          w.buffer.set(sum);
          w.resolve();
        }
      }),
  }));
}

async function runWorld(spec: JobSpec, data: PreparedDataset, world: number, onStep?: (rank: number, loss: number) => void): Promise<TrainResult[]> {
  const loss = resolveLoss(spec, data.task);
  return Promise.all(
    inProcessWorld(world).map((collective) =>
      train({
        spec,
        data,
        loss,
        collective,
        mlp: Mlp.create(architectureFor(spec, data.train.cols, data.task), spec.training.seed),
        ...(onStep ? { onStep: (p) => onStep(collective.rank, p.stepLoss) } : {}),
      }),
    ),
  );
}

function relL2(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  a.forEach((v, i) => {
    num += (v - b[i]!) ** 2;
    den += b[i]! ** 2;
  });
  return Math.sqrt(num / den);
}

const SYNTHETIC = `
name: synthetic
data:
  source: synthetic:rows=300,features=12,classes=3,seed=5
  split: { validation: 0.2, test: 0.1, seed: 1 }
  augment: { noise: 0.1 }
model:
  hidden:
    - { units: 24, activation: relu, dropout: 0.2 }
    - { units: 16, activation: tanh, dropout: 0.1 }
  l2: 0.001
training:
  optimizer: { name: adam, learningRate: 0.01, schedule: { kind: cosine, warmupSteps: 3 } }
  batchSize: 20
  epochs: 3
  seed: 9
`;

describe('train', () => {
  before(async () => {
    await selectBackend('cpu');
  });

  test('the worker count does not change the math; the same world repeats bit for bit', async () => {
    const spec = parseJobSpec(SYNTHETIC);
    const data = await prepareDataset({ ...spec.data, baseDir: '.' });
    assert.equal(data.train.rows % spec.training.batchSize !== 0, true, 'the last batch of an epoch is partial');
    const [solo] = await runWorld(spec, data, 1);
    const three = await runWorld(spec, data, 3);
    const threeAgain = await runWorld(spec, data, 3);
    // Every rank of a world holds the same bits.
    for (const r of three) assert.deepEqual(r.mlp.params, three[0]!.mlp.params);
    assert.deepEqual(threeAgain[0]!.mlp.params, three[0]!.mlp.params);
    // One worker and three follow the same trajectory, up to float summation order.
    const err = relL2(three[0]!.mlp.params, solo!.mlp.params);
    assert.ok(err < 1e-4, `relative L2 distance ${err}`);
    assert.ok(Math.abs(three[0]!.history[2]!.train.loss - solo!.history[2]!.train.loss) < 1e-4);
  });

  test('the exact reduction: every worker count from 1 to the 5 micro-batches, and 6 and 7 (idle workers), give every step\'s loss and the final weights bit for bit', async () => {
    // batchSize 20 in micro-batches of 4: five per step (the last batch of an epoch has 10 rows: three).
    const spec = parseJobSpec(SYNTHETIC.replace('batchSize: 20', 'batchSize: 20\n  reduction: exact\n  microBatch: 4'));
    const data = await prepareDataset({ ...spec.data, baseDir: '.' });
    const runs = new Map<number, { params: Float32Array; losses: number[] }>();
    for (const world of [1, 2, 3, 4, 5, 6, 7]) {
      const losses: number[] = [];
      const results = await runWorld(spec, data, world, (rank, loss) => rank === 0 && losses.push(loss));
      for (const r of results) assert.deepEqual(r.mlp.params, results[0]!.mlp.params, `world ${world}: every rank the same`);
      runs.set(world, { params: results[0]!.mlp.params, losses });
    }
    const solo = runs.get(1)!;
    assert.equal(solo.losses.length, Math.ceil(data.train.rows / 20) * 3);
    for (const [world, run] of runs) {
      assert.deepEqual(run.losses, solo.losses, `world ${world}: every step's loss`);
      assert.ok(Buffer.from(run.params.buffer).equals(Buffer.from(solo.params.buffer)), `world ${world}: the final weights`);
    }
    // The float32 reduction of the same job does differ with the worker count, which is what this fixes.
    const fast = parseJobSpec(SYNTHETIC);
    const [fastSolo] = await runWorld(fast, data, 1);
    const [fastThree] = await runWorld(fast, data, 3);
    assert.ok(!Buffer.from(fastThree!.mlp.params.buffer).equals(Buffer.from(fastSolo!.mlp.params.buffer)), 'fast: 1 and 3 workers differ in their last bits');
  });

  test('the exact reduction: stopped mid-epoch by 3 workers and resumed by 2 from the stop checkpoint, the run ends with the bits of one never interrupted', async () => {
    const spec = parseJobSpec(SYNTHETIC.replace('batchSize: 20', 'batchSize: 20\n  reduction: exact\n  microBatch: 4'));
    const data = await prepareDataset({ ...spec.data, baseDir: '.' });
    const loss = resolveLoss(spec, data.task);
    const fresh = (): Mlp => Mlp.create(architectureFor(spec, data.train.cols, data.task), spec.training.seed);
    const whole: number[] = [];
    const [reference] = await runWorld(spec, data, 1, (_, l) => whole.push(l));
    // A checkpoint's arrays are the run's own, and a resumed run takes them as its own: copies throughout.
    const copy = (snap: TrainSnapshot): TrainSnapshot => ({ ...snap, params: Float32Array.from(snap.params), optimizer: { ...snap.optimizer, slots: Float32Array.from(snap.optimizer.slots) } });
    // Three workers, stopped after step 17 (mid-epoch 2).
    let saved: TrainSnapshot | null = null;
    let done = 0;
    const losses: number[] = [];
    const three = inProcessWorld(3);
    await Promise.all(
      three.map((collective) =>
        train({
          spec,
          data,
          loss,
          collective,
          mlp: fresh(),
          onStep: (p) => {
            if (collective.rank === 0) {
              done += 1;
              losses.push(p.stepLoss);
            }
          },
          shouldStop: () => done >= 17,
          checkpoint: {
            everySteps: 0,
            everyEpoch: false,
            save: async (snap, reason) => {
              if (reason === 'stop' && collective.rank === 0) {
                saved = copy(snap);
              }
            },
          },
        }),
      ),
    );
    assert.ok(saved !== null, 'a stop checkpoint');
    const stop = saved as TrainSnapshot;
    assert.equal(stop.loop.globalStep, 17);
    assert.ok(typeof stop.loop.exactBound === 'number' && stop.loop.exactBound > 0, 'the checkpoint carries the next step\'s bound');
    const two = inProcessWorld(2);
    const resumed = await Promise.all(
      two.map((collective, rank) => train({ spec, data, loss, collective, mlp: fresh(), resume: copy(stop), onStep: (p) => rank === 0 && losses.push(p.stepLoss) })),
    );
    assert.deepEqual(losses, whole, 'every step\'s loss');
    assert.ok(Buffer.from(resumed[0]!.mlp.params.buffer).equals(Buffer.from(reference!.mlp.params.buffer)), 'the final weights');
    // The resumed run takes its scale from the checkpoint: with a bound of 2^100 there, every
    // gradient rounds to 0 on the first step after it, and the run no longer ends the same.
    // (Most gradients are exact on any scale used here, so the match above alone would not show it.)
    const coarse = { ...copy(stop), loop: { ...stop.loop, exactBound: 2 ** 100 } };
    const [off] = await Promise.all(inProcessWorld(1).map((collective) => train({ spec, data, loss, collective, mlp: fresh(), resume: coarse })));
    assert.ok(!Buffer.from(off!.mlp.params.buffer).equals(Buffer.from(reference!.mlp.params.buffer)), 'a bound from the checkpoint is used');
  });

  test('a batch smaller than the world: empty shares contribute nothing', async () => {
    const spec = parseJobSpec(SYNTHETIC.replace('batchSize: 20', 'batchSize: 3').replace('epochs: 3', 'epochs: 1'));
    const data = await prepareDataset({ ...spec.data, baseDir: '.' });
    const [solo] = await runWorld(spec, data, 1);
    const five = await runWorld(spec, data, 5);
    assert.ok(relL2(five[0]!.mlp.params, solo!.mlp.params) < 1e-4);
    assert.equal(five[0]!.steps, solo!.steps);
  });

  test('Iris, the documented example: test accuracy at least 0.93; early stopping restores the best epoch; no leaks', async () => {
    const spec = await loadJobSpec(IRIS_EXAMPLE);
    const data = await prepareDataset({ ...spec.data, baseDir: '.' });
    const tensors = tf.memory().numTensors;
    const mlp = Mlp.create(architectureFor(spec, data.train.cols, data.task), spec.training.seed);
    let end: TrainSnapshot | null = null;
    const checkpoint = { everySteps: 0, everyEpoch: false, save: async (s: TrainSnapshot, reason: string) => void (reason === 'end' && (end = s)) };
    const result = await train({ spec, data, mlp, loss: 'cross-entropy', checkpoint });
    assert.ok(!result.interrupted);
    assert.ok(result.final.test!.accuracy! >= 0.93, `test accuracy ${result.final.test!.accuracy}`);
    assert.equal(result.stoppedEarly, true, 'Iris stops well before 200 epochs');
    assert.equal(result.history.length - result.bestEpoch, 20);
    const bestVal = Math.min(...result.history.map((h) => h.validation!.loss));
    assert.ok(Math.abs(result.final.validation!.loss - bestVal) < 1e-6, 'the best epoch\'s weights are restored');
    // The 'end' snapshot (which a worker keeps, and the end checkpoint writes) still holds
    // the last epoch's weights: the best were restored by adopting their array, not by
    // writing them over the last ones.
    const last = evaluate(Mlp.fromParams(mlp.arch, end!.params), evalData(data.validation), 'cross-entropy').loss;
    assert.ok(Math.abs(last - result.history.at(-1)!.validation!.loss) < 1e-6, `the end snapshot's weights give ${last}, not the last epoch's loss`);
    assert.notDeepEqual(end!.params, result.mlp.params);
    assert.deepEqual(end!.bestParams, result.mlp.params);
    assert.equal(tf.memory().numTensors, tensors);
  });

  test('shouldStop ends training after the current step', async () => {
    const spec = parseJobSpec(SYNTHETIC);
    const data = await prepareDataset({ ...spec.data, baseDir: '.' });
    const mlp = Mlp.create(architectureFor(spec, data.train.cols, data.task), 1);
    let steps = 0;
    const result = await train({ spec, data, mlp, loss: 'cross-entropy', onStep: () => (steps += 1), shouldStop: () => steps >= 4 });
    assert.equal(result.interrupted, true);
    assert.equal(result.steps, 4);
    assert.equal(result.final, null, 'a stopped run is not evaluated');
  });

  test('a stop requested by a timer (as a signal handler does) is seen between steps, mid-epoch', async () => {
    // One long epoch: in one process no step awaits I/O, so only the loop's own yields let the timer run.
    const spec = parseJobSpec(SYNTHETIC.replace('rows=300', 'rows=5000').replace('batchSize: 20', 'batchSize: 1').replace('epochs: 3', 'epochs: 1'));
    const data = await prepareDataset({ ...spec.data, baseDir: '.' });
    const mlp = Mlp.create(architectureFor(spec, data.train.cols, data.task), 1);
    let stop = false;
    let stepsAtStop = -1;
    let steps = 0;
    const saved: string[] = [];
    const timer = setTimeout(() => {
      stop = true;
      stepsAtStop = steps;
    }, 30);
    const result = await train({
      spec,
      data,
      mlp,
      loss: 'cross-entropy',
      onStep: () => (steps += 1),
      shouldStop: () => stop,
      checkpoint: { everySteps: 0, everyEpoch: true, save: async (s, reason) => void saved.push(`${reason}@${s.loop.globalStep}`) },
    });
    clearTimeout(timer);
    assert.ok(stepsAtStop > 0, 'the timer ran during the epoch');
    assert.equal(result.interrupted, true);
    assert.equal(result.steps, stepsAtStop, 'stopped after the step during which the stop came');
    assert.ok(result.steps < data.train.rows, `stopped at step ${result.steps} of ${data.train.rows}`);
    assert.deepEqual(saved, [`stop@${result.steps}`]);
  });
});
