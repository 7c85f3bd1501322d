/**
 * What a job's spec and data make of the model: the loss (one left out follows the task,
 * and an explicit cross-entropy makes integer labels classes, as Keras's sparse
 * categorical cross-entropy does, which the app is told so that it can log it), the
 * output layer and the architecture.
 */
import type { LabelColumn, PreparedDataset, Task } from '@ringtrain/data';
import type { Architecture, HiddenLayer, LossName } from '@ringtrain/model';
import { TrainError } from './errors.js';
import type { JobSpec } from './spec.js';

/** Units of the output layer: one per class, or one for a regression target. */
export function outputCount(task: Task): number {
  return task.kind === 'classification' ? task.classes.length : 1;
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
