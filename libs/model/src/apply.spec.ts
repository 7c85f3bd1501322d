import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { type Architecture, SAMPLE_COUNT } from './architecture.js';
import { applyGradients } from './apply.js';
import { selectBackend } from './backend.js';
import { Mlp } from './mlp.js';
import { createOptimizer } from './optimizer.js';
import { gradientBufferLength } from './step.js';

const ARCH: Architecture = { inputs: 2, hidden: [{ units: 2, activation: 'relu', dropout: 0 }], outputs: 2, output: 'softmax' };

before(async () => {
  await selectBackend('cpu');
});

function summed(mlp: Mlp, value: number, count: number): Float32Array {
  const buf = new Float32Array(gradientBufferLength(mlp)).fill(value);
  buf[mlp.layout.size + SAMPLE_COUNT] = count;
  return buf;
}

test('divides by the global count and adds 2*l2*W to kernels only, once', () => {
  const mlp = Mlp.create(ARCH, 1);
  const before = Float32Array.from(mlp.params);
  // Summed gradient 8 over 4 samples: mean 2.
  applyGradients(mlp, createOptimizer({ name: 'sgd' }, mlp.layout.size), summed(mlp, 8, 4), { learningRate: 0.1, l2: 0.5 });
  for (const slot of mlp.layout.slots) {
    for (let i = slot.offset; i < slot.offset + slot.size; i++) {
      const g = 2 + (slot.kind === 'kernel' ? 2 * 0.5 * before[i]! : 0);
      assert.ok(Math.abs(mlp.params[i]! - (before[i]! - 0.1 * g)) < 1e-6, `${slot.kind}[${i}]`);
    }
  }
  // The variables the tensor code reads were refreshed.
  assert.deepEqual(mlp.kernel(0).dataSync(), mlp.params.subarray(0, 4));
});

test('a zero global count changes nothing', () => {
  const mlp = Mlp.create(ARCH, 1);
  const before = Float32Array.from(mlp.params);
  assert.equal(applyGradients(mlp, createOptimizer({ name: 'adam' }, mlp.layout.size), summed(mlp, 1, 0), { learningRate: 0.1, l2: 0 }), false);
  assert.deepEqual(mlp.params, before);
});

test('frozen layers stay bit-equal under Adam while the others train, leaking no tensors', () => {
  const tensorsBefore = tf.memory().numTensors;
  const mlp = Mlp.create(ARCH, 1);
  const before = Float32Array.from(mlp.params);
  const opt = createOptimizer({ name: 'adam' }, mlp.layout.size);
  for (let s = 0; s < 3; s++) applyGradients(mlp, opt, summed(mlp, 1, 1), { learningRate: 0.1, l2: 0.1, frozenLayers: new Set([0]) });
  const layer0 = mlp.layout.slots.filter((s) => s.layer === 0);
  const end0 = layer0.at(-1)!.offset + layer0.at(-1)!.size;
  assert.deepEqual(mlp.params.subarray(0, end0), before.subarray(0, end0));
  assert.notDeepEqual(mlp.params.subarray(end0), before.subarray(end0));
  assert.equal(tf.memory().numTensors, tensorsBefore);
});
