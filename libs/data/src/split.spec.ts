import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mix32 } from './random.js';
import { splitIndices, splitTables, takeRows } from './split.js';
import { dataError } from './testing.js';
import type { Table } from './types.js';

function classCounts(labels: Int32Array, rows: Uint32Array, k: number): number[] {
  const c = new Array<number>(k).fill(0);
  for (const r of rows) c[labels[r]!]!++;
  return c;
}

function assertPartition(n: number, s: { train: Uint32Array; validation: Uint32Array; test: Uint32Array }): void {
  const all = [...s.train, ...s.validation, ...s.test].sort((a, b) => a - b);
  assert.deepEqual(all, Array.from({ length: n }, (_, i) => i));
  for (const part of [s.train, s.validation, s.test]) for (let i = 1; i < part.length; i++) assert.ok(part[i - 1]! < part[i]!);
}

const iris = Int32Array.from({ length: 150 }, (_, i) => Math.floor(i / 50));

describe('splitIndices', () => {
  it('stratifies Iris exactly', () => {
    const s = splitIndices(150, iris, { validation: 0.1, test: 0.2, seed: 7 });
    assert.equal(s.test.length, 30);
    assert.equal(s.validation.length, 15);
    assert.equal(s.train.length, 105);
    assert.deepEqual(classCounts(iris, s.test, 3), [10, 10, 10]);
    assert.deepEqual(classCounts(iris, s.validation, 3), [5, 5, 5]);
    assertPartition(150, s);
  });

  it('is a pure function of the seed', () => {
    const spec = { validation: 0.2, test: 0.2, seed: 1 };
    assert.deepEqual(splitIndices(150, iris, spec), splitIndices(150, iris, spec));
    assert.notDeepEqual(splitIndices(150, iris, spec).test, splitIndices(150, iris, { ...spec, seed: 2 }).test);
  });

  it('gives exact global sizes and fair class shares for uneven classes', () => {
    for (let trial = 0; trial < 200; trial++) {
      const n = 1 + (mix32(trial, 1) % 60);
      const k = 1 + (mix32(trial, 2) % 5);
      const labels = Int32Array.from({ length: n }, (_, i) => mix32(trial, 3, i) % k);
      const test = (mix32(trial, 4) % 50) / 100;
      const validation = (mix32(trial, 5) % 40) / 100;
      const nTest = Math.round(n * test);
      const nVal = Math.round(n * validation);
      if (n - nTest - nVal < 1) {
        assert.throws(() => splitIndices(n, labels, { validation, test, seed: trial }), dataError('DATA_SPLIT_INVALID'));
        continue;
      }
      const s = splitIndices(n, labels, { validation, test, seed: trial });
      assert.equal(s.test.length, nTest);
      assert.equal(s.validation.length, nVal);
      assertPartition(n, s);
      const sizes = classCounts(labels, Uint32Array.from({ length: n }, (_, i) => i), k);
      classCounts(labels, s.test, k).forEach((got, c) => {
        const share = (sizes[c]! * nTest) / n;
        assert.ok(got >= Math.floor(share) && got <= Math.ceil(share), `trial ${trial} class ${c}: ${got} for share ${share}`);
      });
    }
  });

  it('shuffles plainly for regression', () => {
    const s = splitIndices(11, null, { validation: 0.25, test: 0.3, seed: 3 });
    assert.deepEqual([s.train.length, s.validation.length, s.test.length], [5, 3, 3]);
    assertPartition(11, s);
  });

  it('carves only validation when the source has its own test split', () => {
    const s = splitIndices(100, null, { validation: 0.1, test: 0.5, seed: 0 }, true);
    assert.deepEqual([s.train.length, s.validation.length, s.test.length], [90, 10, 0]);
  });

  it('rejects bad fractions and seeds', () => {
    for (const spec of [
      { validation: -0.1, test: 0.1, seed: 0 },
      { validation: 0.1, test: 1, seed: 0 },
      { validation: 0.5, test: 0.5, seed: 0 },
      { validation: Number.NaN, test: 0, seed: 0 },
      { validation: 0.1, test: 0.1, seed: 1.5 },
      { validation: 0.1, test: 0.1, seed: -1 },
    ]) {
      assert.throws(() => splitIndices(10, null, spec), dataError('DATA_SPLIT_INVALID'), JSON.stringify(spec));
    }
    assert.throws(() => splitIndices(2, null, { validation: 0.25, test: 0.74, seed: 0 }), dataError('DATA_SPLIT_INVALID', { message: /no training rows/ }));
  });
});

const table: Table = {
  features: Float32Array.from({ length: 12 }, (_, i) => i),
  rows: 4,
  cols: 3,
  featureNames: ['a', 'b', 'c'],
  labels: Int32Array.from([0, 1, 0, 1]),
  task: { kind: 'classification', classes: ['x', 'y'] },
};

describe('takeRows', () => {
  it('copies the rows in the given order', () => {
    const t = takeRows(table, [3, 0]);
    assert.equal(t.rows, 2);
    assert.deepEqual([...t.features], [9, 10, 11, 0, 1, 2]);
    assert.deepEqual([...t.labels], [1, 0]);
    assert.ok(t.labels instanceof Int32Array);
    assert.deepEqual(t.task, table.task);
    assert.throws(() => takeRows(table, [4]), dataError('DATA_ARGUMENT_INVALID'));
  });

  it('splitTables keeps a source test split', () => {
    const own = splitTables({ train: table, test: takeRows(table, [1]) }, { validation: 0.25, test: 0.5, seed: 0 });
    assert.deepEqual([own.train.rows, own.validation.rows, own.test.rows], [3, 1, 1]);
    const carved = splitTables({ train: table }, { validation: 0.25, test: 0.25, seed: 0 });
    assert.deepEqual([carved.train.rows, carved.validation.rows, carved.test.rows], [2, 1, 1]);
  });
});
