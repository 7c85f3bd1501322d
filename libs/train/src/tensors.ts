/**
 * Glue between libs/data's tables and libs/model's batches: targets are one-hot rows
 * for classification and the raw target for regression (one output). Also how the task
 * and the loss fit together: a loss left out follows the task, and an explicit
 * cross-entropy makes integer labels classes (as Keras's sparse categorical
 * cross-entropy does), which the app is told so that it can log it.
 */
import { augment, augmentEnabled, gatherBatch, oneHot, type AugmentSpec, type LabelColumn, type PreparedDataset, type Table, type Task } from '@ringtrain/data';
import { type Architecture, type Batch, type EvalData, type HiddenLayer, type LossName } from '@ringtrain/model';
import type { JobSpec } from './spec.js';
import { TrainError } from './errors.js';

export function outputCount(task: Task): number {
  return task.kind === 'classification' ? task.classes.length : 1;
}

function targetsFor(task: Task, labels: Int32Array | Float32Array, out?: Float32Array): { targets: Float32Array; labels?: Int32Array } {
  if (task.kind === 'classification') {
    const classes = labels as Int32Array;
    return { targets: oneHot(classes, task.classes.length, out), labels: classes };
  }
  const targets = out && out.length >= labels.length ? out.subarray(0, labels.length) : new Float32Array(labels.length);
  targets.set(labels);
  return { targets };
}

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

/**
 * Whether the job's CSV labels are classes when they are all integers: the loss is
 * cross-entropy and data.task is left out (data.task, when given, decides).
 */
export function integerLabelsAreClasses(spec: JobSpec): boolean {
  return spec.training.loss === 'cross-entropy' && spec.data.task === undefined;
}

/** A task that followed from the loss as well as the data; the app logs it (libraries never log). */
export interface TaskInference {
  /** The label column. */
  readonly label: string;
  readonly classes: readonly string[];
  /** One line saying why, for the log. */
  readonly message: string;
}

/** What integerLabelsAreClasses made of the data, or null when it did not decide the task. */
export function taskInference(spec: JobSpec, data: Pick<PreparedDataset, 'task' | 'labelColumn'>): TaskInference | null {
  const column = data.labelColumn;
  if (!integerLabelsAreClasses(spec) || column?.values.kind !== 'integers' || data.task.kind !== 'classification') return null;
  const { classes } = data.task;
  const shown = classes.length <= 10 ? classes.join(', ') : `${classes.slice(0, 10).join(', ')}, ... (${classes.length} in all)`;
  return { label: column.name, classes, message: `label column "${column.name}" holds integers and the loss is cross-entropy: classification with classes ${shown}` };
}

/**
 * The loss the spec names, or the task's natural one; rejects cross-entropy for
 * regression, saying which value of the label column stood in the way when it knows.
 */
export function resolveLoss(spec: JobSpec, task: Task, labelColumn?: LabelColumn): LossName {
  const loss = spec.training.loss ?? (task.kind === 'classification' ? 'cross-entropy' : 'mse');
  if (loss === 'cross-entropy' && task.kind === 'regression') {
    const values = labelColumn?.values;
    const issue =
      labelColumn && values?.kind === 'numbers' && spec.data.task === undefined
        ? `training.loss: cross-entropy needs class labels, but label column "${labelColumn.name}" of ${labelColumn.file} holds non-integer numbers ` +
          `(e.g. ${values.nonInteger} on line ${values.line}): use mse for regression, or integer or text labels`
        : `training.loss: cross-entropy needs classification data, but ${spec.data.source} has a numeric target (use mse, or data.task: classification)`;
    throw new TrainError('SPEC_INVALID', issue, [issue]);
  }
  return loss;
}

export function architectureFor(spec: JobSpec, inputs: number, task: Task): Architecture {
  const hidden: HiddenLayer[] = spec.model.hidden.map((h) => ({ units: h.units, activation: h.activation, dropout: h.dropout }));
  return { inputs, hidden, outputs: outputCount(task), output: task.kind === 'classification' ? 'softmax' : 'linear' };
}
