import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
// tf.variableGrads needs gradient functions: tfjs-core registers none; tfjs-layers' bundle registers them all.
import '@tensorflow/tfjs-layers';
import { type Architecture, SAMPLE_COUNT } from './architecture.js';
import { selectBackend } from './backend.js';
import { activate } from './activations.js';
import { dense, logits, logitsFrom } from './forward.js';
import { type LossName, lossSum } from './loss.js';
import { Mlp } from './mlp.js';
import { type Batch, computeGradients, gradientBufferLength } from './step.js';
import { randomBatch, relL2 } from './step.fixture.js';

function sliceBatch(b: Batch, from: number, to: number, arch: Architecture): Batch {
  return {
    rows: to - from,
    x: b.x.slice(from * arch.inputs, to * arch.inputs),
    targets: b.targets.slice(from * arch.outputs, to * arch.outputs),
    ...(b.labels ? { labels: b.labels.slice(from, to) } : {}),
    indices: b.indices.slice(from, to),
  };
}

/** The reference: tf.variableGrads of the summed loss, on variables holding the same weights. */
function referenceGradients(mlp: Mlp, batch: Batch, loss: LossName): Float32Array {
  const out = new Float32Array(mlp.layout.size);
  const variables = mlp.slotTensors().map((t) => {
    const v = tf.variable(t, true);
    t.dispose();
    return v;
  });
  const { grads, value } = tf.variableGrads(() => {
    const x = tf.tensor2d(batch.x, [batch.rows, mlp.arch.inputs]);
    const y = tf.tensor2d(batch.targets, [batch.rows, mlp.arch.outputs]);
    return lossSum(loss, mlp.arch.output, logitsFrom(mlp.arch, variables, x), y);
  }, variables);
  variables.forEach((v, i) => out.set(grads[v.name]!.dataSync() as Float32Array, mlp.layout.slots[i]!.offset));
  tf.dispose(grads);
  tf.dispose(variables);
  value.dispose();
  return out;
}

const cases: { name: string; arch: Architecture; loss: LossName; regression?: boolean }[] = [
  {
    name: 'relu/tanh softmax cross-entropy',
    arch: { inputs: 7, hidden: [{ units: 16, activation: 'relu', dropout: 0 }, { units: 9, activation: 'tanh', dropout: 0 }], outputs: 4, output: 'softmax' },
    loss: 'cross-entropy',
  },
  {
    name: 'sigmoid softmax mse',
    arch: { inputs: 5, hidden: [{ units: 12, activation: 'sigmoid', dropout: 0 }], outputs: 3, output: 'softmax' },
    loss: 'mse',
  },
  {
    name: 'linear regression mse',
    arch: { inputs: 6, hidden: [{ units: 10, activation: 'linear', dropout: 0 }, { units: 8, activation: 'relu', dropout: 0 }], outputs: 2, output: 'linear' },
    loss: 'mse',
    regression: true,
  },
  { name: 'no hidden layer', arch: { inputs: 4, hidden: [], outputs: 3, output: 'softmax' }, loss: 'cross-entropy' },
];

describe('computeGradients', () => {
  before(async () => {
    await selectBackend('cpu');
  });

  for (const c of cases) {
    test(`${c.name}: equals tf.variableGrads within 1e-6 relative L2`, async (t) => {
      const mlp = Mlp.create(c.arch, 3);
      const batch = randomBatch(c.arch, 33, 11, c.regression);
      const out = await computeGradients(mlp, batch, { loss: c.loss, seed: 1, step: 0 }, new Float32Array(gradientBufferLength(mlp)));
      const ref = referenceGradients(mlp, batch, c.loss);
      assert.ok(ref.every(Number.isFinite) && ref.some((v) => Math.abs(v) > 1e-3), 'the reference is a real gradient');
      const err = relL2(out, ref, mlp.layout.size);
      t.diagnostic(`relative L2 error ${err.toExponential(2)}`);
      assert.ok(err <= 1e-6, `relative L2 error ${err}`);
      assert.equal(out[mlp.layout.size + SAMPLE_COUNT], 33);
    });
  }

  test('two half-batches sum to the full batch, dropout on', async (t) => {
    const arch: Architecture = {
      inputs: 8,
      hidden: [{ units: 32, activation: 'relu', dropout: 0.3 }, { units: 16, activation: 'tanh', dropout: 0.2 }],
      outputs: 3,
      output: 'softmax',
    };
    const mlp = Mlp.create(arch, 5);
    const batch = randomBatch(arch, 40, 9);
    const len = gradientBufferLength(mlp);
    const ctx = { loss: 'cross-entropy' as const, seed: 77, step: 12 };
    const full = await computeGradients(mlp, batch, ctx, new Float32Array(len));
    const a = await computeGradients(mlp, sliceBatch(batch, 0, 17, arch), ctx, new Float32Array(len));
    const b = await computeGradients(mlp, sliceBatch(batch, 17, 40, arch), ctx, new Float32Array(len));
    const sum = a.map((v, i) => v + b[i]!);
    const err = relL2(sum, full);
    t.diagnostic(`relative L2 error ${err.toExponential(2)}`);
    assert.ok(err <= 1e-6, `relative L2 error ${err}`);
    assert.equal(sum[mlp.layout.size + SAMPLE_COUNT], 40);
    // Dropout really is on: without it the gradient differs.
    const noDrop = await computeGradients(mlp, batch, { ...ctx, dropout: false }, new Float32Array(len));
    assert.ok(relL2(noDrop, full, mlp.layout.size) > 1e-2);
    // The dropout mask buffers are reused across calls of other sizes: the same bits again.
    assert.deepEqual(await computeGradients(mlp, batch, ctx, new Float32Array(len)), full);
  });

  test('an empty share writes zeros', async () => {
    const arch: Architecture = { inputs: 3, hidden: [{ units: 4, activation: 'relu', dropout: 0 }], outputs: 2, output: 'softmax' };
    const mlp = Mlp.create(arch, 1);
    const out = new Float32Array(gradientBufferLength(mlp)).fill(9);
    await computeGradients(mlp, sliceBatch(randomBatch(arch, 4, 1), 0, 0, arch), { loss: 'cross-entropy', seed: 1, step: 0 }, out);
    assert.ok(out.every((v) => v === 0));
  });

  test('a kernel in blocks gives the same bits as the whole kernel, in every layer, forward and backward', async () => {
    const arch: Architecture = {
      inputs: 13,
      hidden: [{ units: 37, activation: 'relu', dropout: 0.2 }, { units: 29, activation: 'tanh', dropout: 0 }],
      outputs: 5,
      output: 'softmax',
    };
    const mlp = Mlp.create(arch, 8);
    const batch = randomBatch(arch, 23, 4);
    const ctx = { loss: 'cross-entropy' as const, seed: 3, step: 2 };
    // On wasm as well as cpu: on wasm the blocks are what XNNPACK packs.
    for (const backend of ['cpu', 'wasm'] as const) {
      await selectBackend(backend);
      const whole = await computeGradients(mlp, batch, ctx, new Float32Array(gradientBufferLength(mlp)));
      // 1: a column (forward) or row (backward) at a time; 100: uneven blocks; 13 * 37: one block for the first layer only.
      for (const kernelBlockFloats of [1, 100, 13 * 37]) {
        const blocked = await computeGradients(mlp, batch, { ...ctx, kernelBlockFloats }, new Float32Array(gradientBufferLength(mlp)));
        assert.deepEqual(blocked, whole, `${backend}, blocks of ${kernelBlockFloats}`);
      }
      const evalWhole = tf.tidy(() => logits(mlp, tf.tensor2d(batch.x, [batch.rows, arch.inputs])).dataSync());
      const evalBlocked = tf.tidy(() => {
        let h = tf.tensor2d(batch.x, [batch.rows, arch.inputs]);
        arch.hidden.forEach((layer, l) => (h = activate(dense(mlp, l, h, 50), layer.activation)));
        return dense(mlp, arch.hidden.length, h, 50).dataSync();
      });
      assert.deepEqual(evalBlocked, evalWhole, `${backend}: evaluation's forward pass in blocks`);
    }
    await selectBackend('cpu');
  });

  test('leaks no tensors', async () => {
    const arch = cases[0]!.arch;
    const mlp = Mlp.create(arch, 3);
    const batch = randomBatch(arch, 20, 2);
    const out = new Float32Array(gradientBufferLength(mlp));
    await computeGradients(mlp, batch, { loss: 'cross-entropy', seed: 1, step: 0 }, out); // warm-up
    const before = tf.memory().numTensors;
    for (let s = 0; s < 5; s++) await computeGradients(mlp, batch, { loss: 'cross-entropy', seed: 1, step: s }, out);
    assert.equal(tf.memory().numTensors, before);
  });
});
