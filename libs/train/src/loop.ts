/**
 * Where the training loop stands, as plain data, and the arithmetic on it.
 *
 * A run is a sequence of global steps 0, 1, 2, ...; epoch e has P = stepsPerEpoch steps.
 * `LoopState` says how many steps are done in all (`globalStep`) and where in the epoch
 * in progress they end (`stepInEpoch`). For a run that went straight through,
 * globalStep = epoch x P + stepInEpoch; a run resumed from a checkpoint keeps both as
 * they were saved, so the global step of step s of the current epoch is always counted
 * from the saved pair: globalStep + (s - stepInEpoch) (`globalStepAt`, the one place
 * that sum is written). Dropout masks and the learning-rate schedule are keyed by that
 * global step, so getting it wrong anywhere breaks invariant 1 of DESIGN.md silently.
 *
 * The trainer (trainer.ts) only ever moves a LoopState through these functions:
 * `loopAt` within an epoch (a mid-epoch checkpoint, or the state a failed collective
 * leaves), `loopAfterEpoch` at its end, with `earlyStopping`'s verdict.
 */

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

/** Sums over the steps of the epoch in progress, so that its record comes out whole after a resume. */
export interface EpochSums {
  readonly lossSum: number;
  readonly count: number;
  readonly correct: number;
  readonly seconds: number;
}

/** Early stopping's best validation loss so far and its 1-based epoch. */
export interface BestEpoch {
  readonly loss: number;
  readonly epoch: number;
}

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
  readonly partial: EpochSums;
  readonly history: readonly EpochRecord[];
  /** Early stopping's best validation loss so far and its 1-based epoch. */
  readonly best: BestEpoch | null;
  readonly stoppedEarly: boolean;
  /**
   * The exact reduction's bound for the next step (exact-step.ts), which its scale comes
   * from; absent for a fast reduction, and in checkpoints made before it existed (the
   * next step then starts from FIRST_BOUND).
   */
  readonly exactBound?: number;
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

/** The global step of step `stepInEpoch` (0-based) of the epoch `loop` is in. */
export function globalStepAt(loop: Pick<LoopState, 'globalStep' | 'stepInEpoch'>, stepInEpoch: number): number {
  return loop.globalStep + (stepInEpoch - loop.stepInEpoch);
}

/** The loop with `stepInEpoch` steps of its epoch done, and that epoch's sums so far. */
export function loopAt(loop: LoopState, stepInEpoch: number, partial: EpochSums): LoopState {
  return { ...loop, stepInEpoch, globalStep: globalStepAt(loop, stepInEpoch), partial };
}

/** The loop after the last of the `stepsPerEpoch` steps of its epoch, with the epoch's record and early stopping's verdict. */
export function loopAfterEpoch(loop: LoopState, stepsPerEpoch: number, record: EpochRecord, verdict: Pick<EarlyStoppingVerdict, 'best' | 'stop'>): LoopState {
  return {
    epoch: loop.epoch + 1,
    stepInEpoch: 0,
    globalStep: globalStepAt(loop, stepsPerEpoch),
    partial: INITIAL_LOOP.partial,
    history: [...loop.history, record],
    best: verdict.best,
    stoppedEarly: verdict.stop,
  };
}

export interface EarlyStoppingRule {
  readonly patience: number;
  readonly minDelta: number;
}

export interface EarlyStoppingVerdict {
  readonly best: BestEpoch | null;
  /** This epoch is the new best: keep its weights. */
  readonly improved: boolean;
  /** No improvement by minDelta for `patience` epochs: training ends here. */
  readonly stop: boolean;
}

/**
 * Early stopping after epoch `epoch` (1-based) whose validation gave `validation`: an
 * epoch improves on the best when its loss is lower by more than minDelta; `patience`
 * epochs without that end training. Without a rule or a validation, nothing changes.
 */
export function earlyStopping(rule: EarlyStoppingRule | undefined, best: BestEpoch | null, epoch: number, validation: Metrics | null): EarlyStoppingVerdict {
  if (!rule || !validation) return { best, improved: false, stop: false };
  if (best === null || validation.loss < best.loss - rule.minDelta) return { best: { loss: validation.loss, epoch }, improved: true, stop: false };
  return { best, improved: false, stop: epoch - best.epoch >= rule.patience };
}
