/**
 * What may change between a checkpoint and the spec that resumes it. Anything that
 * changes which rows a step sees, the random numbers it draws, or the shape of the
 * model or optimizer state would make the resumed run a different run, so it is
 * refused; hyperparameters that only steer what comes next may change.
 *
 * May change: name, data.source (the data itself is checked separately), training.epochs,
 * the optimizer's learning rate, schedule and coefficients, earlyStopping, backend,
 * reduction and microBatch (the same rows and draws, summed another way), checkpoint policy.
 */
import type { JobSpec } from './spec.js';

const FIXED: readonly [string, (s: JobSpec) => unknown][] = [
  ['data.label', (s) => s.data.label],
  // Left out and true read a checkpointed file alike: left out refuses only what true accepts.
  ['data.header', (s) => s.data.header ?? true],
  ['data.task', (s) => s.data.task],
  ['data.classes', (s) => s.data.classes],
  ['data.split', (s) => s.data.split],
  ['data.normalize', (s) => s.data.normalize],
  ['data.augment', (s) => s.data.augment],
  ['model', (s) => s.model],
  ['init', (s) => s.init],
  ['training.loss', (s) => s.training.loss],
  ['training.optimizer.name', (s) => s.training.optimizer.name],
  ['training.batchSize', (s) => s.training.batchSize],
  ['training.seed', (s) => s.training.seed],
];

/** Each field that differs, as "field: the checkpoint has X, the spec has Y". */
export function resumeMismatches(saved: JobSpec, now: JobSpec): string[] {
  const out: string[] = [];
  for (const [path, get] of FIXED) {
    const a = JSON.stringify(get(saved) ?? null);
    const b = JSON.stringify(get(now) ?? null);
    if (a !== b) out.push(`${path}: the checkpoint has ${a}, the spec has ${b}`);
  }
  return out;
}
