import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { batchIndices, batchRange, epochPermutation, microBatchCount, microBatchRange, rankRange, stepsPerEpoch } from './shard.js';
import { dataError } from './testing.js';

describe('pure sharding functions', () => {
  it('permutes every row once, per epoch differently, reproducibly', () => {
    const a = epochPermutation(100, 5, 0);
    assert.deepEqual([...a].sort((x, y) => x - y), Array.from({ length: 100 }, (_, i) => i));
    assert.deepEqual(epochPermutation(100, 5, 0), a);
    assert.notDeepEqual(epochPermutation(100, 5, 1), a);
    assert.notDeepEqual(epochPermutation(100, 6, 0), a);
    assert.deepEqual([...epochPermutation(0, 1, 0)], []);
  });

  it('counts steps and batch ranges with a partial last batch', () => {
    assert.equal(stepsPerEpoch(10, 4), 3);
    assert.equal(stepsPerEpoch(8, 4), 2);
    assert.equal(stepsPerEpoch(0, 4), 0);
    assert.deepEqual(batchRange(10, 4, 0), [0, 4]);
    assert.deepEqual(batchRange(10, 4, 2), [8, 10]);
    assert.throws(() => batchRange(10, 4, 3), dataError('DATA_ARGUMENT_INVALID', { message: /step/ }));
    assert.throws(() => stepsPerEpoch(10, 0), dataError('DATA_ARGUMENT_INVALID', { message: /batchSize/ }));
  });

  it('splits a batch by rank, earlier ranks taking the extra rows', () => {
    assert.deepEqual([0, 1, 2].map((r) => rankRange(8, r, 3)), [[0, 3], [3, 6], [6, 8]]);
    assert.deepEqual([0, 1, 2, 3].map((r) => rankRange(2, r, 4)), [[0, 1], [1, 2], [2, 2], [2, 2]]);
    assert.throws(() => rankRange(8, 3, 3), dataError('DATA_ARGUMENT_INVALID', { message: /rank/ }));
    assert.throws(() => rankRange(8, 0, 0), dataError('DATA_ARGUMENT_INVALID', { message: /world/ }));
  });
});

describe('batchIndices: worker count does not change the math', () => {
  const cases = [
    { n: 1, batchSize: 1 },
    { n: 10, batchSize: 4 },
    { n: 37, batchSize: 8 },
    { n: 50, batchSize: 50 },
    { n: 23, batchSize: 3 },
    { n: 100, batchSize: 7 },
    { n: 9, batchSize: 64 },
  ];
  for (const { n, batchSize } of cases) {
    it(`n=${n} B=${batchSize}: ranks of every world 1..8 concatenate to the single-worker batch`, () => {
      const seed = 11;
      for (let epoch = 0; epoch < 2; epoch++) {
        const perm = epochPermutation(n, seed, epoch);
        const seen = new Uint8Array(n);
        const steps = stepsPerEpoch(n, batchSize);
        for (let step = 0; step < steps; step++) {
          const single = batchIndices({ n, batchSize, seed, epoch, step, rank: 0, world: 1 });
          assert.deepEqual(single, perm.slice(step * batchSize, Math.min(n, (step + 1) * batchSize)));
          for (const i of single) seen[i]!++;
          for (let world = 1; world <= 8; world++) {
            const parts = Array.from({ length: world }, (_, rank) => batchIndices({ n, batchSize, seed, epoch, step, rank, world }));
            assert.deepEqual(parts.flatMap((p) => [...p]), [...single], `world ${world} step ${step}`);
            const sizes = parts.map((p) => p.length);
            assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1, `sizes ${sizes.join(',')}`);
            for (let r = 1; r < world; r++) assert.ok(sizes[r - 1]! >= sizes[r]!, 'earlier ranks are not smaller');
          }
        }
        assert.ok(seen.every((c) => c === 1), 'every row exactly once per epoch');
      }
    });
  }

  it('returns copies, not views of a shared buffer', () => {
    const key = { n: 20, batchSize: 5, seed: 1, epoch: 0, step: 0, rank: 0, world: 1 };
    const a = batchIndices(key);
    a.fill(0);
    assert.notDeepEqual(batchIndices(key), a);
  });
});

describe('micro-batches', () => {
  it('ranks split whole micro-batches of a batch; a rank past their number gets none; the rows concatenate to the batch', () => {
    assert.equal(microBatchCount(100, 32), 4);
    assert.equal(microBatchCount(0, 32), 0);
    assert.deepEqual([0, 1, 2].map((r) => microBatchRange(100, 32, r, 3)), [
      { first: 0, end: 2, rows: [0, 64] },
      { first: 2, end: 3, rows: [64, 96] },
      { first: 3, end: 4, rows: [96, 100] },
    ]);
    assert.deepEqual(microBatchRange(100, 32, 4, 5), { first: 4, end: 4, rows: [100, 100] }, 'four micro-batches, five ranks: the last idles');
    const key = { n: 250, batchSize: 100, seed: 3, epoch: 1, step: 1, microBatch: 32 };
    for (const world of [1, 2, 3, 4, 7]) {
      const parts = Array.from({ length: world }, (_, rank) => [...batchIndices({ ...key, rank, world })]);
      assert.deepEqual(parts.flat(), [...batchIndices({ ...key, rank: 0, world: 1 })], `world ${world}`);
      let before = 0;
      for (const p of parts) {
        before += p.length;
        if (before < 100) assert.equal(p.length % 32, 0, 'a rank whose rows end before the batch does holds whole micro-batches');
      }
    }
    assert.throws(() => microBatchCount(10, 0), dataError('DATA_ARGUMENT_INVALID', { message: /microBatch/ }));
  });
});
