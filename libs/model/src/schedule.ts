/**
 * Learning-rate schedules, as pure functions of the global step, so that every worker
 * and a resumed run agree without sharing any state.
 *
 * - constant: lr
 * - step: lr * factor^floor(epoch / everyEpochs)
 * - cosine: from lr down to minLearningRate over the whole run (after warm-up)
 * Any of them may start with a linear warm-up from lr / warmupSteps to lr over
 * `warmupSteps` steps.
 */
export type Schedule =
  | { readonly kind: 'constant'; readonly warmupSteps?: number }
  | { readonly kind: 'step'; readonly everyEpochs: number; readonly factor: number; readonly warmupSteps?: number }
  | { readonly kind: 'cosine'; readonly minLearningRate?: number; readonly warmupSteps?: number };

export interface ScheduleClock {
  /** Global step, starting at 0. */
  readonly step: number;
  readonly stepsPerEpoch: number;
  readonly totalSteps: number;
}

export function learningRateAt(base: number, schedule: Schedule, clock: ScheduleClock): number {
  const warmup = schedule.warmupSteps ?? 0;
  if (clock.step < warmup) return (base * (clock.step + 1)) / warmup;
  switch (schedule.kind) {
    case 'constant':
      return base;
    case 'step': {
      const epoch = Math.floor(clock.step / clock.stepsPerEpoch);
      return base * Math.pow(schedule.factor, Math.floor(epoch / schedule.everyEpochs));
    }
    case 'cosine': {
      const min = schedule.minLearningRate ?? 0;
      const span = Math.max(1, clock.totalSteps - warmup);
      const progress = Math.min(1, (clock.step - warmup) / span);
      return min + 0.5 * (base - min) * (1 + Math.cos(Math.PI * progress));
    }
    default: {
      const never: never = schedule;
      return never;
    }
  }
}
