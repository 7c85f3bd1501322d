/**
 * Keeping a subset of the classes: the rows of those classes only, relabelled so that
 * the task's classes are exactly the subset, in the order given. Used to train on some
 * classes and fine-tune on others (see examples/fashion-mnist-finetune.yaml).
 */
import { DataError } from './errors.js';
import type { Table } from './types.js';

export function selectClasses(table: Table, names: readonly string[], source = 'data'): Table {
  if (table.task.kind !== 'classification') {
    throw new DataError('DATA_CLASS_UNKNOWN', `${source}: classes can only be chosen for classification data`);
  }
  const known = table.task.classes;
  const map = new Int32Array(known.length).fill(-1);
  names.forEach((name, i) => {
    const at = known.indexOf(name);
    if (at < 0) throw new DataError('DATA_CLASS_UNKNOWN', `${source}: no class "${name}"; the classes are ${known.join(', ')}`);
    map[at] = i;
  });
  const labels = table.labels as Int32Array;
  const keep: number[] = [];
  for (let r = 0; r < table.rows; r++) if (map[labels[r]!]! >= 0) keep.push(r);
  const { cols } = table;
  const features = new Float32Array(keep.length * cols);
  const out = new Int32Array(keep.length);
  keep.forEach((r, i) => {
    features.set(table.features.subarray(r * cols, (r + 1) * cols), i * cols);
    out[i] = map[labels[r]!]!;
  });
  return { ...table, features, rows: keep.length, labels: out, task: { kind: 'classification', classes: [...names] } };
}
