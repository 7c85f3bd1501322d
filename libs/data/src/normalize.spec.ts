import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyNormalizer, fitNormalizer, normCols, parseNormStats } from './normalize.js';
import { dataError } from './testing.js';
import type { Table } from './types.js';

/** Columns: 1,2,3,4 | constant 5 | -2,0,2,4 */
const table: Table = {
  features: Float32Array.from([1, 5, -2, 2, 5, 0, 3, 5, 2, 4, 5, 4]),
  rows: 4,
  cols: 3,
  featureNames: ['a', 'b', 'c'],
  labels: new Float32Array(4),
  task: { kind: 'regression', target: 'y' },
};

function column(t: Table, c: number): number[] {
  return Array.from({ length: t.rows }, (_, r) => t.features[r * t.cols + c]!);
}

describe('fitNormalizer / applyNormalizer', () => {
  it('standardizes with population std and std 1 for a constant column', () => {
    const stats = fitNormalizer(table, 'standardize');
    assert.deepEqual(stats, { method: 'standardize', mean: [2.5, 5, 1], std: [Math.sqrt(1.25), 1, Math.sqrt(5)] });
    const out = applyNormalizer(stats, table);
    assert.notEqual(out.features, table.features);
    assert.deepEqual(column(out, 1), [0, 0, 0, 0]);
    const a = column(out, 0);
    assert.ok(Math.abs(a.reduce((s, v) => s + v, 0)) < 1e-6);
    assert.ok(Math.abs(a.reduce((s, v) => s + v * v, 0) / 4 - 1) < 1e-6);
    assert.deepEqual([...table.features.subarray(0, 3)], [1, 5, -2], 'input untouched');
  });

  it('scales minmax to [0, 1] and a constant column to 0', () => {
    const stats = fitNormalizer(table, 'minmax');
    assert.deepEqual(stats, { method: 'minmax', min: [1, 5, -2], max: [4, 5, 4] });
    const out = applyNormalizer(stats, table);
    assert.deepEqual(column(out, 0), [0, 1 / 3, 2 / 3, 1].map(Math.fround));
    assert.deepEqual(column(out, 1), [0, 0, 0, 0]);
    assert.deepEqual(column(out, 2), [0, 1 / 3, 2 / 3, 1].map(Math.fround));
  });

  it("'none' keeps the values", () => {
    const stats = fitNormalizer(table, 'none');
    assert.deepEqual(stats, { method: 'none', cols: 3 });
    assert.deepEqual(applyNormalizer(stats, table).features, table.features);
  });

  it('survives a JSON round trip with identical results', () => {
    for (const method of ['standardize', 'minmax', 'none'] as const) {
      const stats = fitNormalizer(table, method);
      const back = parseNormStats(JSON.parse(JSON.stringify(stats)));
      assert.deepEqual(back, stats);
      assert.equal(normCols(back), 3);
      assert.deepEqual(applyNormalizer(back, table).features, applyNormalizer(stats, table).features);
    }
  });

  it('is accurate for large, tight values', () => {
    const t: Table = { ...table, features: Float32Array.from({ length: 1000 }, (_, i) => 1e6 + (i % 2)), rows: 1000, cols: 1, featureNames: ['x'] };
    const stats = fitNormalizer(t, 'standardize');
    assert.ok(stats.method === 'standardize' && Math.abs(stats.std[0]! - 0.5) < 1e-9);
  });

  it('rejects mismatched, malformed and empty inputs', () => {
    assert.throws(() => applyNormalizer({ method: 'none', cols: 2 }, table), dataError('DATA_NORMALIZE_INVALID', { message: /2 columns, the table has 3/ }));
    assert.throws(() => fitNormalizer({ ...table, rows: 0, features: new Float32Array(0) }, 'standardize'), dataError('DATA_NORMALIZE_INVALID'));
    assert.throws(() => fitNormalizer(table, 'zscore' as 'none'), dataError('DATA_NORMALIZE_INVALID'));
    for (const bad of [null, 3, { method: 'x' }, { method: 'standardize', mean: [0], std: [0] }, { method: 'standardize', mean: [0], std: [1, 1] }, { method: 'minmax', min: [2], max: [1] }, { method: 'none', cols: -1 }, { method: 'minmax', min: ['0'], max: [1] }]) {
      assert.throws(() => parseNormStats(bad), dataError('DATA_NORMALIZE_INVALID'), JSON.stringify(bad));
    }
  });
});

describe('image data', () => {
  it('gets one statistic for every pixel, so shifted pixels stay on one scale', () => {
    // 2 images of 2x2: column maxima differ, but every column gets the global range.
    const image: Table = {
      features: new Float32Array([0, 10, 20, 255, 5, 0, 100, 40]),
      rows: 2,
      cols: 4,
      featureNames: ['p0', 'p1', 'p2', 'p3'],
      labels: new Int32Array([0, 1]),
      task: { kind: 'classification', classes: ['0', '1'] },
      imageShape: { height: 2, width: 2 },
    };
    const mm = fitNormalizer(image, 'minmax');
    assert.deepEqual(mm, { method: 'minmax', min: [0, 0, 0, 0], max: [255, 255, 255, 255] });
    const sd = fitNormalizer(image, 'standardize');
    assert.equal(sd.method, 'standardize');
    if (sd.method === 'standardize') {
      const mean = (0 + 10 + 20 + 255 + 5 + 0 + 100 + 40) / 8;
      assert.ok(sd.mean.every((m) => Math.abs(m - mean) < 1e-9));
      assert.equal(new Set(sd.std).size, 1);
    }
  });
});
