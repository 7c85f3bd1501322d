/**
 * Evaluation in batches: mean loss, accuracy and (for classification) a confusion
 * matrix whose row is the true class and column the predicted one.
 */
import * as tf from '@tensorflow/tfjs-core';
import { logits } from './forward.js';
import { type LossName, lossSum } from './loss.js';
import { EVALUATION_BATCH } from './memory-plan.js';
import type { Mlp } from './mlp.js';
import { ModelError } from './errors.js';
import { syncReads } from './read-back.js';

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
  /**
   * Each batch's loss sum, in order (lossSum is their float64 sum from 0, in that order):
   * an evaluation sharded by whole batches gives them back bit for bit, so their sum in
   * order is the single process's, whatever the worker count (libs/train's exact reduction).
   */
  readonly batchLossSums: readonly number[];
  readonly correct: number;
  /** Mean loss per sample (no L2 penalty). */
  readonly loss: number;
  /** Fraction correct; null for regression. */
  readonly accuracy: number | null;
  /** classes x classes counts; null for regression. */
  readonly confusion: number[][] | null;
}

/** What an evaluation adds up, batch by batch. */
interface Tally {
  total: number;
  readonly batches: number[];
  correct: number;
  readonly confusion: number[][] | null;
}

function tally(mlp: Mlp, data: EvalData): Tally {
  const { outputs } = mlp.arch;
  const classify = data.labels !== undefined && mlp.arch.output === 'softmax';
  return { total: 0, batches: [], correct: 0, confusion: classify ? Array.from({ length: outputs }, () => new Array<number>(outputs).fill(0)) : null };
}

/**
 * Rows [start, start + rows) of `data` into `t`: at once where the backend reads
 * synchronously, else (webgpu) once the returned promise resolves.
 */
function evaluateBatch(mlp: Mlp, data: EvalData, loss: LossName, start: number, rows: number, t: Tally): Promise<void> | null {
  const { inputs, outputs } = mlp.arch;
  const classify = t.confusion !== null;
  const [sum, predicted] = tf.tidy(() => {
    const x = tf.tensor2d(data.x.subarray(start * inputs, (start + rows) * inputs), [rows, inputs]);
    const y = tf.tensor2d(data.targets.subarray(start * outputs, (start + rows) * outputs), [rows, outputs]);
    const z = logits(mlp, x);
    return [lossSum(loss, mlp.arch.output, z, y), classify ? tf.argMax(z, 1) : tf.zeros([0], 'int32')];
  });
  const add = (batchSum: number, p: tf.TypedArray | null): void => {
    t.batches.push(batchSum);
    t.total += batchSum;
    if (t.confusion && data.labels && p) {
      for (let i = 0; i < rows; i++) {
        const truth = data.labels[start + i]!;
        const guess = p[i]!;
        t.confusion[truth]![guess]! += 1;
        if (truth === guess) t.correct += 1;
      }
    }
  };
  const dispose = (): void => {
    sum.dispose();
    predicted.dispose();
  };
  if (!syncReads()) {
    return Promise.all([sum.data(), classify ? predicted.data() : null])
      .then(([s, p]) => add(s[0]!, p))
      .finally(dispose);
  }
  try {
    add(sum.dataSync()[0]!, classify ? predicted.dataSync() : null);
  } finally {
    dispose();
  }
  return null;
}

function resultOf(t: Tally, n: number): EvalResult {
  const classify = t.confusion !== null;
  return {
    count: n,
    lossSum: t.total,
    batchLossSums: t.batches,
    correct: t.correct,
    loss: n > 0 ? t.total / n : NaN,
    accuracy: classify ? (n > 0 ? t.correct / n : NaN) : null,
    confusion: t.confusion,
  };
}

/** The evaluation, read synchronously: not on webgpu (evaluateYielding works everywhere). */
export function evaluate(mlp: Mlp, data: EvalData, loss: LossName, batchSize = EVALUATION_BATCH): EvalResult {
  if (!syncReads()) throw new ModelError('MODEL_BACKEND_UNAVAILABLE', 'evaluate() reads tensors synchronously, which the webgpu backend cannot: use evaluateYielding()');
  const t = tally(mlp, data);
  for (let start = 0; start < data.rows; start += batchSize) evaluateBatch(mlp, data, loss, start, Math.min(batchSize, data.rows - start), t);
  return resultOf(t, data.rows);
}

/** How long an evaluation may hold the event loop before it lets timers and sockets run. */
export const EVALUATION_YIELD_MS = 20;

/**
 * evaluate(), letting the event loop run between batches every EVALUATION_YIELD_MS: what
 * a worker and `train` use. Evaluating a large model on a large split takes seconds (the
 * training split of Fashion-MNIST on a 5.8M-parameter model: about 10 s a worker here),
 * and a worker whose event loop is held that long sends no heartbeat: its coordinator
 * took all three for lost at the end of every run, and the run never ended. The same
 * bits as evaluate(): the batches and their order are the same.
 */
export async function evaluateYielding(mlp: Mlp, data: EvalData, loss: LossName, batchSize = EVALUATION_BATCH): Promise<EvalResult> {
  const t = tally(mlp, data);
  let last = performance.now();
  for (let start = 0; start < data.rows; start += batchSize) {
    const pending = evaluateBatch(mlp, data, loss, start, Math.min(batchSize, data.rows - start), t);
    if (pending) await pending;
    if (performance.now() - last >= EVALUATION_YIELD_MS) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      last = performance.now();
    }
  }
  return resultOf(t, data.rows);
}
