import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chunkIssue, RowStore } from './row-store.js';

const INFO = {
  source: 'synthetic:test',
  cols: 2,
  featureNames: ['a', 'b'],
  task: { kind: 'classification' as const, classes: ['x', 'y'] },
  rows: { train: 5, validation: 2, test: 0 },
};

test('rows fill in by global index; missing lists what is not held, once each', () => {
  const store = new RowStore(INFO);
  assert.deepEqual([...store.missing('train', [4, 1, 4, 0])], [0, 1, 4]);
  store.put('train', Uint32Array.from([4, 1]), Float32Array.from([4.5, 4.25, 1.5, 1.25]), Int32Array.from([1, 0]));
  assert.deepEqual([...store.missing('train', [4, 1, 0])], [0]);
  const t = store.dataset.train;
  assert.deepEqual([...t.features.subarray(8, 10)], [4.5, 4.25]);
  assert.deepEqual([...t.labels], [0, 0, 0, 0, 1]);
  assert.equal(store.held('train'), 2);
});

test('bad rows are refused and change nothing', () => {
  const store = new RowStore(INFO);
  assert.throws(() => store.put('train', Uint32Array.from([9]), new Float32Array(2), new Int32Array(1)), /index 9 is past its 5 rows/);
  assert.throws(() => store.put('validation', Uint32Array.from([0]), new Float32Array(3), new Int32Array(1)), /3 feature values/);
  assert.equal(store.held('train') + store.held('validation'), 0);
});

test('an answer in chunks: each must be the next rows asked for, in order', () => {
  const asked = Uint32Array.from([7, 3, 9, 1, 4]);
  let received = 0;
  for (const part of [asked.subarray(0, 2), asked.subarray(2, 4), asked.subarray(4)]) {
    assert.equal(chunkIssue(asked, received, received, part), null);
    received += part.length;
  }
  assert.equal(received, asked.length);
  assert.equal(chunkIssue(asked, 2, 0, asked.subarray(0, 2)), 'rows at 0; 2 of 5 are in');
  assert.equal(chunkIssue(asked, 4, 4, Uint32Array.from([4, 5])), '2 rows at 4 overrun the 5 asked for');
  assert.equal(chunkIssue(asked, 2, 2, Uint32Array.from([9, 2])), 'row 2 at 3; 1 was asked for there');
});
