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
 *
 * A stop (shouldStop, e.g. after SIGINT or SIGTERM) is honoured between steps: the loop
 * saves a 'stop' checkpoint and returns without the final evaluation, which on a large
 * split could outlast Kubernetes' grace period. For the signal to be seen at all, the
 * loop gives the event loop a turn every YIELD_EVERY_MS: in one process nothing in a
 * step waits on I/O, so otherwise no signal handler, timer or socket would run until
 * the epoch's end.
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
  type OptimizerState,
  SAMPLE_COUNT,
} from '@ringtrain/model';
import { TrainError } from './errors.js';
import type { JobSpec } from './spec.js';
import { type BatchScratch, evalData, trainingBatch } from './tensors.js';

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
  /** 0-based count of steps before this one, over the whole run: the step's identity. */
  readonly globalStep: number;
  /** This step's mean loss over the global batch (all workers), and its sample count. */
  readonly stepLoss: number;
  readonly stepSamples: number;
  /** This worker's time in the step: gradient and update, and the collective (all-reduce, waiting for peers included). */
  readonly computeMs: number;
  readonly commMs: number;
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

/** The model evaluated on each split after training, on the restored (best) weights, without dropout. */
export interface FinalMetrics {
  readonly train: Metrics;
  readonly validation: Metrics | null;
  readonly test: Metrics | null;
}

interface RunOutcome {
  readonly mlp: Mlp;
  readonly history: EpochRecord[];
  /** 1-based epoch whose weights the model holds. */
  readonly bestEpoch: number;
  readonly stoppedEarly: boolean;
  readonly steps: number;
  /** Wall time of this call (a resumed run counts from the resume). */
  readonly seconds: number;
  readonly samplesPerSecond: number;
}

/**
 * A run that ended: completed (every epoch, or stopped early) and evaluated, or
 * interrupted by shouldStop() and not evaluated (its 'stop' checkpoint continues it).
 */
export type TrainResult = (RunOutcome & { readonly interrupted: false; readonly final: FinalMetrics }) | (RunOutcome & { readonly interrupted: true; readonly final: null });

/** How often, at most, the loop lets the event loop run between steps (see the top of this file). */
export const YIELD_EVERY_MS = 20;

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Where the loop stands, as plain data: with the parameters and the optimizer state
 * it is everything a checkpoint needs to continue bit for bit, mid-epoch included.
 */
export interface LoopState {
  /** The epoch in progress (0-based), or the next one when stepInEpoch is 0. */
  readonly epoch: number;
  /** Steps of that epoch already done. */
  readonly stepInEpoch: number;
  /** Steps done in all: keys dropout and the learning-rate schedule. */
  readonly globalStep: number;
  /** Sums over the steps of the epoch in progress, so its record comes out whole after a resume. */
  readonly partial: { readonly lossSum: number; readonly count: number; readonly correct: number; readonly seconds: number };
  readonly history: readonly EpochRecord[];
  /** Early stopping's best validation loss so far and its 1-based epoch. */
  readonly best: { readonly loss: number; readonly epoch: number } | null;
  readonly stoppedEarly: boolean;
}

/** Everything that continues a run exactly. */
export interface TrainSnapshot {
  readonly loop: LoopState;
  readonly params: Float32Array;
  readonly optimizer: OptimizerState;
  /** Early stopping's best weights, restored at the end; null without early stopping. */
  readonly bestParams: Float32Array | null;
  /** Rows in the training split: the epoch permutation depends on it. */
  readonly trainRows: number;
}

export type EvalSplit = 'train' | 'validation' | 'test';

/**
 * Evaluates the model on a split. In a cluster it is a collective: every rank calls it
 * at the same point of the loop, evaluates its part, and the sums are reduced. `tag`
 * is the same on every rank (the global step). Resolves to null for an empty split.
 */
export type Evaluator = (split: EvalSplit, mlp: Mlp, tag: number) => Promise<Metrics | null>;

/** The evaluator of one process holding every split. */
export function localEvaluator(data: PreparedDataset, loss: LossName): Evaluator {
  const tables = { train: data.train, validation: data.validation, test: data.test };
  return async (split, mlp) => {
    const table = tables[split];
    return table.rows > 0 ? metricsOf(evaluate(mlp, evalData(table), loss)) : null;
  };
}

/**
 * The collective failed (a peer was lost, the ring was aborted for a new generation):
 * training stopped at a step boundary, and `snapshot` is this worker's last committed
 * state, from which the next generation continues.
 */
export class CollectiveAborted extends Error {
  override readonly name = 'CollectiveAborted';
  constructor(
    readonly snapshot: TrainSnapshot,
    cause: unknown,
  ) {
    super(`training stopped at step ${snapshot.loop.globalStep}: ${(cause as Error)?.message ?? String(cause)}`, { cause });
  }
}

export type CheckpointReason = 'steps' | 'epoch' | 'end' | 'stop';

export interface CheckpointHook {
  /** Save after every this many steps; 0 = never. */
  readonly everySteps: number;
  /** Save after each epoch's validation. */
  readonly everyEpoch: boolean;
  readonly save: (snapshot: TrainSnapshot, reason: CheckpointReason) => Promise<void>;
}

export interface TrainOptions {
  readonly spec: JobSpec;
  readonly data: PreparedDataset;
  readonly mlp: Mlp;
  readonly loss: LossName;
  readonly collective?: Collective;
  /** Continue from a checkpoint instead of from the start. */
  readonly resume?: TrainSnapshot;
  readonly checkpoint?: CheckpointHook;
  /** Layers whose weights stay fixed (fine-tuning). */
  readonly frozenLayers?: ReadonlySet<number>;
  readonly onStep?: (p: StepProgress) => void;
  readonly onEpoch?: (r: EpochRecord) => void;
  /** Validation and final evaluation; default: this process evaluates each whole split. */
  readonly evaluator?: Evaluator;
  /** Awaited before each epoch's steps (and a resumed epoch's rest): a worker makes sure it holds the rows. */
  readonly prepareEpoch?: (epoch: number) => Promise<void>;
  /** Checked after every step; true saves a 'stop' checkpoint and returns without the final evaluation (e.g. on SIGINT). */
  readonly shouldStop?: () => boolean;
}

export const INITIAL_LOOP: LoopState = {
  epoch: 0,
  stepInEpoch: 0,
  globalStep: 0,
  partial: { lossSum: 0, count: 0, correct: 0, seconds: 0 },
  history: [],
  best: null,
  stoppedEarly: false,
};

export function optimizerSpec(spec: JobSpec): OptimizerSpec {
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
  const scratch: BatchScratch = {};
  const size = mlp.layout.size;
  const classify = data.task.kind === 'classification';
  const hasValidation = data.validation.rows > 0;
  const evaluator = options.evaluator ?? localEvaluator(data, loss);
  const early = spec.training.earlyStopping;
  if (early && !hasValidation) {
    const issue = `training.earlyStopping: the validation split of ${data.source} has no rows (raise data.split.validation)`;
    throw new TrainError('SPEC_INVALID', issue, [issue]);
  }
  const ckpt = options.checkpoint;

  let loop: LoopState = INITIAL_LOOP;
  let bestParams: Float32Array | null = null;
  if (options.resume) {
    loop = options.resume.loop;
    mlp.setParams(options.resume.params);
    optimizer.importState(options.resume.optimizer);
    bestParams = options.resume.bestParams;
  }
  const snapshot = (): TrainSnapshot => ({
    loop,
    params: Float32Array.from(mlp.params),
    optimizer: optimizer.exportState(),
    bestParams,
    trainRows: n,
  });

  let interrupted = false;
  let samplesSeen = 0;
  const started = performance.now();
  let lastYield = started;
  /** Runs a collective; on failure, stops with the state at `at` (the last commit). */
  const collectively = async <T>(at: () => LoopState, work: () => Promise<T>): Promise<T> => {
    try {
      return await work();
    } catch (err) {
      loop = at();
      throw new CollectiveAborted(snapshot(), err);
    }
  };

  while (loop.epoch < epochs && !loop.stoppedEarly && !interrupted) {
    const epoch = loop.epoch;
    const epochStart = performance.now() - loop.partial.seconds * 1000;
    let { lossSum, count, correct } = loop.partial;
    let learningRate = 0;
    let step = loop.stepInEpoch;
    const here = (s: number, seconds: number) => (): LoopState => ({
      ...loop,
      stepInEpoch: s,
      globalStep: loop.globalStep + (s - loop.stepInEpoch),
      partial: { lossSum, count, correct, seconds },
    });
    if (options.prepareEpoch) await collectively(here(step, loop.partial.seconds), () => options.prepareEpoch!(epoch));
    for (; step < perEpoch; step++) {
      const globalStep = loop.globalStep + (step - loop.stepInEpoch);
      const t0 = performance.now();
      const indices = batchIndices({ n, batchSize, seed, epoch, step, rank: collective.rank, world: collective.world });
      const batch = trainingBatch(data.train, indices, spec.data.augment, { seed, epoch }, scratch);
      computeGradients(mlp, batch, { loss, seed, step: globalStep }, buffer);
      const t1 = performance.now();
      await collectively(here(step, (t1 - epochStart) / 1000), () => collective.allReduce(buffer, globalStep));
      const t2 = performance.now();
      const stepLoss = buffer[size + LOSS_SUM]!;
      const stepSamples = buffer[size + SAMPLE_COUNT]!;
      lossSum += stepLoss;
      count += stepSamples;
      correct += buffer[size + CORRECT_COUNT]!;
      learningRate = learningRateAt(spec.training.optimizer.learningRate, spec.training.optimizer.schedule, {
        step: globalStep,
        stepsPerEpoch: perEpoch,
        totalSteps,
      });
      applyGradients(mlp, optimizer, buffer, {
        learningRate,
        l2: spec.model.l2,
        ...(options.frozenLayers ? { frozenLayers: options.frozenLayers } : {}),
      });
      samplesSeen += stepSamples;
      const t3 = performance.now();
      const elapsed = (t3 - epochStart) / 1000;
      options.onStep?.({
        globalStep,
        stepLoss: stepLoss / stepSamples,
        stepSamples,
        computeMs: t1 - t0 + (t3 - t2),
        commMs: t2 - t1,
        epoch: epoch + 1,
        epochs,
        step: step + 1,
        stepsPerEpoch: perEpoch,
        loss: lossSum / count,
        accuracy: classify ? correct / count : null,
        samplesPerSecond: count / elapsed,
      });
      if (t3 - lastYield >= YIELD_EVERY_MS) {
        await yieldToEventLoop();
        lastYield = performance.now();
      }
      const done = step + 1;
      const stop = options.shouldStop?.() === true;
      const due = ckpt !== undefined && ckpt.everySteps > 0 && (globalStep + 1) % ckpt.everySteps === 0;
      if ((stop || due) && done < perEpoch) {
        loop = {
          ...loop,
          stepInEpoch: done,
          globalStep: globalStep + 1,
          partial: { lossSum, count, correct, seconds: elapsed },
        };
        if (stop) interrupted = true;
        // The last step of an epoch is saved after validation, below.
        await ckpt?.save(snapshot(), stop ? 'stop' : 'steps');
        if (stop) break;
      } else if (stop) {
        interrupted = true;
      }
    }
    if (step < perEpoch) break;

    const seconds = (performance.now() - epochStart) / 1000;
    const val = hasValidation
      ? await collectively(here(perEpoch, seconds), () => evaluator('validation', mlp, loop.globalStep + (perEpoch - loop.stepInEpoch)))
      : null;
    const record: EpochRecord = {
      epoch: epoch + 1,
      train: { loss: lossSum / count, accuracy: classify ? correct / count : null },
      validation: val,
      learningRate,
      seconds,
      samplesPerSecond: count / seconds,
    };
    options.onEpoch?.(record);
    let best = loop.best;
    let stoppedEarly = false;
    if (early && val) {
      if (best === null || val.loss < best.loss - early.minDelta) {
        best = { loss: val.loss, epoch: epoch + 1 };
        bestParams = Float32Array.from(mlp.params);
      } else if (epoch + 1 - best.epoch >= early.patience) {
        stoppedEarly = true;
      }
    }
    loop = {
      epoch: epoch + 1,
      stepInEpoch: 0,
      globalStep: loop.globalStep + (perEpoch - loop.stepInEpoch),
      partial: INITIAL_LOOP.partial,
      history: [...loop.history, record],
      best,
      stoppedEarly,
    };
    const finished = stoppedEarly || loop.epoch >= epochs;
    if (ckpt && (finished || interrupted || ckpt.everyEpoch)) {
      await ckpt.save(snapshot(), finished ? 'end' : interrupted ? 'stop' : 'epoch');
    }
  }

  // The checkpoints above hold the last weights (a resumed run continues from them);
  // the model handed back holds the best epoch's.
  const history = [...loop.history];
  const last = snapshot();
  let bestEpoch = history.length;
  if (bestParams && loop.best && loop.best.epoch !== history.length) {
    mlp.setParams(bestParams);
    bestEpoch = loop.best.epoch;
  }
  const outcome = (): RunOutcome => {
    const seconds = (performance.now() - started) / 1000;
    return { mlp, history, bestEpoch, stoppedEarly: loop.stoppedEarly, steps: loop.globalStep, seconds, samplesPerSecond: samplesSeen / seconds };
  };
  // Stopped on request: the 'stop' checkpoint is written; evaluating now would only
  // delay the exit (a resumed run evaluates when it ends).
  if (interrupted) return { ...outcome(), interrupted: true, final: null };

  // Evaluated on every rank at once in a cluster; a failure there leaves the last
  // weights (not the restored best ones) as the state to continue from.
  const finalMetrics = async (split: EvalSplit): Promise<Metrics | null> => {
    try {
      return await evaluator(split, mlp, loop.globalStep);
    } catch (err) {
      throw new CollectiveAborted(last, err);
    }
  };
  const finalTrain = await finalMetrics('train');
  const finalValidation = await finalMetrics('validation');
  const finalTest = await finalMetrics('test');
  return {
    ...outcome(),
    interrupted: false,
    final: { train: finalTrain ?? { loss: NaN, accuracy: null }, validation: finalValidation, test: finalTest },
  };
}
