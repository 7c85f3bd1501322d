/** Inference: the MLP's logits for a batch of rows (no dropout). */
import * as tf from '@tensorflow/tfjs-core';
import { activate } from './activations.js';
import { blocks, KERNEL_BLOCK_FLOATS, kernelColumns } from './kernel-blocks.js';
import type { Mlp } from './mlp.js';

/** The columns of a large kernel block by block (kernel-blocks.ts), reused: a step would otherwise make 16 MB of garbage per block. */
let scratch = new Float32Array(0);

/**
 * One dense layer, h x kernel + bias, with the kernel made from the parameters for this
 * call and disposed before it returns: on wasm that frees XNNPACK's packed copy of it
 * too (mlp.ts). A kernel of more than `blockFloats` weights goes a block of columns at a
 * time (kernel-blocks.ts), so the backend's heap holds one block, not one layer.
 */
export function dense(mlp: Mlp, layer: number, h: tf.Tensor2D, blockFloats = KERNEL_BLOCK_FLOATS): tf.Tensor2D {
  const slot = mlp.layout.slots[2 * layer]!;
  const [rows, cols] = slot.shape as readonly [number, number];
  if (rows * cols <= blockFloats) return tf.tidy(() => tf.add(tf.matMul(h, mlp.kernel(layer)), mlp.bias(layer)) as tf.Tensor2D);
  const kernel = mlp.params.subarray(slot.offset, slot.offset + slot.size);
  const ranges = blocks(cols, blockFloats / rows);
  const widest = Math.max(...ranges.map(([a, b]) => b - a));
  if (scratch.length < rows * widest) scratch = new Float32Array(rows * widest);
  // Each block's kernel is disposed (its tidy ends) before the next is copied into scratch.
  const parts = ranges.map(([j0, j1]) => tf.tidy(() => tf.matMul(h, kernelColumns(kernel, rows, cols, j0, j1, scratch))));
  try {
    return tf.tidy(() => tf.add(tf.concat(parts, 1), mlp.bias(layer)) as tf.Tensor2D);
  } finally {
    tf.dispose(parts);
  }
}

/** Call inside tf.tidy (the activations it makes are the caller's to dispose). */
export function logits(mlp: Mlp, x: tf.Tensor2D): tf.Tensor2D {
  let h = x;
  mlp.arch.hidden.forEach((layer, l) => {
    h = activate(dense(mlp, l, h), layer.activation);
  });
  return dense(mlp, mlp.arch.hidden.length, h);
}

/**
 * The same logits from weights the caller holds, one tensor per layout slot (e.g.
 * tf.Variables for tf.variableGrads, the reference the hand-written backward pass is
 * checked against). Call inside tf.tidy.
 */
export function logitsFrom(arch: Mlp['arch'], slots: readonly tf.Tensor[], x: tf.Tensor2D): tf.Tensor2D {
  const layer = (l: number, h: tf.Tensor2D) => tf.add(tf.matMul(h, slots[2 * l] as tf.Tensor2D), slots[2 * l + 1]!) as tf.Tensor2D;
  let h = x;
  arch.hidden.forEach((hidden, l) => {
    h = activate(layer(l, h), hidden.activation);
  });
  return layer(arch.hidden.length, h);
}
