/**
 * bench/gpu: what each backend present on this machine does with a GPU-sized MLP.
 * For every backend asked for (default: tensorflow, webgpu, wasm) that loads here, one
 * JSON line per measurement, each naming the backend, its provider and (webgpu) the
 * adapter that ran:
 *   - matMul GFLOP/s: an n x n by n x n product (2n^3 floating-point operations), read
 *     back to the host, for each n of --sizes;
 *   - training-step samples/s: computeGradients and the Adam update of ringtrain's step
 *     on 784-4096-4096-10 (19.9M parameters) at batch 1024, as a worker runs it.
 * A backend that does not load prints one line with `present: false` and why. Timings
 * follow warm-up runs (a webgpu kernel's first use compiles its shader). The `auto`
 * order of libs/model backend.ts passes over a software WebGPU adapter; asked for by
 * name here, it runs (Mesa lavapipe: for correctness, not speed).
 *
 *   npm run gpu -w bench [-- --backends webgpu,wasm --sizes 1024,2048 --steps 3 --batch 1024]
 */
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import {
  applyGradients,
  type Architecture,
  type BackendName,
  computeGradients,
  createOptimizer,
  gradientBufferLength,
  Mlp,
  selectBackend,
} from '@ringtrain/model';
import { makeBatch, stepFlops } from '../mlp-step.js';

const { values } = parseArgs({
  options: {
    backends: { type: 'string', default: 'tensorflow,webgpu,wasm' },
    sizes: { type: 'string', default: '1024,2048' },
    steps: { type: 'string', default: '3' },
    batch: { type: 'string', default: '1024' },
  },
});
const BATCH = Number(values.batch);
const STEPS = Number(values.steps);
const ARCH: Architecture = {
  inputs: 784,
  hidden: [
    { units: 4096, activation: 'relu', dropout: 0 },
    { units: 4096, activation: 'relu', dropout: 0 },
  ],
  outputs: 10,
  output: 'softmax',
};
const MODEL = '784-4096-4096-10';

/** Milliseconds of one n x n matMul read back to the host, after one warm-up. */
async function matMulMs(n: number, reps: number): Promise<number> {
  const a = tf.randomNormal([n, n], 0, 1, 'float32', 1);
  const b = tf.randomNormal([n, n], 0, 1, 'float32', 2);
  const once = async (): Promise<void> => {
    const c = tf.matMul(a, b);
    await c.data(); // the product has landed on the host: the GPU's queue is drained
    c.dispose();
  };
  await once();
  const t0 = performance.now();
  for (let r = 0; r < reps; r++) await once();
  const ms = (performance.now() - t0) / reps;
  tf.dispose([a, b]);
  return ms;
}

const print = (line: Record<string, unknown>): void => void process.stdout.write(`${JSON.stringify({ bench: 'gpu', ...line })}\n`);

const batch = makeBatch(ARCH, BATCH);
for (const name of values.backends.split(',') as BackendName[]) {
  let backend: Awaited<ReturnType<typeof selectBackend>>;
  try {
    backend = await selectBackend(name);
  } catch (err) {
    print({ backend: name, present: false, why: (err as Error).message });
    continue;
  }
  const who = { backend: backend.name, provider: backend.provider, ...(backend.adapter ? { adapter: backend.adapter } : {}) };
  for (const n of values.sizes.split(',').map(Number)) {
    const ms = await matMulMs(n, 3);
    print({ ...who, measure: 'matMul', n, ms: Number(ms.toFixed(1)), gflops: Number(((2 * n ** 3) / ms / 1e6).toFixed(2)) });
  }
  const mlp = Mlp.create(ARCH, 1);
  const opt = createOptimizer({ name: 'adam' }, mlp.layout.size);
  const buf = new Float32Array(gradientBufferLength(mlp));
  const step = async (s: number): Promise<void> => {
    await computeGradients(mlp, batch, { loss: 'cross-entropy', seed: 1, step: s }, buf);
    applyGradients(mlp, opt, buf, { learningRate: 1e-3, l2: 0 });
  };
  await step(0); // warm-up: shaders, XNNPACK's packing
  const t0 = performance.now();
  for (let s = 1; s <= STEPS; s++) await step(s);
  const ms = (performance.now() - t0) / STEPS;
  print({
    ...who,
    measure: 'train-step',
    model: MODEL,
    parameters: mlp.layout.size,
    batch: BATCH,
    optimizer: 'adam',
    steps: STEPS,
    msPerStep: Math.round(ms),
    samplesPerSecond: Number(((BATCH / ms) * 1000).toFixed(1)),
    gflops: Number((stepFlops(ARCH, BATCH) / ms / 1e6).toFixed(2)),
  });
}
