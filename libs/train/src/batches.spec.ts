import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Table } from '@ringtrain/data';
import { type BatchScratch, evalData, trainingBatch } from './batches.js';

function table(kind: 'classification' | 'regression', rows = 10, cols = 6): Table {
  return {
    features: Float32Array.from({ length: rows * cols }, (_, i) => i / 7),
    rows,
    cols,
    featureNames: Array.from({ length: cols }, (_, i) => `f${i}`),
    labels: kind === 'classification' ? Int32Array.from({ length: rows }, (_, i) => i % 3) : Float32Array.from({ length: rows }, (_, i) => i * 1.5),
    task: kind === 'classification' ? { kind, classes: ['a', 'b', 'c'] } : { kind, target: 'y' },
  };
}

const plain = (b: ReturnType<typeof trainingBatch>) => ({ rows: b.rows, x: [...b.x], targets: [...b.targets], labels: b.labels ? [...b.labels] : null });

describe('trainingBatch with a scratch', () => {
  for (const kind of ['classification', 'regression'] as const) {
    it(`gives the batches a fresh allocation would, in the same buffers (${kind}, with noise)`, () => {
      const t = table(kind);
      const augment = { noise: 0.1 };
      const scratch: BatchScratch = {};
      // Full, short (an epoch's last step), then full again: the short one must not shrink the buffers.
      const batches = [[0, 3, 5, 7], [9, 1], [2, 4, 6, 8]].map((rows) => Uint32Array.from(rows));
      let buffers: ArrayBufferLike[] | null = null;
      for (const [i, indices] of batches.entries()) {
        const key = { seed: 3, epoch: i };
        const reused = trainingBatch(t, indices, augment, key, scratch);
        assert.deepEqual(plain(reused), plain(trainingBatch(t, indices, augment, key)));
        const now = [reused.x.buffer, reused.targets.buffer];
        if (buffers) assert.deepEqual(now, buffers, 'the same buffers every step');
        buffers = now;
      }
      assert.equal(scratch.x!.length, 4 * t.cols);
      assert.equal(scratch.targets!.length, 4 * (kind === 'classification' ? 3 : 1));
    });
  }
});

describe('targets', () => {
  it('are one-hot rows for classification, with the class labels, and the target values for regression', () => {
    const classes = trainingBatch(table('classification'), Uint32Array.from([1, 2]), {}, { seed: 0, epoch: 0 });
    assert.deepEqual([...classes.targets], [0, 1, 0, 0, 0, 1]);
    assert.deepEqual(classes.labels, Int32Array.from([1, 2]));
    const values = trainingBatch(table('regression'), Uint32Array.from([2, 3]), {}, { seed: 0, epoch: 0 });
    assert.deepEqual([...values.targets], [3, 4.5]);
    assert.equal(values.labels, undefined, 'regression has no class labels');
  });

  it('of a whole split: every row, its features as they are', () => {
    const t = table('classification', 4, 2);
    const all = evalData(t);
    assert.equal(all.rows, 4);
    assert.equal(all.x, t.features);
    assert.deepEqual([...all.targets], [1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0]);
  });
});
