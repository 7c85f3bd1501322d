/**
 * The all-reduce correctness matrix with every rank in its own process: W = 2, 3, 4 by
 * lengths {0, 1, 3, 1000, 10007, 2^20 + 3}, integers checked exactly, random floats
 * against a float64 reference, and every rank's result bit-identical. (W up to 8 runs
 * in process in libs/allreduce/src/ring.spec.ts.)
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { allReduce, closeRing, form, killAll, spawnRanks, type RankProcess } from './allreduce-harness.js';

const LENGTHS = [0, 1, 3, 1000, 10007, 2 ** 20 + 3];
const tuning = { opTimeoutMs: 30_000, heartbeatIntervalMs: 500, heartbeatTimeoutMs: 10_000, segmentBytes: 64 * 1024 };

describe('all-reduce across processes', () => {
  let procs: RankProcess[] = [];
  before(async () => (procs = await spawnRanks(4)));
  after(async () => killAll(procs));

  for (const world of [2, 3, 4]) {
    it(`W = ${world}: exact integer sums and float sums, bit-identical on every rank`, async () => {
      const ring = procs.slice(0, world);
      await form(ring, world, tuning);
      for (const length of LENGTHS) {
        for (const kind of ['int', 'float'] as const) {
          if (kind === 'float' && length < 3) continue;
          const replies = await allReduce(ring, kind, length + world, length);
          replies.forEach((r, rank) => assert.ok(r.ok, `${kind} sum wrong on rank ${rank}, length ${length}`));
          assert.equal(new Set(replies.map((r) => r.digest)).size, 1, `ranks differ, ${kind} length ${length}`);
        }
      }
      // Same inputs, same bits, run after run.
      const again = await allReduce(ring, 'float', 7, 10007);
      const once = await allReduce(ring, 'float', 7, 10007);
      assert.equal(again[0]!.digest, once[0]!.digest);
      await closeRing(ring);
    });
  }
});
