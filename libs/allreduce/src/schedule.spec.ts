import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { allGatherRecvChunk, busBytes, chunkLength, chunkStart, mod, reduceScatterRecvChunk, segmentCount, segmentLength } from './schedule.js';

// The sending side of the schedule, as the comment at the top of schedule.ts states it:
// the oracle the receiving side (what the ring uses) is checked against.
const reduceScatterSendChunk = (rank: number, world: number, step: number): number => mod(rank - step, world);
const ownedChunk = (rank: number, world: number): number => mod(rank + 1, world);
const allGatherSendChunk = (rank: number, world: number, step: number): number => mod(rank + 1 - step, world);

describe('schedule', () => {
  it('cuts any length into W contiguous chunks that differ by at most one', () => {
    for (const world of [1, 2, 3, 5, 8]) {
      for (const length of [0, 1, 3, 7, 1000, 10007]) {
        let next = 0;
        const sizes: number[] = [];
        for (let c = 0; c < world; c++) {
          assert.equal(chunkStart(length, world, c), next);
          sizes.push(chunkLength(length, world, c));
          next += chunkLength(length, world, c);
        }
        assert.equal(next, length);
        assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1);
      }
    }
  });

  it('gives every chunk at least one segment and covers it exactly', () => {
    assert.equal(segmentCount(0, 4), 1);
    assert.equal(segmentLength(0, 4, 0), 0);
    for (const [length, seg] of [[1, 4], [4, 4], [5, 4], [10007, 256]] as const) {
      let total = 0;
      for (let j = 0; j < segmentCount(length, seg); j++) {
        const n = segmentLength(length, seg, j);
        assert.ok(n > 0 && n <= seg);
        total += n;
      }
      assert.equal(total, length);
    }
  });

  it('sends each step what the successor receives, and ends with rank r owning chunk r+1', () => {
    for (const world of [2, 3, 4, 7]) {
      for (let r = 0; r < world; r++) {
        const succ = (r + 1) % world;
        for (let s = 0; s < world - 1; s++) {
          assert.equal(reduceScatterSendChunk(r, world, s), reduceScatterRecvChunk(succ, world, s));
          assert.equal(allGatherSendChunk(r, world, s), allGatherRecvChunk(succ, world, s));
          if (s > 0) assert.equal(reduceScatterSendChunk(r, world, s), reduceScatterRecvChunk(r, world, s - 1));
          if (s > 0) assert.equal(allGatherSendChunk(r, world, s), allGatherRecvChunk(r, world, s - 1));
        }
        assert.equal(reduceScatterRecvChunk(r, world, world - 2), ownedChunk(r, world));
        assert.equal(allGatherSendChunk(r, world, 0), ownedChunk(r, world));
        const gathered = new Set(Array.from({ length: world - 1 }, (_, s) => allGatherRecvChunk(r, world, s)));
        gathered.add(ownedChunk(r, world));
        assert.equal(gathered.size, world);
      }
    }
  });

  it('computes mod and bus bytes as NCCL does', () => {
    assert.equal(mod(-1, 4), 3);
    assert.equal(busBytes(1024, 1), 0);
    assert.equal(busBytes(1024, 2), 1024);
    assert.equal(busBytes(1024, 4), 1536);
  });
});
