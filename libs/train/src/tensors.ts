/**
 * Glue between libs/data's tables and libs/model's batches: targets are one-hot rows
 * for classification and the raw target for regression (one output).
 */
import { augment, augmentEnabled, gatherBatch, oneHot, type AugmentSpec, type Table, type Task } from '@ringtrain/data';
import { type Architecture, type Batch, type EvalData, type HiddenLayer, type LossName } from '@ringtrain/model';
import type { JobSpec } from './spec.js';
import { TrainError } from './errors.js';

export function outputCount(task: Task): number {
  return task.kind === 'classification' ? task.classes.length : 1;
}

function targetsFor(task: Task, labels: Int32Array | Float32Array): { targets: Float32Array; labels?: Int32Array } {
  if (task.kind === 'classification') {
    const classes = labels as Int32Array;
    return { targets: oneHot(classes, task.classes.length), labels: classes };
  }
  return { targets: Float32Array.from(labels) };
}

export function evalData(table: Table): EvalData {
  return { rows: table.rows, x: table.features, ...targetsFor(table.task, table.labels) };
}

/** The rows of one worker's share of a step, gathered, augmented and ready for the model. */
export function trainingBatch(
  table: Table,
  indices: Uint32Array,
  augmentSpec: AugmentSpec,
  key: { seed: number; epoch: number },
): Batch {
  const gathered = gatherBatch(table, indices);
  if (augmentEnabled(augmentSpec)) {
    augment(gathered.x, indices, table.cols, augmentSpec, key, table.imageShape);
  }
  return { rows: indices.length, x: gathered.x, indices, ...targetsFor(table.task, gathered.labels) };
}

/** The loss the spec names, or the task's natural one; rejects cross-entropy for regression. */
export function resolveLoss(spec: JobSpec, task: Task): LossName {
  const loss = spec.training.loss ?? (task.kind === 'classification' ? 'cross-entropy' : 'mse');
  if (loss === 'cross-entropy' && task.kind === 'regression') {
    const issue = `training.loss: cross-entropy needs classification data, but ${spec.data.source} has a numeric target (use mse, or data.task: classification)`;
    throw new TrainError('SPEC_INVALID', issue, [issue]);
  }
  return loss;
}

export function architectureFor(spec: JobSpec, inputs: number, task: Task): Architecture {
  const hidden: HiddenLayer[] = spec.model.hidden.map((h) => ({ units: h.units, activation: h.activation, dropout: h.dropout }));
  return { inputs, hidden, outputs: outputCount(task), output: task.kind === 'classification' ? 'softmax' : 'linear' };
}
