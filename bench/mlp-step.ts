/** What the step benchmarks (train-step, gpu) share: a made-up batch and a step's FLOPs. */
import { mix32, toGaussian } from '@ringtrain/data';
import { type Architecture, type Batch, forwardMacs } from '@ringtrain/model';

/** `rows` rows of Gaussian features with one-hot labels, the same on every run. */
export function makeBatch(arch: Architecture, rows: number): Batch {
  const x = new Float32Array(rows * arch.inputs).map((_, i) => toGaussian(mix32(1, i), mix32(2, i)));
  const labels = new Int32Array(rows).map((_, i) => mix32(3, i) % arch.outputs);
  const targets = new Float32Array(rows * arch.outputs);
  labels.forEach((c, r) => (targets[r * arch.outputs + c] = 1));
  return { rows, x, targets, labels, indices: new Uint32Array(rows).map((_, i) => i) };
}

/** FLOPs of one step: forward 2BM, weight gradients 2BM, input gradients 2B(M - first layer). */
export function stepFlops(arch: Architecture, rows: number): number {
  const macs = forwardMacs(arch);
  const firstLayer = arch.inputs * arch.hidden[0]!.units;
  return 2 * rows * (macs + macs + (macs - firstLayer));
}
