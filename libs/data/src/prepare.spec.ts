import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { prepareDataset } from './prepare.js';
import { dataError, tmpDir, writeFixture } from './testing.js';
import type { Table } from './types.js';

function columnMean(t: Table, c: number): number {
  let s = 0;
  for (let r = 0; r < t.rows; r++) s += t.features[r * t.cols + c]!;
  return s / t.rows;
}

describe('prepareDataset', () => {
  it('prepares Iris: stratified splits, statistics from train only', async () => {
    const split = { validation: 0.1, test: 0.2, seed: 1 };
    const d = await prepareDataset({ source: 'builtin:iris', split, normalize: 'standardize' });
    assert.equal(d.source, 'builtin:iris');
    assert.deepEqual([d.train.rows, d.validation.rows, d.test.rows], [105, 15, 30]);
    assert.deepEqual(d.task, { kind: 'classification', classes: ['setosa', 'versicolor', 'virginica'] });
    for (let c = 0; c < 4; c++) assert.ok(Math.abs(columnMean(d.train, c)) < 1e-5, 'train is centred');
    // The test split is transformed with train's statistics, so it is not exactly centred.
    assert.ok([0, 1, 2, 3].some((c) => Math.abs(columnMean(d.test, c)) > 1e-3));
    assert.equal(d.normalizer.method, 'standardize');
    assert.deepEqual(await prepareDataset({ source: 'builtin:iris', split, normalize: 'standardize' }), d, 'deterministic');
  });

  it('keeps a synthetic regression task and its size', async () => {
    const d = await prepareDataset({ source: 'synthetic:rows=200,features=4,task=regression', split: { validation: 0.25, test: 0.25, seed: 0 }, normalize: 'minmax' });
    assert.deepEqual([d.train.rows, d.validation.rows, d.test.rows], [100, 50, 50]);
    assert.equal(d.task.kind, 'regression');
    assert.ok(d.train.features.every((v) => v >= 0 && v <= 1));
  });

  it('classifies a headerless CSV of integer labels with integerClasses, stratified, reporting the label column', async () => {
    const dir = await tmpDir();
    const rows = Array.from({ length: 30 }, (_, i) => `${i},${(i * 7) % 5},${i % 3}`);
    const file = await writeFixture(dir, 'n.csv', rows.join('\n'));
    const d = await prepareDataset({ source: `csv:${file}`, header: false, integerClasses: true, split: { validation: 0.2, test: 0.2, seed: 0 }, normalize: 'none' });
    assert.deepEqual(d.task, { kind: 'classification', classes: ['0', '1', '2'] });
    assert.deepEqual([d.train.rows, d.validation.rows, d.test.rows], [18, 6, 6]);
    assert.deepEqual([...d.test.labels].sort(), [0, 0, 1, 1, 2, 2], 'stratified by class');
    assert.deepEqual(d.train.featureNames, ['c0', 'c1']);
    assert.deepEqual(d.labelColumn, { name: 'c2', file, values: { kind: 'integers' } });
  });

  it('passes split errors through', async () => {
    await assert.rejects(prepareDataset({ source: 'builtin:iris', split: { validation: 0.6, test: 0.6, seed: 0 }, normalize: 'none' }), dataError('DATA_SPLIT_INVALID'));
  });
});
