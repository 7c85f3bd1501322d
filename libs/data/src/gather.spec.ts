import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gatherBatch, oneHot } from './gather.js';
import { dataError } from './testing.js';
import type { Table } from './types.js';

function table(cols: number, rows = 5): Table {
  return {
    features: Float32Array.from({ length: rows * cols }, (_, i) => i),
    rows,
    cols,
    featureNames: Array.from({ length: cols }, (_, i) => `f${i}`),
    labels: Int32Array.from({ length: rows }, (_, i) => i % 3),
    task: { kind: 'classification', classes: ['a', 'b', 'c'] },
  };
}

describe('gatherBatch', () => {
  for (const cols of [2, 40]) {
    it(`copies the chosen rows in order (${cols} columns)`, () => {
      const t = table(cols);
      const idx = Uint32Array.from([4, 0, 4]);
      const b = gatherBatch(t, idx);
      assert.equal(b.rows, 3);
      assert.equal(b.indices, idx);
      const expect = [4, 0, 4].flatMap((r) => Array.from({ length: cols }, (_, c) => r * cols + c));
      assert.deepEqual([...b.x], expect);
      assert.deepEqual(b.labels, Int32Array.from([1, 0, 1]));
    });
  }

  it('reuses buffers that fit and allocates when they do not', () => {
    const t = table(2);
    const first = gatherBatch(t, Uint32Array.from([0, 1, 2]));
    const second = gatherBatch(t, Uint32Array.from([3, 4]), first);
    assert.equal(second.x.buffer, first.x.buffer);
    assert.equal(second.labels.buffer, first.labels.buffer);
    assert.deepEqual([...second.x], [6, 7, 8, 9]);
    const bigger = gatherBatch(t, Uint32Array.from([0, 1, 2, 3]), second);
    assert.notEqual(bigger.x.buffer, first.x.buffer);
    const regression: Table = { ...t, labels: Float32Array.from([0.5, 1, 2, 3, 4]), task: { kind: 'regression', target: 'y' } };
    const r = gatherBatch(regression, Uint32Array.from([0]), first);
    assert.ok(r.labels instanceof Float32Array, 'label kind follows the table, not the buffer');
    assert.deepEqual([...r.labels], [0.5]);
  });

  it('rejects an index outside the table', () => {
    assert.throws(() => gatherBatch(table(2), Uint32Array.from([5])), dataError('DATA_ARGUMENT_INVALID'));
  });
});

describe('oneHot', () => {
  it('sets one 1 per row', () => {
    assert.deepEqual([...oneHot(Int32Array.from([2, 0]), 3)], [0, 0, 1, 1, 0, 0]);
    const out = new Float32Array(12).fill(7);
    const y = oneHot(Int32Array.from([1]), 3, out);
    assert.equal(y.buffer, out.buffer);
    assert.deepEqual([...y], [0, 1, 0]);
    assert.throws(() => oneHot(Int32Array.from([3]), 3), dataError('DATA_ARGUMENT_INVALID'));
    assert.throws(() => oneHot(Int32Array.from([-1]), 3), dataError('DATA_ARGUMENT_INVALID'));
  });

  it('makes a gathered batch\'s labels its one-hot targets', () => {
    const t = table(2);
    const b = gatherBatch(t, Uint32Array.from([1, 2]));
    assert.deepEqual([...oneHot(b.labels as Int32Array, 3)], [0, 1, 0, 0, 0, 1]);
  });
});
