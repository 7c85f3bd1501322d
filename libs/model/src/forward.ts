/** Inference: the MLP's logits for a batch of rows (no dropout). */
import * as tf from '@tensorflow/tfjs-core';
import { activate } from './activations.js';
import type { Mlp } from './mlp.js';

/**
 * One dense layer, h x kernel + bias, with the kernel made from the parameters for this
 * call and disposed before it returns: on wasm that frees XNNPACK's packed copy of it
 * too (mlp.ts), so the backend's heap holds one layer's weights at a time.
 */
export function dense(mlp: Mlp, layer: number, h: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.add(tf.matMul(h, mlp.kernel(layer)), mlp.bias(layer)) as tf.Tensor2D);
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
