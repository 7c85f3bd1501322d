/**
 * From libs/data's tables to libs/model's batches: a training step's share of the global
 * batch (gathered, augmented, with its targets) and a whole split to evaluate. Targets are
 * one-hot rows for classification and the raw target for regression (one output).
 */
import { augment, augmentEnabled, gatherBatch, oneHot, type AugmentSpec, type Table, type Task } from '@ringtrain/data';
import type { Batch, EvalData } from '@ringtrain/model';

function targetsFor(task: Task, labels: Int32Array | Float32Array, out?: Float32Array): { targets: Float32Array; labels?: Int32Array } {
  if (task.kind === 'classification') {
    const classes = labels as Int32Array;
    return { targets: oneHot(classes, task.classes.length, out), labels: classes };
  }
  const targets = out && out.length >= labels.length ? out.subarray(0, labels.length) : new Float32Array(labels.length);
  targets.set(labels);
  return { targets };
}

/** A whole split, ready to evaluate. */
export function evalData(table: Table): EvalData {
  return { rows: table.rows, x: table.features, ...targetsFor(table.task, table.labels) };
}

/**
 * Buffers a training loop passes to every trainingBatch call so that its steps allocate
 * no batch arrays (a step's 3 MB of rows, every step, kept the garbage collector busy).
 * The batch returned holds views into them, valid until the next call.
 */
export interface BatchScratch {
  x?: Float32Array;
  labels?: Int32Array | Float32Array;
  targets?: Float32Array;
}

/** The whole buffer behind a view, so that a short batch does not shrink the scratch. */
const whole = <T extends Float32Array | Int32Array>(view: T): T =>
  (view instanceof Float32Array ? new Float32Array(view.buffer) : new Int32Array(view.buffer)) as T;

/** The rows of one worker's share of a step, gathered, augmented and ready for the model. */
export function trainingBatch(
  table: Table,
  indices: Uint32Array,
  augmentSpec: AugmentSpec,
  key: { seed: number; epoch: number },
  scratch?: BatchScratch,
): Batch {
  const gathered = gatherBatch(table, indices, scratch);
  if (augmentEnabled(augmentSpec)) {
    augment(gathered.x, indices, table.cols, augmentSpec, key, table.imageShape);
  }
  const targets = targetsFor(table.task, gathered.labels, scratch?.targets);
  if (scratch) {
    scratch.x = whole(gathered.x);
    scratch.labels = whole(gathered.labels);
    scratch.targets = whole(targets.targets);
  }
  return { rows: indices.length, x: gathered.x, indices, ...targets };
}
