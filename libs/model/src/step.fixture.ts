/** What the step's tests share: made-up batches and the error measure they compare with. */
import { mix32, toGaussian } from '@ringtrain/data';
import type { Architecture } from './architecture.js';
import type { Batch } from './step.js';

/** Relative L2 distance of `a` from `b` over their first `n` numbers. */
export function relL2(a: Float32Array, b: Float32Array, n = a.length): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return Math.sqrt(num / den);
}

/** `rows` rows of Gaussian features, one-hot (or, `regression`, Gaussian) targets, rows numbered from 1,000: the same for a seed. */
export function randomBatch(arch: Architecture, rows: number, seed: number, regression = false): Batch {
  const x = new Float32Array(rows * arch.inputs).map((_, i) => toGaussian(mix32(seed, 1, i), mix32(seed, 2, i)));
  const labels = new Int32Array(rows).map((_, i) => mix32(seed, 3, i) % arch.outputs);
  const targets = new Float32Array(rows * arch.outputs);
  labels.forEach((c, r) => {
    if (regression) for (let j = 0; j < arch.outputs; j++) targets[r * arch.outputs + j] = toGaussian(mix32(seed, 4, r, j), mix32(seed, 5, r, j));
    else targets[r * arch.outputs + c] = 1;
  });
  const indices = new Uint32Array(rows).map((_, i) => 1000 + i);
  return regression ? { rows, x, targets, indices } : { rows, x, targets, labels, indices };
}
