/**
 * bench/train-step: the data-parallel training step (computeGradients + Adam apply) on
 * an MLP 784-1024-1024-10 with batch 256, per backend; one JSON line per backend with
 * samples/s and GFLOP/s. On wasm it also times the same step with tfjs's built-in
 * gradient (tf.variableGrads), whose transposed matMuls the wasm backend runs slowly,
 * and prints the ratio measured in this run.
 *
 *   npm run train-step -w bench [-- --backends wasm,cpu --steps 20]
 */
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers'; // registers the gradient functions tf.variableGrads needs
import {
  applyGradients,
  type Architecture,
  type BackendName,
  computeGradients,
  createOptimizer,
  gradientBufferLength,
  logitsFrom,
  lossSum,
  Mlp,
  selectBackend,
} from '@ringtrain/model';
import { makeBatch, stepFlops } from '../mlp-step.js';

const { values } = parseArgs({
  options: {
    backends: { type: 'string', default: 'wasm,cpu' },
    steps: { type: 'string', default: '20' },
    batch: { type: 'string', default: '256' },
  },
});
const BATCH = Number(values.batch);
const ARCH: Architecture = {
  inputs: 784,
  hidden: [
    { units: 1024, activation: 'relu', dropout: 0 },
    { units: 1024, activation: 'relu', dropout: 0 },
  ],
  outputs: 10,
  output: 'softmax',
};

async function timeSteps(steps: number, warmup: number, run: (s: number) => void | Promise<void>): Promise<number> {
  for (let s = 0; s < warmup; s++) await run(s);
  const t0 = performance.now();
  for (let s = 0; s < steps; s++) await run(warmup + s);
  return (performance.now() - t0) / steps;
}

const batch = makeBatch(ARCH, BATCH);
for (const name of values.backends.split(',') as BackendName[]) {
  const backend = await selectBackend(name);
  const mlp = Mlp.create(ARCH, 1);
  const opt = createOptimizer({ name: 'adam' }, mlp.layout.size);
  const buf = new Float32Array(gradientBufferLength(mlp));
  // The pure-JS cpu backend is ~50x slower: fewer steps keep the run short.
  const steps = backend.name === 'cpu' ? Math.min(3, Number(values.steps)) : Number(values.steps);
  const ms = await timeSteps(steps, 2, async (s) => {
    await computeGradients(mlp, batch, { loss: 'cross-entropy', seed: 1, step: s }, buf);
    applyGradients(mlp, opt, buf, { learningRate: 1e-3, l2: 0 });
  });
  const line: Record<string, unknown> = {
    bench: 'train-step',
    backend: backend.name,
    model: '784-1024-1024-10',
    batch: BATCH,
    optimizer: 'adam',
    steps,
    msPerStep: Number(ms.toFixed(1)),
    samplesPerSecond: Math.round((BATCH / ms) * 1000),
    gflops: Number((stepFlops(ARCH, BATCH) / ms / 1e6).toFixed(2)),
  };
  if (backend.name === 'wasm') {
    // The same gradients through tfjs's own autodiff, for the ratio.
    const x = tf.tensor2d(batch.x, [BATCH, ARCH.inputs]);
    const y = tf.tensor2d(batch.targets, [BATCH, ARCH.outputs]);
    const builtinMs = await timeSteps(3, 1, () => {
      const variables = mlp.slotTensors().map((t) => {
        const v = tf.variable(t, true);
        t.dispose();
        return v;
      });
      const { grads, value } = tf.variableGrads(() => lossSum('cross-entropy', 'softmax', logitsFrom(mlp.arch, variables, x), y), variables);
      variables.forEach((v, i) => buf.set(grads[v.name]!.dataSync() as Float32Array, mlp.layout.slots[i]!.offset));
      tf.dispose(grads);
      tf.dispose(variables);
      value.dispose();
      applyGradients(mlp, opt, buf.fill(1, mlp.layout.size + 1, mlp.layout.size + 2), { learningRate: 1e-3, l2: 0 });
    });
    x.dispose();
    y.dispose();
    line['builtinGradientSamplesPerSecond'] = Math.round((BATCH / builtinMs) * 1000);
    line['speedupOverBuiltin'] = Number((builtinMs / ms).toFixed(1));
  }
  console.log(JSON.stringify(line));
}
