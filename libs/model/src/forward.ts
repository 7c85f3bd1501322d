/** Inference: the MLP's logits for a batch of rows (no dropout). Call inside tf.tidy. */
import * as tf from '@tensorflow/tfjs-core';
import { activate } from './activations.js';
import type { Mlp } from './mlp.js';

export function logits(mlp: Mlp, x: tf.Tensor2D): tf.Tensor2D {
  let h = x;
  mlp.arch.hidden.forEach((layer, l) => {
    const z = tf.add(tf.matMul(h, mlp.kernel(l)), mlp.bias(l)) as tf.Tensor2D;
    h = activate(z, layer.activation);
  });
  const last = mlp.arch.hidden.length;
  return tf.add(tf.matMul(h, mlp.kernel(last)), mlp.bias(last)) as tf.Tensor2D;
}
