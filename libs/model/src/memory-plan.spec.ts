import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import type { Architecture } from './architecture.js';
import { selectBackend } from './backend.js';
import { evaluate } from './evaluate.js';
import { KERNEL_BLOCK_FLOATS } from './kernel-blocks.js';
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
  // A step holds per row x (4), z, a and dZ of 8 relu units (24), logits, targets and
  // dLogits of 3 outputs (9) and 2 per row: 39 floats; its largest block is the loss's,
  // 13 x 3 + 8 = 47 (the dH block of the output layer: 2 x 3 + 3 x 8 = 30): 86, 16 rows:
  // 1376. An evaluation batch is min(1024, 96) rows of 4 + 3*8 + 9*3 + 8 = 63: 6048, the
  // larger.
  assert.equal(stepFloatsPerRow(small.arch), 86);
  assert.equal(evaluationFloatsPerRow(small.arch), 63);
  assert.deepEqual(plan.items, {
    base: 100,
    parameters: 268,
    gradients: 280, // 67 + 3 statistics
    optimizerSlots: 0,
    bestWeights: 0,
    stateInTransit: 268,
    layerTensors: 128, // the largest kernel, 4 x 8, once on cpu
    blockScratch: 0, // no kernel over KERNEL_BLOCK_FLOATS
    activations: 4 * 6048,
    rows: 120 * (4 * 4 + 4 + 1),
    ring: 10,
  });
  assert.equal(plan.total, 100 + 268 + 280 + 268 + 128 + 24_192 + 2520 + 10);
  assert.equal(plan.backendHeap, 128 + 24_192);
  assert.equal(plan.backendHeapLimit, null);

  // On wasm, XNNPACK packs a copy of the kernel a matMul multiplies by: twice the largest kernel.
  const wasm = memoryPlan({ ...small, backend: 'wasm' });
  assert.equal(wasm.items.layerTensors, 256);
  assert.equal(wasm.total, plan.total + 128);
  assert.equal(wasm.backendHeap, plan.backendHeap + 128);
  assert.equal(wasm.backendHeapLimit, WASM_HEAP_LIMIT);
});

test('optimizer slots and best weights follow the optimizer and early stopping', () => {
  const slots = (optimizer: MemoryPlanInput['optimizer']) => memoryPlan({ ...small, optimizer }).items.optimizerSlots;
  assert.deepEqual([slots({ name: 'sgd' }), slots({ name: 'sgd', momentum: 0.9 }), slots({ name: 'adam' })], [0, 268, 536]);
  const adam = memoryPlan({ ...small, optimizer: { name: 'adam' }, earlyStopping: true });
  assert.equal(adam.items.bestWeights, 268);
  assert.equal(adam.items.stateInTransit, 4 * (67 + 134 + 67));
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
  assert.deepEqual([i.parameters, i.gradients, i.bestWeights], [428_589_096, 428_589_108, 428_589_096]);
  assert.equal(i.optimizerSlots, 857_178_192); // m and v
  assert.equal(i.stateInTransit, 1_714_356_384); // params, m, v, best: 16 bytes a parameter
  // One 4M-weight block of a kernel (the three large kernels go in blocks) and XNNPACK's
  // packed copy of it in the heap; the scratch its columns are copied into outside it.
  assert.equal(KERNEL_BLOCK_FLOATS, 4_194_304);
  assert.equal(i.layerTensors, 2 * 4 * 4_194_304);
  assert.equal(i.blockScratch, 4 * 4_194_304);
  // Step: 256 rows x (784 + 3*20,480 + 3*10 + 2 = 62,256 held, + the second layer's dH
  // block, blocked: 2*8192 + 4*8192 = 49,152) = 28,520,448 floats. Evaluation: 1,024
  // rows x (784 + 3*20,480 + 9*10 + 8 = 62,322) = 63,817,728 floats: larger.
  assert.equal(stepFloatsPerRow(arch), 111_408);
  assert.equal(i.activations, 4 * 63_817_728);
  assert.equal(i.rows, 70_000 * (4 * 784 + 5));
  // 36 bytes a parameter (+12 for the statistics), the block's tensors, activations, rows, base, ring.
  assert.equal(plan.total, 36 * P + 12 + 33_554_432 + 16_777_216 + 255_270_912 + 219_870_000 + 192 * MiB + 73 * MiB);
  assert.equal(plan.total, 4_660_647_076);
  // The wasm heap: one block's tensors and the activations, 0.27 GiB of its 4.
  assert.equal(plan.backendHeap, 33_554_432 + 255_270_912);
  assert.ok(plan.backendHeap < WASM_HEAP_LIMIT);
});

test('only the wasm backend has a heap limit: 4 GiB less a 64 KiB page', () => {
  assert.equal(WASM_HEAP_LIMIT, 2 ** 32 - 2 ** 16);
  assert.deepEqual(['wasm', 'cpu', 'tensorflow'].map(backendHeapLimit), [WASM_HEAP_LIMIT, null, null]);
});

/**
 * The activation factors against what the step and an evaluation really allocate: the
 * engine's peak bytes (tf.profile) over what was there before, which the plan's
 * layer tensors and activations must cover, and not by much more.
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
    const step = { ...(await tf.profile(async () => void (await computeGradients(mlp, batch, { loss, seed: 1, step: 0 }, out)))) };
    const stepPlanned = plan.items.layerTensors + 4 * rows * stepFloatsPerRow(arch);
    const stepPeak = step.peakBytes - before;
    assert.ok(stepPlanned >= stepPeak && stepPlanned <= 1.3 * stepPeak, `step of ${JSON.stringify(arch.hidden)}: planned ${stepPlanned}, peak ${stepPeak}`);
    const evaluation = { ...(await tf.profile(() => void evaluate(mlp, data(1024), loss))) };
    const evalPlanned = plan.items.layerTensors + 4 * 1024 * evaluationFloatsPerRow(arch);
    const evalPeak = evaluation.peakBytes - before;
    assert.ok(evalPlanned >= evalPeak && evalPlanned <= 1.6 * evalPeak, `evaluation of ${JSON.stringify(arch.hidden)}: planned ${evalPlanned}, peak ${evalPeak}`);
  }
});
