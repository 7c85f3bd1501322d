import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as data from '@ringtrain/data';

describe('@ringtrain/data entry point', () => {
  it('exports the public API and nothing internal', () => {
    const values = Object.keys(data).sort();
    assert.deepEqual(values, [
      'BUILTIN_NAMES', 'DataError', 'IDX_IMAGES_MAGIC', 'IDX_LABELS_MAGIC', 'SYNTHETIC_DEFAULTS', 'Stream',
      'absoluteSource', 'applyNormalizer', 'augment', 'augmentEnabled', 'batchIndices', 'batchRange', 'builtinPath',
      'epochPermutation', 'fitNormalizer', 'gatherBatch', 'loadSource', 'microBatchCount', 'microBatchRange', 'mix32', 'normCols', 'oneHot', 'parseCsv',
      'parseIdx', 'parseNormStats', 'parseSource', 'parseSyntheticSpec', 'permutation', 'prepareDataset', 'rankRange',
      'sampleShift', 'selectClasses', 'splitIndices', 'splitTables', 'stepsPerEpoch', 'syntheticTable', 'takeRows', 'toGaussian', 'toUnit',
    ]);
  });

  it('runs a step end to end: prepare, shard, gather, augment', async () => {
    const d = await data.prepareDataset({ source: 'builtin:iris', split: { validation: 0.1, test: 0.2, seed: 0 }, normalize: 'standardize' });
    const key = { n: d.train.rows, batchSize: 32, seed: 0, epoch: 0, step: 3, rank: 1, world: 3 };
    const idx = data.batchIndices(key);
    assert.equal(idx.length, 3, 'last step of 105 rows: 9 rows over 3 ranks');
    const batch = data.gatherBatch(d.train, idx);
    data.augment(batch.x, batch.indices, d.train.cols, { noise: 0.1 }, { seed: 0, epoch: 0 });
    assert.equal(data.oneHot(batch.labels as Int32Array, 3).length, 3 * 3);
    await assert.rejects(data.loadSource('nope'), data.DataError);
  });
});
