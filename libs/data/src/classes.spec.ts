import assert from 'node:assert/strict';
import { test } from 'node:test';
import { selectClasses } from './classes.js';
import { DataError } from './errors.js';
import type { Table } from './types.js';

const table: Table = {
  features: new Float32Array([0, 0, 1, 1, 2, 2, 3, 3, 4, 4]),
  rows: 5,
  cols: 2,
  featureNames: ['a', 'b'],
  labels: new Int32Array([0, 1, 2, 1, 0]),
  task: { kind: 'classification', classes: ['cat', 'dog', 'eel'] },
};

test('keeps the rows of the chosen classes, relabelled in the order given', () => {
  const t = selectClasses(table, ['eel', 'cat']);
  assert.equal(t.rows, 3);
  assert.deepEqual([...t.features], [0, 0, 2, 2, 4, 4]);
  assert.deepEqual([...t.labels], [1, 0, 1]);
  assert.deepEqual(t.task, { kind: 'classification', classes: ['eel', 'cat'] });
});

test('an unknown class or regression data is DATA_CLASS_UNKNOWN', () => {
  assert.throws(() => selectClasses(table, ['cow'], 'x.csv'), (e: unknown) => e instanceof DataError && e.code === 'DATA_CLASS_UNKNOWN' && /x\.csv: no class "cow"/.test(e.message));
  const reg: Table = { ...table, labels: new Float32Array(5), task: { kind: 'regression', target: 'y' } };
  assert.throws(() => selectClasses(reg, ['cat']), (e: unknown) => e instanceof DataError && e.code === 'DATA_CLASS_UNKNOWN');
});
