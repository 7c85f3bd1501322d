import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createOptimizer, type OptimizerSpec } from './optimizer.js';
import { learningRateAt } from './schedule.js';
import { ModelError } from './errors.js';

/** Reference implementations in float64, one parameter at a time, written independently. */
function reference(spec: OptimizerSpec, grads: number[][], lr: number, p0: number[]): number[] {
  const p = [...p0];
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  grads.forEach((g, step) => {
    const t = step + 1;
    for (let i = 0; i < p.length; i++) {
      if (spec.name === 'adam') {
        m[i] = 0.9 * m[i]! + 0.1 * g[i]!;
        v[i] = 0.999 * v[i]! + 0.001 * g[i]! ** 2;
        const mh = m[i]! / (1 - 0.9 ** t);
        const vh = v[i]! / (1 - 0.999 ** t);
        p[i] = p[i]! - (lr * mh) / (Math.sqrt(vh) + 1e-7);
      } else {
        const mu = spec.momentum ?? 0;
        v[i] = mu * v[i]! + g[i]!;
        p[i] = p[i]! - lr * (spec.nesterov ? g[i]! + mu * v[i]! : v[i]!);
      }
    }
  });
  return p;
}

const grads = [
  [0.5, -1, 2],
  [0.25, 0.5, -3],
  [-1, 0, 1],
];
const specs: OptimizerSpec[] = [
  { name: 'sgd' },
  { name: 'sgd', momentum: 0.9 },
  { name: 'sgd', momentum: 0.9, nesterov: true },
  { name: 'adam' },
];

for (const spec of specs) {
  test(`${JSON.stringify(spec)} matches the float64 reference`, () => {
    const opt = createOptimizer(spec, 3);
    const params = new Float32Array([1, 2, 3]);
    for (const g of grads) opt.update(params, new Float32Array(g), 0.1);
    const want = reference(spec, grads, 0.1, [1, 2, 3]);
    params.forEach((p, i) => assert.ok(Math.abs(p - want[i]!) < 1e-6, `param ${i}: ${p} vs ${want[i]}`));
    assert.equal(opt.iterations, 3);
  });
}

test('plain SGD is gradient descent: p - lr * g exactly', () => {
  const opt = createOptimizer({ name: 'sgd' }, 2);
  const p = new Float32Array([1, -1]);
  opt.update(p, new Float32Array([0.5, 0.25]), 0.5);
  assert.deepEqual([...p], [0.75, -1.125]);
});

test('state round-trips: an imported optimizer continues bit-identically', () => {
  const a = createOptimizer({ name: 'adam' }, 3);
  const pa = new Float32Array([1, 2, 3]);
  a.update(pa, new Float32Array(grads[0]!), 0.01);
  const b = createOptimizer({ name: 'adam' }, 3);
  b.importState(a.exportState());
  const pb = Float32Array.from(pa);
  a.update(pa, new Float32Array(grads[1]!), 0.01);
  b.update(pb, new Float32Array(grads[1]!), 0.01);
  assert.deepEqual(pb, pa);
  assert.equal(b.iterations, 2);
});

test('importing state of the wrong kind or size is a coded error', () => {
  const adam = createOptimizer({ name: 'adam' }, 3);
  const sgd = createOptimizer({ name: 'sgd', momentum: 0.5 }, 3);
  assert.throws(() => sgd.importState(adam.exportState()), (e: unknown) => e instanceof ModelError && e.code === 'MODEL_STATE_INVALID');
  const small = createOptimizer({ name: 'adam' }, 2);
  assert.throws(() => small.importState(adam.exportState()), (e: unknown) => e instanceof ModelError && e.code === 'MODEL_STATE_INVALID');
});

test('learning-rate schedules', () => {
  const clock = (step: number) => ({ step, stepsPerEpoch: 10, totalSteps: 100 });
  assert.equal(learningRateAt(0.1, { kind: 'constant' }, clock(50)), 0.1);
  // Step decay: halve every 2 epochs (20 steps).
  assert.equal(learningRateAt(0.1, { kind: 'step', everyEpochs: 2, factor: 0.5 }, clock(19)), 0.1);
  assert.equal(learningRateAt(0.1, { kind: 'step', everyEpochs: 2, factor: 0.5 }, clock(20)), 0.05);
  assert.equal(learningRateAt(0.1, { kind: 'step', everyEpochs: 2, factor: 0.5 }, clock(45)), 0.025);
  // Cosine: full at the start, half-way at the middle, the floor at the end.
  assert.equal(learningRateAt(0.1, { kind: 'cosine' }, clock(0)), 0.1);
  assert.ok(Math.abs(learningRateAt(0.1, { kind: 'cosine' }, clock(50)) - 0.05) < 1e-12);
  assert.ok(Math.abs(learningRateAt(0.1, { kind: 'cosine', minLearningRate: 0.01 }, clock(100)) - 0.01) < 1e-12);
  // Linear warm-up, then the schedule.
  assert.ok(Math.abs(learningRateAt(0.1, { kind: 'constant', warmupSteps: 4 }, clock(0)) - 0.025) < 1e-12);
  assert.ok(Math.abs(learningRateAt(0.1, { kind: 'constant', warmupSteps: 4 }, clock(3)) - 0.1) < 1e-12);
  assert.equal(learningRateAt(0.1, { kind: 'cosine', warmupSteps: 10 }, clock(10)), 0.1);
});
