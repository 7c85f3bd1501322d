/**
 * Losses, summed over the samples of a batch (the data-parallel step sums per-sample
 * losses and gradients, and divides by the global count once, after the all-reduce).
 *
 * - cross-entropy with a softmax output, computed from the logits through logSoftmax
 *   (stable for large logits); d(sum CE)/d logits = softmax(z) - y.
 * - mse: the mean over output units of the squared error, per sample. With a linear
 *   output it is plain regression; with a softmax output (classification trained with
 *   MSE on one-hot targets) the gradient passes through the softmax Jacobian.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { OutputActivation } from './architecture.js';

export type LossName = 'cross-entropy' | 'mse';
export const LOSS_NAMES: readonly LossName[] = ['cross-entropy', 'mse'];

export interface LossResult {
  /** Scalar: the loss summed over the rows. */
  readonly sum: tf.Scalar;
  /** d(sum)/d(logits), rows x outputs. */
  readonly dLogits: tf.Tensor2D;
}

/** Loss sum and its gradient with respect to the final layer's pre-activation. Call inside tf.tidy. */
export function lossWithGradient(
  loss: LossName,
  output: OutputActivation,
  logits: tf.Tensor2D,
  targets: tf.Tensor2D,
): LossResult {
  if (loss === 'cross-entropy') {
    const logp = tf.logSoftmax(logits);
    return { sum: tf.neg(tf.sum(tf.mul(targets, logp))) as tf.Scalar, dLogits: tf.sub(tf.exp(logp), targets) };
  }
  const units = logits.shape[1];
  const prediction = output === 'softmax' ? tf.softmax(logits) : logits;
  const diff = tf.sub(prediction, targets);
  const sum = tf.div(tf.sum(tf.square(diff)), units) as tf.Scalar;
  const dPrediction = tf.mul(diff, 2 / units) as tf.Tensor2D;
  if (output === 'linear') return { sum, dLogits: dPrediction };
  // Softmax Jacobian-vector product: dz = p * (g - sum(g * p)).
  const dot = tf.sum(tf.mul(dPrediction, prediction), 1, true);
  return { sum, dLogits: tf.mul(prediction, tf.sub(dPrediction, dot)) };
}

/** The same loss sum without the gradient, for evaluation. Call inside tf.tidy. */
export function lossSum(loss: LossName, output: OutputActivation, logits: tf.Tensor2D, targets: tf.Tensor2D): tf.Scalar {
  if (loss === 'cross-entropy') return tf.neg(tf.sum(tf.mul(targets, tf.logSoftmax(logits)))) as tf.Scalar;
  const prediction = output === 'softmax' ? tf.softmax(logits) : logits;
  return tf.div(tf.sum(tf.square(tf.sub(prediction, targets))), logits.shape[1]) as tf.Scalar;
}
