/**
 * The data-parallel training step, split in two halves around the all-reduce:
 *
 *   computeGradients: rows -> forward -> backward -> the SUM of the per-sample
 *     gradients, as one flat Float32Array in the layout of architecture.ts, followed by
 *     the loss sum, sample count and correct count.
 *   applyGradients (apply.ts): the summed buffer of all workers -> divide by the global
 *     count -> L2 -> optimizer -> new parameters.
 *
 * Backpropagation is written out by hand rather than taken from tf.grad, for two
 * reasons. The built-in dense gradient multiplies by a transposed operand, which the
 * wasm backend runs 10-40x slower than a plain matMul (DESIGN.md, "Backends"): here
 * every transpose is an explicit tf.transpose followed by a plain matMul. And the
 * input layer's gradient with respect to its input, which nobody needs, is skipped.
 * A test checks the result against tf.variableGrads.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CORRECT_COUNT, LOSS_SUM, SAMPLE_COUNT, STATS_LENGTH } from './architecture.js';
import { activate, activationBackward } from './activations.js';
import { dropoutMask } from './dropout.js';
import { ModelError } from './errors.js';
import { type LossName, lossWithGradient } from './loss.js';
import { dense } from './forward.js';
import { blocks, KERNEL_BLOCK_FLOATS } from './kernel-blocks.js';
import type { Mlp } from './mlp.js';
import { readInto } from './read-back.js';

export interface Batch {
  readonly rows: number;
  /** rows x inputs, row-major. */
  readonly x: Float32Array;
  /** rows x outputs: one-hot classes or regression targets. */
  readonly targets: Float32Array;
  /** Class index per row, to count correct predictions; absent for regression. */
  readonly labels?: Int32Array;
  /** Global sample index of each row: the key of its dropout mask. */
  readonly indices: Uint32Array;
}

export interface StepContext {
  readonly loss: LossName;
  readonly seed: number;
  /** Global step number (across epochs): with the sample index, keys dropout. */
  readonly step: number;
  /** False turns dropout off (used to compare with tf.variableGrads). */
  readonly dropout?: boolean;
  /** The most weights of a kernel block (kernel-blocks.ts); smaller in tests, to compare blocked and whole. */
  readonly kernelBlockFloats?: number;
}

export function gradientBufferLength(mlp: Mlp): number {
  return mlp.layout.size + STATS_LENGTH;
}

/**
 * Dropout masks, one reused buffer per layer index: a step made 3 MB of them (batch
 * 1,024, 512 + 256 units), and that garbage cost the step time in collections. Safe to
 * share: a step runs to its end without giving way on the backends that read
 * synchronously (drive, below), and every tensor made from a mask is disposed before
 * it ends (the cpu backend keeps the array itself, not a copy). On webgpu a mask is
 * uploaded when the forward pass uses it, before the step's first read yields; a worker
 * runs one step at a time.
 */
const maskBuffers: Float32Array[] = [];
function maskBuffer(layer: number, length: number): Float32Array {
  let buf = maskBuffers[layer];
  if (!buf || buf.length < length) maskBuffers[layer] = buf = new Float32Array(length);
  return buf.subarray(0, length);
}

/**
 * Reads `t` into `out` at `offset` and disposes it: at once where the backend reads
 * synchronously (null), else a promise of the read, which the step yields.
 */
function read(t: tf.Tensor, out: Float32Array, offset: number): Promise<void> | null {
  let pending: Promise<void> | null = null;
  try {
    pending = readInto(t, out, offset);
  } finally {
    if (!pending) t.dispose();
  }
  return pending?.finally(() => t.dispose()) ?? null;
}

/**
 * Runs a step to its end: synchronously while it yields nothing (every backend but
 * webgpu reads synchronously), else resuming as each yielded read lands. On the
 * synchronous backends a step thus never gives way to other work half-done, as when
 * it was a plain function: ring members simulated in one process (libs/train's tests)
 * share its scratch buffers (maskBuffer) and must not interleave.
 */
function drive<T>(steps: Generator<Promise<void>, T, void>): Promise<T> {
  let r: IteratorResult<Promise<void>, T>;
  try {
    r = steps.next();
  } catch (err) {
    return Promise.reject(err);
  }
  if (r.done) return Promise.resolve(r.value);
  return r.value.then(
    () => drive(steps),
    (err: unknown) => {
      steps.return(undefined as T); // runs its finally: the step's tensors are disposed
      throw err;
    },
  );
}

/**
 * Writes the summed gradients and the batch statistics into `out`
 * (length gradientBufferLength(mlp)). A batch of zero rows (a worker whose share of a
 * small batch is empty) writes zeros.
 *
 * The backend's memory holds one layer's weights at a time (mlp.ts): each kernel is
 * made from the parameters when its layer needs it and disposed when the layer is done,
 * and each layer's gradient is read into `out` and disposed before the next layer's is
 * computed. Only the activations (a few floats per unit and row) live through the step.
 * It runs synchronously where the backend reads synchronously (the promise is resolved
 * when it returns); on webgpu each read is awaited (read-back.ts, drive above).
 */
export function computeGradients(mlp: Mlp, batch: Batch, ctx: StepContext, out: Float32Array): Promise<Float32Array> {
  return drive(gradientSteps(mlp, batch, ctx, out));
}

function* gradientSteps(mlp: Mlp, batch: Batch, ctx: StepContext, out: Float32Array): Generator<Promise<void>, Float32Array, void> {
  const size = mlp.layout.size;
  if (out.length !== size + STATS_LENGTH) {
    throw new ModelError('MODEL_SHAPE_MISMATCH', `gradient buffer has ${out.length} numbers, expected ${size + STATS_LENGTH}`);
  }
  if (batch.rows === 0) return out.fill(0);
  const { arch } = mlp;
  const rows = batch.rows;
  const slots = mlp.layout.slots;
  /** Every tensor that lives through the step (the activations): disposed at its end. */
  const held: tf.Tensor[] = [];
  const hold = <T extends tf.Tensor>(t: T): T => {
    held.push(t);
    return t;
  };
  try {
    const x = hold(tf.tensor2d(batch.x, [rows, arch.inputs]));
    const targets = hold(tf.tensor2d(batch.targets, [rows, arch.outputs]));
    // Forward, keeping what backward needs: each layer's input h, pre-activation z,
    // activation a and dropout mask.
    const inputs: tf.Tensor2D[] = [];
    const zs: tf.Tensor2D[] = [];
    const as: tf.Tensor2D[] = [];
    const masks: (tf.Tensor2D | null)[] = [];
    let h: tf.Tensor2D = x;
    const blockFloats = ctx.kernelBlockFloats ?? KERNEL_BLOCK_FLOATS;
    arch.hidden.forEach((layer, l) => {
      inputs.push(h);
      const z = hold(dense(mlp, l, h, blockFloats));
      const a = layer.activation === 'linear' ? z : hold(activate(z, layer.activation));
      zs.push(z);
      as.push(a);
      let mask: tf.Tensor2D | null = null;
      if (layer.dropout > 0 && ctx.dropout !== false) {
        const m = dropoutMask(maskBuffer(l, rows * layer.units), batch.indices, layer.units, layer.dropout, l, ctx);
        mask = hold(tf.tensor2d(m, [rows, layer.units]));
      }
      masks.push(mask);
      h = mask ? hold(tf.mul(a, mask)) : a;
    });
    const last = arch.hidden.length;
    inputs.push(h);
    const logits = hold(dense(mlp, last, h, blockFloats));
    const [sum, dLogits] = tf.tidy(() => {
      const r = lossWithGradient(ctx.loss, arch.output, logits, targets);
      return [r.sum, r.dLogits] as const;
    });
    hold(sum);
    hold(dLogits);
    const stats = tf.tidy(() => {
      const correct =
        batch.labels && arch.output === 'softmax'
          ? tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), tf.tensor1d(batch.labels, 'int32')), 'float32'))
          : tf.scalar(0);
      return tf.stack([sum, correct]);
    });
    hold(stats);

    // Backward, from the output layer down; each gradient goes into `out` at once, a
    // block of the kernel's rows at a time (kernel-blocks.ts).
    let dZ = dLogits;
    for (let l = last; l >= 0; l--) {
      const d = dZ;
      const slot = slots[2 * l]!;
      const [fanIn, fanOut] = slot.shape as readonly [number, number];
      const kernelRows = blocks(fanIn, blockFloats / fanOut);
      const input = inputs[l]!;
      for (const [i0, i1] of kernelRows) {
        const g = tf.tidy(() => tf.matMul(tf.transpose(kernelRows.length === 1 ? input : tf.slice(input, [0, i0], [rows, i1 - i0])), d));
        const pending = read(g, out, slot.offset + i0 * fanOut);
        if (pending) yield pending;
      }
      const pending = read(tf.sum(d, 0), out, slots[2 * l + 1]!.offset);
      if (pending) yield pending;
      if (l === 0) break;
      const mask = masks[l - 1];
      const activation = arch.hidden[l - 1]!.activation;
      const kernel = mlp.params.subarray(slot.offset, slot.offset + slot.size);
      dZ = hold(
        tf.tidy(() => {
          // dH = dZ x kernel^T, as (kernel x dZ^T)^T: the kernel is matMul's left operand,
          // so XNNPACK packs only dZ^T (rows x units), not a transposed copy of the kernel.
          // Each block of the kernel's rows gives those rows of dH^T, and is disposed at once.
          const dT = tf.transpose(d);
          const parts = kernelRows.map(([i0, i1]) => tf.tidy(() => tf.matMul(tf.tensor2d(kernel.subarray(i0 * fanOut, i1 * fanOut), [i1 - i0, fanOut]), dT)));
          let dH = tf.transpose(parts.length === 1 ? parts[0]! : tf.concat(parts, 0)) as tf.Tensor2D;
          if (mask) dH = tf.mul(dH, mask);
          return activationBackward(dH, zs[l - 1]!, as[l - 1]!, activation);
        }),
      );
    }
    const s = new Float32Array(2); // [loss sum, correct]
    const pending = readInto(stats, s, 0);
    if (pending) yield pending;
    out[size + LOSS_SUM] = s[0]!;
    out[size + SAMPLE_COUNT] = rows;
    out[size + CORRECT_COUNT] = s[1]!;
  } finally {
    tf.dispose(held);
  }
  return out;
}
