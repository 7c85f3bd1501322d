/**
 * Evaluation in batches: mean loss, accuracy and (for classification) a confusion
 * matrix whose row is the true class and column the predicted one.
 */
import * as tf from '@tensorflow/tfjs-core';
import { logits } from './forward.js';
import { type LossName, lossSum } from './loss.js';
import type { Mlp } from './mlp.js';

export interface EvalData {
  readonly rows: number;
  /** rows x inputs. */
  readonly x: Float32Array;
  /** rows x outputs: one-hot or regression targets. */
  readonly targets: Float32Array;
  /** Class per row, for accuracy and the confusion matrix (classification only). */
  readonly labels?: Int32Array;
}

export interface EvalResult {
  readonly count: number;
  /** Summed loss and number correct (0 for regression): what a sharded evaluation adds up. */
  readonly lossSum: number;
  readonly correct: number;
  /** Mean loss per sample (no L2 penalty). */
  readonly loss: number;
  /** Fraction correct; null for regression. */
  readonly accuracy: number | null;
  /** classes x classes counts; null for regression. */
  readonly confusion: number[][] | null;
}

export function evaluate(mlp: Mlp, data: EvalData, loss: LossName, batchSize = 1024): EvalResult {
  const { inputs, outputs } = mlp.arch;
  const classify = data.labels !== undefined && mlp.arch.output === 'softmax';
  const confusion = classify ? Array.from({ length: outputs }, () => new Array<number>(outputs).fill(0)) : null;
  let total = 0;
  let correct = 0;
  for (let start = 0; start < data.rows; start += batchSize) {
    const rows = Math.min(batchSize, data.rows - start);
    const [sum, predicted] = tf.tidy(() => {
      const x = tf.tensor2d(data.x.subarray(start * inputs, (start + rows) * inputs), [rows, inputs]);
      const y = tf.tensor2d(data.targets.subarray(start * outputs, (start + rows) * outputs), [rows, outputs]);
      const z = logits(mlp, x);
      return [lossSum(loss, mlp.arch.output, z, y), classify ? tf.argMax(z, 1) : tf.zeros([0], 'int32')];
    });
    try {
      total += sum.dataSync()[0]!;
      if (confusion && data.labels) {
        const p = predicted.dataSync();
        for (let i = 0; i < rows; i++) {
          const truth = data.labels[start + i]!;
          const guess = p[i]!;
          confusion[truth]![guess]! += 1;
          if (truth === guess) correct += 1;
        }
      }
    } finally {
      sum.dispose();
      predicted.dispose();
    }
  }
  const n = data.rows;
  return {
    count: n,
    lossSum: total,
    correct,
    loss: n > 0 ? total / n : NaN,
    accuracy: classify ? (n > 0 ? correct / n : NaN) : null,
    confusion,
  };
}
