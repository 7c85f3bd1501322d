/**
 * The webgpu backend in this process, on the software adapter CI installs (Mesa lavapipe,
 * tests/system-deps.sh): found and named, a training step's gradients and an
 * evaluation equal wasm's within float32 summation order, reads that never block (its
 * dataSync needs an OffscreenCanvas, which Node lacks), no tensors left behind.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import type { Architecture } from './architecture.js';
import { selectBackend } from './backend.js';
import { evaluate, evaluateYielding } from './evaluate.js';
import { Mlp } from './mlp.js';
import { type Batch, computeGradients, gradientBufferLength } from './step.js';
import { randomBatch, relL2 } from './step.fixture.js';
import { adapterName, DETERMINISTIC_MATMUL, gpuDevicePresent, probeWebgpu } from './webgpu.js';

const arch: Architecture = {
  inputs: 40,
  hidden: [
    { units: 96, activation: 'relu', dropout: 0.2 },
    { units: 64, activation: 'tanh', dropout: 0 },
  ],
  outputs: 5,
  output: 'softmax',
};

const batch = (rows: number, seed: number): Batch => randomBatch(arch, rows, seed);

/** The same step (dropout on, a kernel in blocks) on `backend`. */
async function gradientsOn(backend: 'wasm' | 'webgpu', mlp: Mlp, b: Batch): Promise<Float32Array> {
  await selectBackend(backend);
  return computeGradients(mlp, b, { loss: 'cross-entropy', seed: 7, step: 3, kernelBlockFloats: 40 * 32 }, new Float32Array(gradientBufferLength(mlp)));
}

before(async () => {
  const probe = await probeWebgpu();
  assert.ok(probe.ok, `no WebGPU adapter: ${probe.ok ? '' : probe.why} (tests/system-deps.sh installs Mesa lavapipe)`);
});

after(async () => {
  await selectBackend('cpu');
});

test('the adapter is found and named; webgpu is selected outright, and its software adapter says so', async () => {
  const probe = await probeWebgpu();
  assert.ok(probe.ok);
  const chosen = await selectBackend('webgpu');
  assert.equal(chosen.name, 'webgpu');
  assert.equal(chosen.adapter, adapterName(probe.adapter));
  assert.equal(tf.getBackend(), 'webgpu');
  if (probe.adapter.fallback) assert.match(chosen.adapter!, /\(software\)$/);
});

test('auto on a machine with a GPU device but only a software adapter passes over it to wasm, saying why', async () => {
  const { mkdtemp, mkdir, writeFile, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dev = await mkdtemp(join(tmpdir(), 'ringtrain-dev-'));
  const was = process.env.RINGTRAIN_DEV_DIR;
  try {
    await mkdir(join(dev, 'dri'));
    await writeFile(join(dev, 'dri', 'renderD128'), '');
    process.env.RINGTRAIN_DEV_DIR = dev;
    const probe = await probeWebgpu();
    assert.ok(probe.ok && probe.adapter.fallback, 'this test needs the software adapter CI installs');
    const chosen = await selectBackend('auto');
    assert.equal(chosen.name, 'wasm');
    assert.ok(chosen.skipped.includes(`webgpu: only a software adapter (${adapterName(probe.adapter)}), slower than wasm`), JSON.stringify(chosen.skipped));
  } finally {
    if (was === undefined) delete process.env.RINGTRAIN_DEV_DIR;
    else process.env.RINGTRAIN_DEV_DIR = was;
    await rm(dev, { recursive: true, force: true });
  }
});

test('matMul on webgpu never adds with atomics: the same step on 2,500 rows twice gives the same bits', async () => {
  await selectBackend('webgpu');
  // Left to itself, tfjs-backend-webgpu splits this weight gradient's 2,500-long inner
  // dimension across workgroups that atomicAdd into the output (MatMulSplitKProgram).
  assert.equal(tf.env().get('WEBGPU_MATMUL_PROGRAM_TYPE'), DETERMINISTIC_MATMUL);
  const mlp = Mlp.create(arch, 8);
  const b = batch(2500, 5);
  const run = () => computeGradients(mlp, b, { loss: 'cross-entropy', seed: 2, step: 1 }, new Float32Array(gradientBufferLength(mlp)));
  const first = await run();
  const second = await run();
  assert.ok(Buffer.from(first.buffer).equals(Buffer.from(second.buffer)), 'identical bits');
});

test('a step`s gradients and statistics on webgpu equal wasm`s within float32 summation order', async () => {
  const mlp = Mlp.create(arch, 5);
  const b = batch(70, 9);
  const wasm = await gradientsOn('wasm', mlp, b);
  const gpu = await gradientsOn('webgpu', mlp, b);
  const size = mlp.layout.size;
  const err = relL2(gpu, wasm, size);
  assert.ok(err < 1e-5, `relative L2 ${err.toExponential(2)}`);
  // Loss sum, samples, correct: the same rows, the same dropout masks.
  assert.ok(Math.abs(gpu[size]! - wasm[size]!) / wasm[size]! < 1e-5, `loss ${gpu[size]} against ${wasm[size]}`);
  assert.deepEqual([gpu[size + 1], gpu[size + 2]], [wasm[size + 1], wasm[size + 2]]);
});

test('evaluation on webgpu: evaluateYielding equals wasm`s; the synchronous evaluate() refuses with a coded error', async () => {
  const mlp = Mlp.create(arch, 6);
  const b = batch(2500, 4);
  const data = { rows: b.rows, x: b.x, targets: b.targets, labels: b.labels! };
  await selectBackend('wasm');
  const wasm = await evaluateYielding(mlp, data, 'cross-entropy', 1024);
  await selectBackend('webgpu');
  const gpu = await evaluateYielding(mlp, data, 'cross-entropy', 1024);
  assert.ok(Math.abs(gpu.loss - wasm.loss) / wasm.loss < 1e-5, `${gpu.loss} against ${wasm.loss}`);
  assert.equal(gpu.batchLossSums.length, 3);
  assert.deepEqual(gpu.confusion, wasm.confusion);
  assert.throws(() => evaluate(mlp, data, 'cross-entropy'), { code: 'MODEL_BACKEND_UNAVAILABLE', message: /use evaluateYielding/ });
});

test('a GPU device: NVIDIA`s device files or a DRM render node; none in an empty /dev', async () => {
  const { mkdtemp, mkdir, writeFile, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dev = await mkdtemp(join(tmpdir(), 'ringtrain-dev-'));
  try {
    assert.equal(gpuDevicePresent(dev), false);
    await writeFile(join(dev, 'nvidiactl'), '');
    assert.equal(gpuDevicePresent(dev), false, 'the control device alone is no GPU');
    await writeFile(join(dev, 'nvidia0'), '');
    assert.equal(gpuDevicePresent(dev), true);
    await rm(join(dev, 'nvidia0'));
    await mkdir(join(dev, 'dri'));
    await writeFile(join(dev, 'dri', 'card0'), '');
    assert.equal(gpuDevicePresent(dev), false, 'a display card without a render node');
    await writeFile(join(dev, 'dri', 'renderD128'), '');
    assert.equal(gpuDevicePresent(dev), true);
  } finally {
    await rm(dev, { recursive: true, force: true });
  }
});

test('steps and evaluations on webgpu leave no tensors behind', async () => {
  await selectBackend('webgpu');
  const mlp = Mlp.create(arch, 7);
  const b = batch(33, 2);
  const out = new Float32Array(gradientBufferLength(mlp));
  await computeGradients(mlp, b, { loss: 'cross-entropy', seed: 1, step: 0 }, out);
  const before = tf.memory().numTensors;
  for (let s = 1; s < 4; s++) await computeGradients(mlp, b, { loss: 'cross-entropy', seed: 1, step: s }, out);
  await evaluateYielding(mlp, { rows: b.rows, x: b.x, targets: b.targets, labels: b.labels! }, 'cross-entropy');
  assert.equal(tf.memory().numTensors, before);
});
