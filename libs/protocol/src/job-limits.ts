/**
 * The bounds a worker's messages must keep that depend on the job: no step past the
 * job's last, no epoch past its epochs, progress whose step and epochs agree, rows
 * within their split, a model of the job's size with finite weights, a result that
 * describes a finished run, with the confusion matrix the job's plan asks for (its split,
 * its rows, classes x classes counts that add up to them). `workerMessageFor(limits)` is WorkerMessage refined with
 * them; the coordinator decodes with it, so a message past a bound is refused at the
 * wire (PROTOCOL_BAD_MESSAGE naming the field and the bound) like a malformed one.
 *
 * How a state's progress hangs together (libs/train's loop): step s of an epoch of P
 * steps lies in epoch floor(s / P); the epochs recorded are the ones completed, except
 * just after an epoch's last step, before its validation ran (s a multiple of P, and
 * one epoch fewer).
 */
import type { z } from 'zod';
import { type ConfusionCounts, type Progress, type Split, WorkerMessage } from './messages.js';

/** The confusion matrix a finished run of the job reports (libs/train's confusionPlan): its split, its classes, the rows it counts. */
export interface ConfusionLimits {
  readonly split: ConfusionCounts['split'];
  readonly classes: number;
  readonly rows: number;
}

export interface JobLimits {
  /** The job's id: a `held` progress of another job is not this job's business. */
  readonly jobId: string;
  readonly stepsPerEpoch: number;
  /** The job's epochs: a finished run recorded at least these (or stopped early). */
  readonly epochs: number;
  /** No state of the job is past these: the job's steps and epochs, or a resumed checkpoint's if it is further along (a resume may lower `epochs`). */
  readonly maxSteps: number;
  readonly maxEpochs: number;
  /** The global batch: no step has more samples. */
  readonly batchSize: number;
  readonly rows: Readonly<Record<Split, number>>;
  /** The model's parameter count. */
  readonly params: number;
  /** What `done`'s confusion matrix must be; null: the job has none, and `done` says null. */
  readonly confusion: ConfusionLimits | null;
  /**
   * With the exact reduction, ranks take whole micro-batches of a step and whole
   * evaluation batches of a split (libs/train exact-step.ts), so a shard is rounded up to
   * those; absent for the float32 reduction, whose shards split rows.
   */
  readonly exactShards?: { readonly microBatch: number; readonly evaluationBatch: number };
}

/** What is wrong with `p` as a progress of this job, or null. */
export function progressIssue(p: Progress, limits: JobLimits): string | null {
  if (p.step > limits.maxSteps) return `step ${p.step} is past the job's ${limits.maxSteps} steps`;
  if (p.epochs > limits.maxEpochs) return `${p.epochs} epochs is past the job's ${limits.maxEpochs}`;
  const per = limits.stepsPerEpoch;
  const completed = Math.floor(p.step / per);
  if (p.epochs !== completed && !(p.step % per === 0 && p.epochs === completed - 1)) {
    return `${p.epochs} epochs recorded does not fit step ${p.step} (${per} steps an epoch)`;
  }
  return null;
}

interface Issue {
  readonly path: readonly (string | number)[];
  readonly message: string;
}

/** The first bound of the job that `m` breaks, or null. */
export function jobIssue(m: WorkerMessage, limits: JobLimits): Issue | null {
  const progress = (p: Progress | null, path: (string | number)[]): Issue | null => {
    const why = p === null ? null : progressIssue(p, limits);
    return why === null ? null : { path, message: why };
  };
  const epoch = (e: number, path: (string | number)[]): Issue | null =>
    e >= 1 && e <= limits.maxEpochs ? null : { path, message: `epoch ${e} is outside 1..${limits.maxEpochs}` };
  switch (m.type) {
    case 'register':
      return m.held !== null && m.held.jobId === limits.jobId ? progress(m.held.progress, ['held', 'progress']) : null;
    case 'heartbeat': {
      const p = progress(m.progress, ['progress']);
      if (p) return p;
      if (m.timing.steps > limits.maxSteps) return { path: ['timing', 'steps'], message: `${m.timing.steps} steps is past the job's ${limits.maxSteps}` };
      for (const [i, s] of m.steps.entries()) {
        if (s.step >= limits.maxSteps) return { path: ['steps', i, 'step'], message: `step ${s.step} is past the job's last, ${limits.maxSteps - 1}` };
        if (s.samples > limits.batchSize) return { path: ['steps', i, 'samples'], message: `${s.samples} samples is more than the batch of ${limits.batchSize}` };
        const e = epoch(s.epoch, ['steps', i, 'epoch']);
        if (e) return e;
      }
      for (const [i, r] of m.epochs.entries()) {
        const e = epoch(r.epoch, ['epochs', i, 'epoch']);
        if (e) return e;
      }
      return null;
    }
    case 'fetch': {
      const rows = limits.rows[m.split];
      if (m.indices.byteLength % 4 !== 0) return { path: ['indices'], message: `${m.indices.byteLength} bytes is not a whole number of u32 indices` };
      const n = m.indices.byteLength / 4;
      if (n > rows) return { path: ['indices'], message: `${n} rows asked for; the ${m.split} split has ${rows}` };
      const view = new DataView(m.indices.buffer, m.indices.byteOffset, m.indices.byteLength);
      for (let k = 0; k < n; k++) {
        const i = view.getUint32(4 * k, true);
        if (i >= rows) return { path: ['indices', k], message: `${m.split} row ${i} is past its ${rows} rows` };
      }
      return null;
    }
    case 'stopped':
      return progress(m.progress, ['progress']);
    case 'leave':
      return progress(m.progress, ['progress']);
    case 'done': {
      const r = m.result;
      const recorded = r.history.length;
      if (m.params && m.params.bytes !== 4 * limits.params) return { path: ['params', 'bytes'], message: `${m.params.bytes} bytes; the model has ${limits.params} parameters` };
      if (recorded > limits.maxEpochs) return { path: ['result', 'history'], message: `${recorded} epochs is past the job's ${limits.maxEpochs}` };
      if (recorded < limits.epochs && !r.stoppedEarly) return { path: ['result', 'history'], message: `${recorded} epochs recorded of the job's ${limits.epochs}, and not stopped early` };
      if (recorded === 0) return { path: ['result', 'history'], message: 'no epoch recorded' };
      const misplaced = r.history.findIndex((e, i) => e.epoch !== i + 1);
      if (misplaced >= 0) return { path: ['result', 'history', misplaced, 'epoch'], message: `epoch ${r.history[misplaced]!.epoch} at position ${misplaced}` };
      if (r.steps !== recorded * limits.stepsPerEpoch) return { path: ['result', 'steps'], message: `${r.steps} steps for ${recorded} epochs of ${limits.stepsPerEpoch}` };
      if (r.bestEpoch < 1 || r.bestEpoch > recorded) return { path: ['result', 'bestEpoch'], message: `epoch ${r.bestEpoch} is outside 1..${recorded}` };
      return confusionIssue(r.confusion, limits.confusion);
    }
    case 'checkpoint':
    case 'state':
    case 'chunk':
    case 'ack':
      // States are parsed and verified against the job as they stream in (libs/train's state stream); chunks by their transfer.
      return null;
  }
}

/** What is wrong with a `done`'s confusion matrix for a job that expects `want`, or null. */
export function confusionIssue(got: ConfusionCounts | null, want: ConfusionLimits | null): Issue | null {
  const path = ['result', 'confusion'];
  if (want === null) return got === null ? null : { path, message: 'the job has no confusion matrix (regression, or no test or validation rows)' };
  if (got === null) return { path, message: `missing: the job counts one on its ${want.split} split` };
  if (got.split !== want.split) return { path: [...path, 'split'], message: `the ${got.split} split; the job counts its ${want.split} split` };
  if (got.rows !== want.rows) return { path: [...path, 'rows'], message: `${got.rows} rows; the job counts ${want.rows}` };
  const cells = want.classes * want.classes;
  if (got.counts.byteLength !== 4 * cells) return { path: [...path, 'counts'], message: `${got.counts.byteLength} bytes; ${want.classes} x ${want.classes} u32 counts are ${4 * cells}` };
  const view = new DataView(got.counts.buffer, got.counts.byteOffset, got.counts.byteLength);
  let sum = 0;
  for (let k = 0; k < cells; k++) sum += view.getUint32(4 * k, true);
  if (sum !== got.rows) return { path: [...path, 'counts'], message: `the counts add up to ${sum}, not its ${got.rows} rows` };
  return null;
}

/** WorkerMessage with the job's bounds: what the coordinator of this job decodes with. */
export function workerMessageFor(limits: JobLimits): z.ZodType<WorkerMessage> {
  return WorkerMessage.superRefine((m, ctx) => {
    const issue = jobIssue(m, limits);
    if (issue) ctx.addIssue({ code: 'custom', path: [...issue.path], message: issue.message });
  });
}
