/**
 * The second half of a step: turn the summed gradient buffer of all workers into a
 * parameter update. Dividing by the global sample count here (not per worker) is what
 * makes the update independent of how the batch was split; L2 is added once, here,
 * never per worker.
 *
 * L2 follows Keras: the penalty l2 * sum(W^2) over kernels (not biases), so its
 * gradient is 2 * l2 * W.
 */
import { SAMPLE_COUNT } from './architecture.js';
import type { Mlp } from './mlp.js';
import type { Optimizer } from './optimizer.js';

export interface ApplyOptions {
  readonly learningRate: number;
  readonly l2: number;
  /** Layers whose kernel and bias stay fixed (fine-tuning); empty by default. */
  readonly frozenLayers?: ReadonlySet<number>;
}

/**
 * Applies `summed` (length params + stats; modified in place: it becomes the mean
 * gradient). Returns false, changing nothing, when the global count is zero.
 */
export function applyGradients(mlp: Mlp, optimizer: Optimizer, summed: Float32Array, options: ApplyOptions): boolean {
  const size = mlp.layout.size;
  const count = summed[size + SAMPLE_COUNT]!;
  if (!(count > 0)) return false;
  const grads = summed.subarray(0, size);
  const scale = 1 / count;
  for (let i = 0; i < size; i++) grads[i] = grads[i]! * scale;
  const params = mlp.params;
  for (const slot of mlp.layout.slots) {
    const end = slot.offset + slot.size;
    if (options.frozenLayers?.has(slot.layer)) {
      grads.fill(0, slot.offset, end);
    } else if (slot.kind === 'kernel' && options.l2 > 0) {
      const k = 2 * options.l2;
      for (let i = slot.offset; i < end; i++) grads[i] = grads[i]! + k * params[i]!;
    }
  }
  // A zero gradient still moves a parameter under momentum or Adam; frozen means
  // bit-equal, so the frozen slots are put back after the update.
  const frozen = mlp.layout.slots
    .filter((slot) => options.frozenLayers?.has(slot.layer))
    .map((slot) => ({ offset: slot.offset, values: params.slice(slot.offset, slot.offset + slot.size) }));
  optimizer.update(params, grads, options.learningRate);
  for (const { offset, values } of frozen) params.set(values, offset);
  return true;
}
