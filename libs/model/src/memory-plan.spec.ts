import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import type { Architecture } from './architecture.js';
import { selectBackend } from './backend.js';
import { evaluate } from './evaluate.js';
import { backendHeapLimit, evaluationFloatsPerRow, memoryPlan, type MemoryPlanInput, stepFloatsPerRow, WASM_HEAP_LIMIT } from './memory-plan.js';
import { Mlp } from './mlp.js';
import type { LossName } from './loss.js';
import { computeGradients, gradientBufferLength } from './step.js';

const MiB = 2 ** 20;

before(async () => {
  await selectBackend('cpu');
});

const small: MemoryPlanInput = {
  arch: { inputs: 4, hidden: [{ units: 8, activation: 'relu', dropout: 0 }], outputs: 3, output: 'softmax' },
  optimizer: { name: 'sgd' },
  earlyStopping: false,
  batchRows: 16,
  rows: { train: 96, validation: 12, test: 12 },
  cols: 4,
  backend: 'cpu',
  baseBytes: 100,
  ringBytes: 10,
};

test('a small model, by hand: every item, the total and the backend`s part', () => {
  // 4-8-3: 4*8 + 8 + 8*3 + 3 = 67 parameters; plain sgd keeps no slots.
  const plan = memoryPlan(small);
  assert.equal(plan.parameterCount, 67);
  // A step keeps per row 2*4 (x, its transpose) + 7*8 (relu) + 13*3 (output) + 8 = 111
  // floats, 16 rows: 1776. An evaluation batch is min(1024, 96) rows of 4 + 3*8 + 9*3 + 8 =
  // 63: 6048, the larger.
  assert.equal(stepFloatsPerRow(small.arch), 111);
  assert.equal(evaluationFloatsPerRow(small.arch), 63);
  assert.deepEqual(plan.items, {
    base: 100,
    parameters: 268,
    variables: 0, // cpu: the variables are the staging copy
    staging: 268,
    gradients: 280, // 67 + 3 statistics
    gradientTensors: 268,
    transposes: 96, // the second kernel, 8 x 3
    packedWeights: 0, // wasm only
    optimizerSlots: 0,
    bestWeights: 0,
    heldState: 268,
    stateInTransit: 268,
    activations: 4 * 6048,
    rows: 120 * (4 * 4 + 4 + 1),
    ring: 10,
  });
  assert.equal(plan.total, 100 + 268 + 268 + 280 + 268 + 96 + 268 + 268 + 24_192 + 2520 + 10);
  assert.equal(plan.backendHeap, 268 + 96 + 24_192);
  assert.equal(plan.backendHeapLimit, null);

  // On wasm the variables are a copy, and XNNPACK packs each matMul's right operand: both
  // kernels (32 + 24), the transpose (24), each layer's dZ (16 rows x (8 + 3)): 256 floats.
  const wasm = memoryPlan({ ...small, backend: 'wasm' });
  assert.equal(wasm.items.variables, 268);
  assert.equal(wasm.items.packedWeights, 4 * 256);
  assert.equal(wasm.total, plan.total + 268 + 1024);
  assert.equal(wasm.backendHeap, plan.backendHeap + 268 + 1024);
  assert.equal(wasm.backendHeapLimit, WASM_HEAP_LIMIT);
});

test('optimizer slots and best weights follow the optimizer and early stopping', () => {
  const slots = (optimizer: MemoryPlanInput['optimizer']) => memoryPlan({ ...small, optimizer }).items.optimizerSlots;
  assert.deepEqual([slots({ name: 'sgd' }), slots({ name: 'sgd', momentum: 0.9 }), slots({ name: 'adam' })], [0, 268, 536]);
  const adam = memoryPlan({ ...small, optimizer: { name: 'adam' }, earlyStopping: true });
  assert.equal(adam.items.bestWeights, 268);
  assert.equal(adam.items.heldState, 4 * (67 + 134 + 67));
  assert.equal(adam.items.stateInTransit, adam.items.heldState);
});

test('784-8192-8192-4096-10 with Adam and early stopping, a quarter of a 1,024 batch, Fashion-MNIST`s rows, on wasm', () => {
  const arch: Architecture = {
    inputs: 784,
    hidden: [
      { units: 8192, activation: 'relu', dropout: 0 },
      { units: 8192, activation: 'relu', dropout: 0 },
      { units: 4096, activation: 'relu', dropout: 0 },
    ],
    outputs: 10,
    output: 'softmax',
  };
  const plan = memoryPlan({
    arch,
    optimizer: { name: 'adam' },
    earlyStopping: true,
    batchRows: 256,
    rows: { train: 54_000, validation: 6000, test: 10_000 },
    cols: 784,
    backend: 'wasm',
    baseBytes: 192 * MiB,
    ringBytes: 73 * MiB,
  });
  // Kernels 6,422,528 + 67,108,864 + 33,554,432 + 40,960; biases 8,192 + 8,192 + 4,096 + 10.
  const P = 107_147_274;
  assert.equal(plan.parameterCount, P);
  const i = plan.items;
  assert.deepEqual(
    [i.parameters, i.variables, i.staging, i.gradients, i.gradientTensors, i.bestWeights],
    [428_589_096, 428_589_096, 428_589_096, 428_589_108, 428_589_096, 428_589_096],
  );
  assert.equal(i.optimizerSlots, 857_178_192); // m and v
  assert.equal(i.heldState, 1_714_356_384); // params, m, v, best: 16 bytes a parameter
  assert.equal(i.stateInTransit, 1_714_356_384);
  assert.equal(i.transposes, 4 * (67_108_864 + 33_554_432 + 40_960));
  // XNNPACK's copies: every kernel (107,126,784), every transpose, and dZ, 256 x (8192+8192+4096+10).
  assert.equal(i.packedWeights, 4 * (107_126_784 + 100_704_256 + 256 * 20_490));
  // Step: 256 rows x (2*784 + 7*(8192+8192+4096) + 13*10 + 8 = 145,066) = 37,136,896 floats.
  // Evaluation: 1,024 rows x (784 + 3*20,480 + 9*10 + 8 = 62,322) = 63,817,728 floats: larger.
  assert.equal(i.activations, 4 * 63_817_728);
  assert.equal(i.rows, 70_000 * (4 * 784 + 5));
  // 64 bytes a parameter (+12 for the statistics), transposes, packed weights, activations, rows, base, ring.
  assert.equal(plan.total, 64 * P + 12 + 402_817_024 + 852_305_920 + 255_270_912 + 219_870_000 + 192 * MiB + 73 * MiB);
  assert.equal(plan.total, 8_865_562_044);
  // The wasm heap: variables, gradient tensors, transposes, packed weights, activations: 2.2 GiB of its 4.
  assert.equal(plan.backendHeap, 2 * 428_589_096 + 402_817_024 + 852_305_920 + 255_270_912);
  assert.equal(plan.backendHeap, 2_367_572_048);
  assert.ok(plan.backendHeap < WASM_HEAP_LIMIT);
});

test('only the wasm backend has a heap limit: 4 GiB less a 64 KiB page', () => {
  assert.equal(WASM_HEAP_LIMIT, 2 ** 32 - 2 ** 16);
  assert.deepEqual(['wasm', 'cpu', 'tensorflow'].map(backendHeapLimit), [WASM_HEAP_LIMIT, null, null]);
});

/**
 * The activation factors against what the step and an evaluation really allocate: the
 * engine's peak bytes (tf.profile) over what was there before, which the plan's
 * gradient tensors, transposes and activations must cover, and not by much more.
 */
test('the plan bounds the tensors a step and an evaluation keep (tf.profile peak bytes)', async () => {
  const relu = (units: number, dropout = 0) => ({ units, activation: 'relu' as const, dropout });
  const cases: { arch: Architecture; loss: LossName; rows: number }[] = [
    { arch: { inputs: 20, hidden: [relu(64)], outputs: 5, output: 'softmax' }, loss: 'cross-entropy', rows: 32 },
    { arch: { inputs: 20, hidden: [relu(64, 0.2), { units: 32, activation: 'tanh', dropout: 0 }], outputs: 5, output: 'softmax' }, loss: 'cross-entropy', rows: 64 },
    { arch: { inputs: 10, hidden: [{ units: 128, activation: 'sigmoid', dropout: 0.1 }], outputs: 3, output: 'softmax' }, loss: 'mse', rows: 100 },
    { arch: { inputs: 10, hidden: [{ units: 128, activation: 'linear', dropout: 0 }], outputs: 1, output: 'linear' }, loss: 'mse', rows: 100 },
    { arch: { inputs: 784, hidden: [relu(512, 0.2), relu(256, 0.2)], outputs: 10, output: 'softmax' }, loss: 'cross-entropy', rows: 128 },
  ];
  for (const { arch, loss, rows } of cases) {
    const mlp = Mlp.create(arch, 1);
    try {
      const data = (n: number) => {
        const labels = Int32Array.from({ length: n }, (_, r) => r % arch.outputs);
        const targets = new Float32Array(n * arch.outputs);
        labels.forEach((l, r) => (targets[r * arch.outputs + l] = 1));
        return { rows: n, x: Float32Array.from({ length: n * arch.inputs }, (_, k) => (k % 7) / 7), targets, labels };
      };
      const plan = memoryPlan({ ...small, arch, batchRows: rows, rows: { train: rows, validation: 0, test: 0 } });
      const before = tf.memory().numBytes;
      const out = new Float32Array(gradientBufferLength(mlp));
      const batch = { ...data(rows), indices: Uint32Array.from({ length: rows }, (_, r) => r) };
      // tf.profile returns the engine's one profile object: copy it before the next.
      const step = { ...(await tf.profile(() => void computeGradients(mlp, batch, { loss, seed: 1, step: 0 }, out))) };
      const stepPlanned = plan.items.gradientTensors + plan.items.transposes + 4 * rows * stepFloatsPerRow(arch);
      const stepPeak = step.peakBytes - before;
      assert.ok(stepPlanned >= stepPeak && stepPlanned <= 1.3 * stepPeak, `step of ${JSON.stringify(arch.hidden)}: planned ${stepPlanned}, peak ${stepPeak}`);
      const evaluation = { ...(await tf.profile(() => void evaluate(mlp, data(1024), loss))) };
      const evalPlanned = 4 * 1024 * evaluationFloatsPerRow(arch);
      const evalPeak = evaluation.peakBytes - before;
      assert.ok(evalPlanned >= evalPeak && evalPlanned <= 1.6 * evalPeak, `evaluation of ${JSON.stringify(arch.hidden)}: planned ${evalPlanned}, peak ${evalPeak}`);
    } finally {
      mlp.dispose();
    }
  }
});
