import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { allInOrder, isGzip } from './files.js';

describe('files', () => {
  it('detects gzip by magic bytes', () => {
    assert.equal(isGzip(Uint8Array.of(0x1f, 0x8b, 8)), true);
    assert.equal(isGzip(Uint8Array.of(0x1f)), false);
    assert.equal(isGzip(Uint8Array.of(0, 0, 8, 3)), false);
  });

  it('allInOrder reports the first rejection in argument order, not in time', async () => {
    const late = new Promise<number>((_, reject) => setTimeout(() => reject(new Error('first')), 20));
    const early = Promise.reject(new Error('second'));
    await assert.rejects(allInOrder<[number, number]>([late, early]), /first/);
    assert.deepEqual(await allInOrder<[number, string]>([Promise.resolve(1), Promise.resolve('a')]), [1, 'a']);
  });
});
