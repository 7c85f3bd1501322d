import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Architecture } from './architecture.js';
import { selectBackend } from './backend.js';
import { evaluate, EVALUATION_YIELD_MS, evaluateYielding } from './evaluate.js';
import { Mlp } from './mlp.js';

before(async () => {
  await selectBackend('cpu');
});

const arch: Architecture = { inputs: 64, hidden: [{ units: 256, activation: 'relu', dropout: 0 }, { units: 256, activation: 'tanh', dropout: 0 }], outputs: 5, output: 'softmax' };

function data(rows: number) {
  const labels = Int32Array.from({ length: rows }, (_, r) => (r * 7) % arch.outputs);
  const targets = new Float32Array(rows * arch.outputs);
  labels.forEach((l, r) => (targets[r * arch.outputs + l] = 1));
  return { rows, x: Float32Array.from({ length: rows * arch.inputs }, (_, k) => Math.sin(k * 0.01)), targets, labels };
}

test('evaluateYielding gives what evaluate gives, and lets timers run while it works', async () => {
  const mlp = Mlp.create(arch, 3);
  const d = data(6000);
  const whole = evaluate(mlp, d, 'cross-entropy', 100);
  // A timer that should fire every few ms: it can only while the evaluation yields.
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  const started = performance.now();
  const yielding = await evaluateYielding(mlp, d, 'cross-entropy', 100);
  const ms = performance.now() - started;
  clearInterval(timer);
  assert.deepEqual(yielding, whole);
  assert.equal(yielding.count, 6000);
  assert.ok(yielding.confusion && yielding.confusion.flat().reduce((a, b) => a + b, 0) === 6000);
  // Held at most EVALUATION_YIELD_MS (plus one batch) at a time: the timer ran about once per yield.
  assert.ok(ms > 4 * EVALUATION_YIELD_MS, `the evaluation took ${ms.toFixed(0)} ms; make it longer for this test to mean anything`);
  assert.ok(ticks >= Math.floor(ms / (4 * EVALUATION_YIELD_MS)), `${ticks} timer ticks in ${ms.toFixed(0)} ms`);
});
