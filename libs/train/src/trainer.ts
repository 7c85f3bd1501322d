/**
 * The training loop, read top to bottom: for each epoch, for each step, this worker
 * gathers its share of the global batch, computes the summed gradient, all-reduces it
 * with the other workers, and applies the update. One process is simply a world of
 * one whose all-reduce does nothing, so `ringtrain train` and a cluster worker run the
 * same loop and, by invariant 1 of DESIGN.md, follow the same trajectory.
 *
 * After each epoch the validation split is evaluated; with early stopping, training
 * ends when validation loss has not improved by minDelta for `patience` epochs, and the
 * best epoch's weights are restored.
 */
import { batchIndices, stepsPerEpoch, type PreparedDataset } from '@ringtrain/data';
import {
  applyGradients,
  computeGradients,
  CORRECT_COUNT,
  createOptimizer,
  evaluate,
  gradientBufferLength,
  learningRateAt,
  LOSS_SUM,
  type LossName,
  Mlp,
  type OptimizerSpec,
  SAMPLE_COUNT,
} from '@ringtrain/model';
import type { JobSpec } from './spec.js';
import { evalData, trainingBatch } from './tensors.js';

/** How this worker takes part in each step. */
export interface Collective {
  readonly rank: number;
  readonly world: number;
  /** Sums `buffer` across all workers, in place. */
  allReduce(buffer: Float32Array, step: number): Promise<void>;
}

/** A world of one: the all-reduce is the identity. */
export const SOLO: Collective = { rank: 0, world: 1, allReduce: async () => {} };

export interface StepProgress {
  /** 1-based. */
  readonly epoch: number;
  readonly epochs: number;
  /** 1-based within the epoch. */
  readonly step: number;
  readonly stepsPerEpoch: number;
  /** Mean training loss over the epoch so far (all workers). */
  readonly loss: number;
  /** Training accuracy over the epoch so far; null for regression. */
  readonly accuracy: number | null;
  readonly samplesPerSecond: number;
}

export interface Metrics {
  readonly loss: number;
  readonly accuracy: number | null;
}

export interface EpochRecord {
  /** 1-based. */
  readonly epoch: number;
  /** Training loss and accuracy as measured during the epoch (dropout on). */
  readonly train: Metrics;
  readonly validation: Metrics | null;
  readonly learningRate: number;
  readonly seconds: number;
  readonly samplesPerSecond: number;
}

export interface TrainResult {
  readonly mlp: Mlp;
  readonly history: EpochRecord[];
  /** 1-based epoch whose weights the model holds. */
  readonly bestEpoch: number;
  readonly stoppedEarly: boolean;
  /** True when shouldStop() ended training before the planned epochs. */
  readonly interrupted: boolean;
  readonly steps: number;
  readonly seconds: number;
  readonly samplesPerSecond: number;
  /** Evaluated on the restored (best) weights, without dropout. */
  readonly final: { readonly train: Metrics; readonly validation: Metrics | null; readonly test: Metrics | null };
}

export interface TrainOptions {
  readonly spec: JobSpec;
  readonly data: PreparedDataset;
  readonly mlp: Mlp;
  readonly loss: LossName;
  readonly collective?: Collective;
  readonly onStep?: (p: StepProgress) => void;
  readonly onEpoch?: (r: EpochRecord) => void;
  /** Checked after every step; true finishes that step and stops (e.g. on SIGINT). */
  readonly shouldStop?: () => boolean;
}

function optimizerSpec(spec: JobSpec): OptimizerSpec {
  const o = spec.training.optimizer;
  return o.name === 'adam'
    ? { name: 'adam', beta1: o.beta1, beta2: o.beta2, epsilon: o.epsilon }
    : { name: 'sgd', momentum: o.momentum, nesterov: o.nesterov };
}

function metricsOf(result: { loss: number; accuracy: number | null }): Metrics {
  return { loss: result.loss, accuracy: result.accuracy };
}

export async function train(options: TrainOptions): Promise<TrainResult> {
  const { spec, data, mlp, loss } = options;
  const collective = options.collective ?? SOLO;
  const { batchSize, epochs, seed } = spec.training;
  const n = data.train.rows;
  const perEpoch = stepsPerEpoch(n, batchSize);
  const totalSteps = perEpoch * epochs;
  const optimizer = createOptimizer(optimizerSpec(spec), mlp.layout.size);
  const buffer = new Float32Array(gradientBufferLength(mlp));
  const size = mlp.layout.size;
  const classify = data.task.kind === 'classification';
  const validation = data.validation.rows > 0 ? evalData(data.validation) : null;
  const early = spec.training.earlyStopping;

  const history: EpochRecord[] = [];
  let best = { loss: Infinity, epoch: 0, params: null as Float32Array | null };
  let stoppedEarly = false;
  let interrupted = false;
  let globalStep = 0;
  let samplesSeen = 0;
  const started = performance.now();

  for (let epoch = 0; epoch < epochs && !stoppedEarly && !interrupted; epoch++) {
    const epochStart = performance.now();
    let lossSum = 0;
    let count = 0;
    let correct = 0;
    let learningRate = 0;
    for (let step = 0; step < perEpoch; step++) {
      const indices = batchIndices({ n, batchSize, seed, epoch, step, rank: collective.rank, world: collective.world });
      const batch = trainingBatch(data.train, indices, spec.data.augment, { seed, epoch });
      computeGradients(mlp, batch, { loss, seed, step: globalStep }, buffer);
      await collective.allReduce(buffer, globalStep);
      lossSum += buffer[size + LOSS_SUM]!;
      count += buffer[size + SAMPLE_COUNT]!;
      correct += buffer[size + CORRECT_COUNT]!;
      learningRate = learningRateAt(spec.training.optimizer.learningRate, spec.training.optimizer.schedule, {
        step: globalStep,
        stepsPerEpoch: perEpoch,
        totalSteps,
      });
      applyGradients(mlp, optimizer, buffer, { learningRate, l2: spec.model.l2 });
      globalStep += 1;
      const elapsed = (performance.now() - epochStart) / 1000;
      options.onStep?.({
        epoch: epoch + 1,
        epochs,
        step: step + 1,
        stepsPerEpoch: perEpoch,
        loss: lossSum / count,
        accuracy: classify ? correct / count : null,
        samplesPerSecond: count / elapsed,
      });
      if (options.shouldStop?.()) {
        interrupted = true;
        break;
      }
    }
    samplesSeen += count;
    const seconds = (performance.now() - epochStart) / 1000;
    const val = validation ? metricsOf(evaluate(mlp, validation, loss)) : null;
    const record: EpochRecord = {
      epoch: epoch + 1,
      train: { loss: lossSum / count, accuracy: classify ? correct / count : null },
      validation: val,
      learningRate,
      seconds,
      samplesPerSecond: count / seconds,
    };
    history.push(record);
    options.onEpoch?.(record);
    if (early && val) {
      if (val.loss < best.loss - early.minDelta) {
        best = { loss: val.loss, epoch: epoch + 1, params: Float32Array.from(mlp.params) };
      } else if (epoch + 1 - best.epoch >= early.patience) {
        stoppedEarly = true;
      }
    }
  }

  let bestEpoch = history.length;
  if (best.params && best.epoch !== history.length) {
    mlp.setParams(best.params);
    bestEpoch = best.epoch;
  }
  const seconds = (performance.now() - started) / 1000;
  return {
    mlp,
    history,
    bestEpoch,
    stoppedEarly,
    interrupted,
    steps: globalStep,
    seconds,
    samplesPerSecond: samplesSeen / seconds,
    final: {
      train: metricsOf(evaluate(mlp, evalData(data.train), loss)),
      validation: validation ? metricsOf(evaluate(mlp, validation, loss)) : null,
      test: data.test.rows > 0 ? metricsOf(evaluate(mlp, evalData(data.test), loss)) : null,
    },
  };
}
