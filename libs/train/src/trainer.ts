/**
 * The training loop, read top to bottom: for each epoch, for each step, this worker
 * gathers its share of the global batch, computes the summed gradient, all-reduces it
 * with the other workers, and applies the update. One process is simply a world of
 * one whose all-reduce does nothing, so `ringtrain train` and a cluster worker run the
 * same loop and, by invariant 1 of DESIGN.md, follow the same trajectory.
 *
 * `train()` is that loop and nothing else; each part is a function below it, in the
 * order they run: `openRun` (the optimizer, a resumed state), `trainStep`,
 * `betweenSteps` (a turn for the event loop, a stop, a checkpoint on the steps
 * schedule), `endEpoch` (validation, early stopping, the epoch's checkpoint) and
 * `finish` (the best weights restored, the final evaluation). Where the loop stands is
 * a `LoopState` (loop.ts), moved only by loop.ts's pure functions.
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
  evaluateYielding,
  gradientBufferLength,
  learningRateAt,
  LOSS_SUM,
  type LossName,
  Mlp,
  type Optimizer,
  type OptimizerSpec,
  type OptimizerState,
  SAMPLE_COUNT,
} from '@ringtrain/model';
import { type BatchScratch, evalData, trainingBatch } from './batches.js';
import { ExactStep, FIRST_BOUND } from './exact-step.js';
import { TrainError } from './errors.js';
import { earlyStopping, type EpochRecord, type EpochSums, globalStepAt, INITIAL_LOOP, loopAfterEpoch, loopAt, type LoopState, type Metrics } from './loop.js';
import type { JobSpec } from './spec.js';

/**
 * How this worker takes part in each step: the ring as a training step sees it (in a
 * cluster, apps/worker's ringCollective over libs/allreduce's Ring, whose operations
 * are its internal RingOps).
 */
export interface Collective {
  readonly rank: number;
  readonly world: number;
  /** Sums `buffer` across all workers, in place (float64: the exact reduction's integers, exact-step.ts). */
  allReduce(buffer: Float32Array | Float64Array, step: number): Promise<void>;
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
    // Yielding between batches, so that a signal (Ctrl-C) is handled during a long evaluation too.
    return table.rows > 0 ? metricsOf(await evaluateYielding(mlp, evalData(table), loss)) : null;
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
  /**
   * The loop waits for it. For every reason but 'end' the snapshot's arrays are the run's
   * own (no copy of a state that may be gigabytes): valid until save resolves, so copy
   * what is kept. The 'end' snapshot may be kept: the run is over, so nothing changes
   * its arrays any more (the best epoch's weights are restored by adopting their array,
   * Mlp.adoptParams, not by writing over the last ones).
   */
  readonly save: (snapshot: TrainSnapshot, reason: CheckpointReason) => Promise<void>;
}

export interface TrainOptions {
  readonly spec: JobSpec;
  readonly data: PreparedDataset;
  readonly mlp: Mlp;
  readonly loss: LossName;
  readonly collective?: Collective;
  /**
   * Continue from a checkpoint instead of from the start. The run takes the snapshot's
   * weights (Mlp.adoptParams), optimizer slots and best weights as its own, without a
   * copy (a 107M-parameter model's are 1.7 GB): the caller must not use them afterwards.
   */
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

export function optimizerSpec(spec: JobSpec): OptimizerSpec {
  const o = spec.training.optimizer;
  return o.name === 'adam'
    ? { name: 'adam', beta1: o.beta1, beta2: o.beta2, epsilon: o.epsilon }
    : { name: 'sgd', momentum: o.momentum, nesterov: o.nesterov };
}

function metricsOf(result: { loss: number; accuracy: number | null }): Metrics {
  return { loss: result.loss, accuracy: result.accuracy };
}

/**
 * Trains `options.mlp` in place until every epoch ran, early stopping ended the run, or
 * shouldStop() did. Rejects with CollectiveAborted (carrying the last committed state)
 * when an all-reduce, an evaluation or prepareEpoch fails.
 */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const run = openRun(options);
  while (run.loop.epoch < run.epochs && !run.loop.stoppedEarly && !run.interrupted) {
    const epoch = beginEpoch(run);
    if (options.prepareEpoch) await collectively(run, () => run.loop, () => options.prepareEpoch!(epoch.index));
    for (; epoch.step < run.perEpoch; epoch.step++) {
      const stepEnded = await trainStep(run, epoch);
      if (await betweenSteps(run, epoch, stepEnded)) break;
    }
    if (epoch.step < run.perEpoch) break;
    await endEpoch(run, epoch);
  }
  return finish(run);
}

/** A run in progress: what it was given, its buffers, and where it stands. */
interface Run {
  readonly options: TrainOptions;
  readonly collective: Collective;
  readonly evaluator: Evaluator;
  readonly optimizer: Optimizer;
  readonly epochs: number;
  readonly perEpoch: number;
  readonly totalSteps: number;
  readonly classify: boolean;
  readonly hasValidation: boolean;
  /** The step's summed gradients, then loss sum, sample count, correct count: what the all-reduce sums (fast), or what the exact reduction writes. */
  readonly buffer: Float32Array;
  /** The exact reduction, when the job asks for it (`training.reduction: exact`). */
  readonly exact: ExactStep | null;
  /** The exact reduction's bound for the next step (exact-sum.ts): the last step's largest element with headroom. */
  exactBound: number;
  readonly scratch: BatchScratch;
  /** performance.now() at the start of this call. */
  readonly started: number;
  loop: LoopState;
  /** Early stopping's best weights; null without early stopping (or before its first epoch). */
  bestParams: Float32Array | null;
  /** shouldStop() said so: the loop ends at this step (or epoch) boundary, without the final evaluation. */
  interrupted: boolean;
  /** Samples of the global batches of this call's steps, for its throughput. */
  samplesSeen: number;
  /** performance.now() when the loop last let the event loop run. */
  lastYield: number;
}

/** The epoch in progress: its sums so far, as they grow step by step. */
interface Epoch {
  /** 0-based. */
  readonly index: number;
  /** performance.now() at its start, less the seconds a resumed epoch had already run. */
  readonly start: number;
  /** The next step to run, 0-based within the epoch. */
  step: number;
  lossSum: number;
  count: number;
  correct: number;
  /** The learning rate of its last step run in this call (0 until one runs). */
  learningRate: number;
}

function openRun(options: TrainOptions): Run {
  const { spec, data, mlp, resume } = options;
  const { batchSize, epochs } = spec.training;
  const perEpoch = stepsPerEpoch(data.train.rows, batchSize);
  // A resumed run takes the snapshot's arrays as its own (TrainOptions.resume).
  const optimizer = createOptimizer(optimizerSpec(spec), mlp.layout.size, resume?.optimizer);
  const buffer = new Float32Array(gradientBufferLength(mlp));
  const hasValidation = data.validation.rows > 0;
  if (spec.training.earlyStopping && !hasValidation) {
    const issue = `training.earlyStopping: the validation split of ${data.source} has no rows (raise data.split.validation)`;
    throw new TrainError('SPEC_INVALID', issue, [issue]);
  }
  if (resume) mlp.adoptParams(resume.params);
  const started = performance.now();
  return {
    options,
    collective: options.collective ?? SOLO,
    evaluator: options.evaluator ?? localEvaluator(data, options.loss),
    optimizer,
    epochs,
    perEpoch,
    totalSteps: perEpoch * epochs,
    classify: data.task.kind === 'classification',
    hasValidation,
    buffer,
    exact: spec.training.reduction === 'exact' ? new ExactStep(spec, mlp, buffer.length) : null,
    exactBound: resume?.loop.exactBound ?? FIRST_BOUND,
    scratch: {},
    started,
    loop: resume?.loop ?? INITIAL_LOOP,
    // Training writes the weights in place: best weights that are the same array must be a copy.
    bestParams: resume?.bestParams && resume.bestParams === resume.params ? Float32Array.from(resume.bestParams) : (resume?.bestParams ?? null),
    interrupted: false,
    samplesSeen: 0,
    lastYield: started,
  };
}

function beginEpoch(run: Run): Epoch {
  const { epoch, stepInEpoch, partial } = run.loop;
  return { index: epoch, start: performance.now() - partial.seconds * 1000, step: stepInEpoch, lossSum: partial.lossSum, count: partial.count, correct: partial.correct, learningRate: 0 };
}

/** The loop with `stepInEpoch` steps of the epoch done and its sums so far, `seconds` into it. */
function epochLoop(run: Run, epoch: Epoch, stepInEpoch: number, seconds: number): LoopState {
  const partial: EpochSums = { lossSum: epoch.lossSum, count: epoch.count, correct: epoch.correct, seconds };
  return loopAt(run.loop, stepInEpoch, partial);
}

/**
 * One step: this worker's share of the global batch, its summed gradient, the all-reduce
 * (after which the step commits), the update. Resolves to performance.now() at its end.
 */
async function trainStep(run: Run, epoch: Epoch): Promise<number> {
  const { options, collective, buffer } = run;
  const { spec, data, mlp } = options;
  const { batchSize, seed } = spec.training;
  const step = epoch.step;
  const globalStep = globalStepAt(run.loop, step);
  const timing = { computeMs: 0, commMs: 0 };
  const t0 = performance.now();
  const committed = (): LoopState => epochLoop(run, epoch, step, (performance.now() - epoch.start) / 1000);
  if (run.exact) {
    run.exactBound = await run.exact.run(
      { spec, data, mlp, loss: options.loss, epoch: epoch.index, step, globalStep, rank: collective.rank, world: collective.world, scratch: run.scratch },
      run.exactBound,
      (wire) => collectively(run, committed, () => collective.allReduce(wire, globalStep)),
      buffer,
      timing,
    );
  } else {
    const indices = batchIndices({ n: data.train.rows, batchSize, seed, epoch: epoch.index, step, rank: collective.rank, world: collective.world });
    const batch = trainingBatch(data.train, indices, spec.data.augment, { seed, epoch: epoch.index }, run.scratch);
    await computeGradients(mlp, batch, { loss: options.loss, seed, step: globalStep }, buffer);
    const t1 = performance.now();
    await collectively(run, committed, () => collective.allReduce(buffer, globalStep));
    timing.computeMs = t1 - t0;
    timing.commMs = performance.now() - t1;
  }
  const t2 = performance.now();
  const size = mlp.layout.size;
  const stepLoss = buffer[size + LOSS_SUM]!;
  const stepSamples = buffer[size + SAMPLE_COUNT]!;
  epoch.lossSum += stepLoss;
  epoch.count += stepSamples;
  epoch.correct += buffer[size + CORRECT_COUNT]!;
  const { learningRate, schedule } = spec.training.optimizer;
  epoch.learningRate = learningRateAt(learningRate, schedule, { step: globalStep, stepsPerEpoch: run.perEpoch, totalSteps: run.totalSteps });
  applyGradients(mlp, run.optimizer, buffer, {
    learningRate: epoch.learningRate,
    l2: spec.model.l2,
    ...(options.frozenLayers ? { frozenLayers: options.frozenLayers } : {}),
  });
  run.samplesSeen += stepSamples;
  const t3 = performance.now();
  options.onStep?.({
    globalStep,
    stepLoss: stepLoss / stepSamples,
    stepSamples,
    computeMs: timing.computeMs + (t3 - t2),
    commMs: timing.commMs,
    epoch: epoch.index + 1,
    epochs: run.epochs,
    step: step + 1,
    stepsPerEpoch: run.perEpoch,
    loss: epoch.lossSum / epoch.count,
    accuracy: run.classify ? epoch.correct / epoch.count : null,
    samplesPerSecond: epoch.count / ((t3 - epoch.start) / 1000),
  });
  return t3;
}

/**
 * After a step that ended at `stepEnded`: a turn for the event loop, then a stop or a
 * checkpoint on the steps schedule. Resolves to true when the run stops here. An
 * epoch's last step is saved after its validation instead (endEpoch).
 */
async function betweenSteps(run: Run, epoch: Epoch, stepEnded: number): Promise<boolean> {
  if (stepEnded - run.lastYield >= YIELD_EVERY_MS) {
    await yieldToEventLoop();
    run.lastYield = performance.now();
  }
  const done = epoch.step + 1;
  const ckpt = run.options.checkpoint;
  const stop = run.options.shouldStop?.() === true;
  const due = ckpt !== undefined && ckpt.everySteps > 0 && globalStepAt(run.loop, done) % ckpt.everySteps === 0;
  if (stop) run.interrupted = true;
  if (!(stop || due) || done >= run.perEpoch) return false;
  run.loop = epochLoop(run, epoch, done, (stepEnded - epoch.start) / 1000);
  await ckpt?.save(snapshotView(run), stop ? 'stop' : 'steps');
  return stop;
}

/** After an epoch's last step: validation, the epoch's record, early stopping, the epoch's checkpoint. */
async function endEpoch(run: Run, epoch: Epoch): Promise<void> {
  const { options, perEpoch } = run;
  const seconds = (performance.now() - epoch.start) / 1000;
  const validation = run.hasValidation
    ? await collectively(run, () => epochLoop(run, epoch, perEpoch, seconds), () => run.evaluator('validation', options.mlp, globalStepAt(run.loop, perEpoch)))
    : null;
  const record: EpochRecord = {
    epoch: epoch.index + 1,
    train: { loss: epoch.lossSum / epoch.count, accuracy: run.classify ? epoch.correct / epoch.count : null },
    validation,
    learningRate: epoch.learningRate,
    seconds,
    samplesPerSecond: epoch.count / seconds,
  };
  options.onEpoch?.(record);
  const verdict = earlyStopping(options.spec.training.earlyStopping, run.loop.best, epoch.index + 1, validation);
  // In place: the best weights are the run's own (a snapshot that shares them is used
  // only until its save resolves, or after the run is over).
  if (verdict.improved) (run.bestParams ??= new Float32Array(options.mlp.params.length)).set(options.mlp.params);
  run.loop = loopAfterEpoch(run.loop, perEpoch, record, verdict);
  const finished = run.loop.stoppedEarly || run.loop.epoch >= run.epochs;
  const ckpt = options.checkpoint;
  if (ckpt && (finished || run.interrupted || ckpt.everyEpoch)) {
    await ckpt.save(snapshotView(run), finished ? 'end' : run.interrupted ? 'stop' : 'epoch');
  }
}

/**
 * The run's result. The checkpoints hold the last weights (a resumed run continues from
 * them); the model handed back holds the best epoch's. Stopped on request, the 'stop'
 * checkpoint is written and evaluating now would only delay the exit (a resumed run
 * evaluates when it ends).
 */
async function finish(run: Run): Promise<TrainResult> {
  const { mlp } = run.options;
  const history = [...run.loop.history];
  const last = snapshotView(run);
  let bestEpoch = history.length;
  const best = bestToRestore(run);
  if (best) {
    // Adopted, not copied: `last` keeps the last weights' array as it is.
    mlp.adoptParams(best.params);
    bestEpoch = best.epoch;
  }
  const outcome = (): RunOutcome => {
    const seconds = (performance.now() - run.started) / 1000;
    return { mlp, history, bestEpoch, stoppedEarly: run.loop.stoppedEarly, steps: run.loop.globalStep, seconds, samplesPerSecond: run.samplesSeen / seconds };
  };
  if (run.interrupted) return { ...outcome(), interrupted: true, final: null };
  const final = await finalEvaluation(run, last);
  return { ...outcome(), interrupted: false, final };
}

/**
 * Every split on the model as handed back. Evaluated on every rank at once in a cluster;
 * a failure there leaves `last` (the last weights, not the restored best ones) as the
 * state to continue from.
 */
async function finalEvaluation(run: Run, last: TrainSnapshot): Promise<FinalMetrics> {
  const on = async (split: EvalSplit): Promise<Metrics | null> => {
    try {
      return await run.evaluator(split, run.options.mlp, run.loop.globalStep);
    } catch (err) {
      throw new CollectiveAborted(last, err);
    }
  };
  const train = await on('train');
  const validation = await on('validation');
  const test = await on('test');
  return { train: train ?? { loss: NaN, accuracy: null }, validation, test };
}

/**
 * Everything that continues the run from where its loop stands, without copying the
 * weights, optimizer slots or best weights: valid until the next step, and for good once
 * the run is over (nothing changes them then).
 */
function snapshotView(run: Run): TrainSnapshot {
  // The exact reduction's bound is part of the state: a resumed run must take its next step on the same scale.
  const loop = run.exact ? { ...run.loop, exactBound: run.exactBound } : run.loop;
  return { loop, params: run.options.mlp.params, optimizer: run.optimizer.viewState(), bestParams: run.bestParams, trainRows: run.options.data.train.rows };
}

/** The best epoch's weights when the run ends with them rather than the last ones, else null. */
function bestToRestore(run: Run): { readonly params: Float32Array; readonly epoch: number } | null {
  const best = run.loop.best;
  return run.bestParams && best && best.epoch !== run.loop.history.length ? { params: run.bestParams, epoch: best.epoch } : null;
}


/**
 * Runs a collective; on failure the run is over, and stops with the state `at()` gives
 * (the last commit) in the run's own arrays: a worker keeps them for the next generation
 * without a copy.
 */
async function collectively<T>(run: Run, at: () => LoopState, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    run.loop = at();
    throw new CollectiveAborted(snapshotView(run), err);
  }
}
