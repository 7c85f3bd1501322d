import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Link } from './link.js';
import { bytesOf, endpoints, fixture, floatData, formRings, intData, intSum, isCode, type Fixture } from './ring.fixture.js';
import { createRing } from './ring.js';
import { allGatherRecvChunk, chunkLength, segmentCount } from './schedule.js';

const LENGTHS = [0, 1, 3, 1000, 10007, 2 ** 20 + 3];

/** float64 reference and a bound on float32 summation error per element. */
function reference(seed: number, world: number, length: number): { sum: Float64Array; bound: Float64Array } {
  const sum = new Float64Array(length);
  const abs = new Float64Array(length);
  for (let r = 0; r < world; r++) {
    const d = floatData(seed, r, length);
    for (let i = 0; i < length; i++) {
      sum[i] = sum[i]! + d[i]!;
      abs[i] = abs[i]! + Math.abs(d[i]!);
    }
  }
  const bound = abs.map((a) => world * 2 ** -23 * a + 1e-30);
  return { sum, bound };
}

describe('all-gather payloads read straight into the caller\'s array', () => {
  const world = 3;
  const segmentBytes = 64 * 1024;
  const seg = segmentBytes / 4;
  const allGatherFrames = (rank: number, length: number): number => {
    let frames = 0;
    for (let s = 0; s < world - 1; s++) frames += segmentCount(chunkLength(length, world, allGatherRecvChunk(rank, world, s)), seg);
    return frames;
  };

  /** Runs `ops` all-reduces; each rank checks its sum and overwrites its array the moment its call resolves. */
  async function overwriteOnResolve(f: Fixture, length: number, ops: number): Promise<void> {
    const expected = bytesOf(intSum(world, length));
    for (let op = 0; op < ops; op++) {
      const data = f.rings.map((_, r) => intData(r, length));
      const right = await Promise.all(
        f.rings.map(async (ring, r) => {
          await ring.allReduce(data[r]!, { step: op });
          const ok = bytesOf(data[r]!).equals(expected);
          data[r]!.fill(Number.NaN); // the caller's again: nothing still to be sent may read it
          return ok;
        }),
      );
      assert.deepEqual(right, [true, true, true], `op ${op}: every rank has the exact sum`);
    }
  }

  it('W = 3: every all-gather frame is placed, and every rank gets the exact sum', async () => {
    const f = await fixture(world, { segmentBytes });
    try {
      const length = 3 * 2 ** 20 + 5; // 12 MiB: many segments per chunk
      await overwriteOnResolve(f, length, 5);
      f.rings.forEach((ring, r) => assert.equal(ring.stats.framesPlaced, 5 * allGatherFrames(r, length), `rank ${r}: each all-gather frame read into the array`));
    } finally {
      await f.close();
    }
  });

  it('a rank whose writes to its successor lag finishes only once what it forwards from its array is written', async () => {
    const f = await fixture(world, { segmentBytes });
    try {
      // Rank 0's link to rank 1 writes each frame 5 ms late, in order, as a full socket
      // would: a forward from rank 0's array is still queued when its own part is done.
      const link = (f.rings[0] as unknown as { outbound: Link }).outbound;
      const late: (() => void)[] = [];
      const later = (write: () => void): void => {
        late.push(write);
        setTimeout(() => late.shift()!(), 5);
      };
      const send = link.send.bind(link);
      const sendParts = link.sendParts.bind(link);
      link.send = (frame, cb) => later(() => send(frame, cb));
      link.sendParts = (head, payload, cb) => later(() => sendParts(head, payload, cb));
      await overwriteOnResolve(f, 2 ** 20 + 5, 3);
      assert.ok(f.rings[1]!.stats.framesPlaced > 0);
    } finally {
      await f.close();
    }
  });
});

describe('ring all-reduce, in process', () => {
  for (let world = 1; world <= 8; world++) {
    describe(`W = ${world}`, () => {
      let f: Fixture;
      // Small segments so that even modest lengths pipeline over many frames.
      before(async () => (f = await fixture(world, { segmentBytes: 64 * 1024 })));
      after(async () => f.close());

      it('sums integers exactly for every length, with every rank bit-identical', async () => {
        for (const length of LENGTHS) {
          const data = f.rings.map((_, r) => intData(r, length));
          await Promise.all(f.rings.map((ring, r) => ring.allReduce(data[r]!, { step: length })));
          const expected = bytesOf(intSum(world, length));
          data.forEach((d, r) => assert.ok(bytesOf(d).equals(expected), `rank ${r}, length ${length}`));
        }
      });

      it('sums float64 integers up to 2^50 exactly (the same-bits reduction\'s sums) for every length, every rank bit-identical', async () => {
        for (const length of LENGTHS) {
          const data = f.rings.map((_, r) => Float64Array.from({ length }, (_, i) => (i % 2 ? -1 : 1) * (2 ** 50 - r * 2 ** 30 - i)));
          const expected = Float64Array.from({ length }, (_, i) => data.reduce((sum, d) => sum + d[i]!, 0));
          await Promise.all(f.rings.map((ring, r) => ring.allReduce(data[r]!, { step: length })));
          const want = Buffer.from(expected.buffer);
          data.forEach((d, r) => assert.ok(Buffer.from(d.buffer).equals(want), `rank ${r}, length ${length}`));
        }
      });

      it('sums random floats close to a float64 reference, the same bits on every rank and every run', async () => {
        for (const length of [3, 10007]) {
          const runs: Buffer[][] = [];
          for (let run = 0; run < 2; run++) {
            const data = f.rings.map((_, r) => floatData(length, r, length));
            await Promise.all(f.rings.map((ring, r) => ring.allReduce(data[r]!)));
            runs.push(data.map((d) => Buffer.from(bytesOf(d))));
          }
          const first = runs[0]![0]!;
          for (const run of runs) for (const b of run) assert.ok(b.equals(first), 'bit-identical across ranks and runs');
          const got = new Float32Array(first.buffer, first.byteOffset, length);
          const { sum, bound } = reference(length, world, length);
          for (let i = 0; i < length; i++) assert.ok(Math.abs(got[i]! - sum[i]!) <= bound[i]!, `element ${i}: ${got[i]} vs ${sum[i]}`);
        }
      });

      it('broadcasts from every root, pipelined, including empty and multi-segment buffers', async () => {
        for (let root = 0; root < world; root++) {
          for (const length of [0, 5, 200_001]) {
            const src = Buffer.alloc(length);
            for (let i = 0; i < length; i++) src[i] = (i * 31 + root) & 0xff;
            const out = await Promise.all(
              f.rings.map((ring, r) => ring.broadcast(r === root ? src : r % 2 ? new Uint8Array(length) : undefined, root)),
            );
            out.forEach((o, r) => assert.ok(Buffer.from(o).equals(src), `root ${root} rank ${r} length ${length}`));
          }
        }
      });

      it('holds every rank at a barrier until the last arrives', async () => {
        const arrived: number[] = [];
        const done = f.rings.slice(0, -1).map((ring, r) => ring.barrier().then(() => arrived.push(r)));
        await new Promise((resolve) => setTimeout(resolve, 50));
        assert.equal(arrived.length, world === 1 ? world - 1 : 0);
        await Promise.all([...done, f.rings.at(-1)!.barrier()]);
      });
    });
  }
});

describe('broadcast followed at once by another operation, with a late receiver', () => {
  // The root (and any receiver that has its copy) may go straight on to the next
  // operation; a receiver that calls broadcast late must still find every frame in order.
  const LATE_MS = 100;
  for (const world of [2, 3, 4]) {
    it(`W = ${world}: every root, each receiver late in turn, then allReduce, barrier or broadcast`, async () => {
      const f = await fixture(world, { segmentBytes: 4096 });
      try {
        let step = 0;
        for (let root = 0; root < world; root++) {
          for (let late = 0; late < world; late++) {
            if (late === root) continue;
            for (const next of ['allReduce', 'barrier', 'broadcast'] as const) {
              step++;
              const src = Buffer.alloc(10_000);
              for (let i = 0; i < src.length; i++) src[i] = (i * 7 + root + step) & 0xff;
              const data = f.rings.map((_, r) => intData(r, 1001));
              const out = await Promise.all(
                f.rings.map(async (ring, r) => {
                  if (r === late) await new Promise((resolve) => setTimeout(resolve, LATE_MS));
                  const got = [await ring.broadcast(r === root ? src : undefined, root, { step })];
                  if (next === 'allReduce') await ring.allReduce(data[r]!, { step });
                  else if (next === 'barrier') await ring.barrier({ step });
                  else got.push(await ring.broadcast(r === root ? src : undefined, root, { step }));
                  return got;
                }),
              );
              const what = `root ${root}, rank ${late} late, then ${next}`;
              out.forEach((got, r) => got.forEach((o) => assert.ok(Buffer.from(o).equals(src), `${what}: rank ${r}`)));
              if (next === 'allReduce') data.forEach((d, r) => assert.deepEqual(d, intSum(world, 1001), `${what}: rank ${r}`));
            }
          }
        }
      } finally {
        await f.close();
      }
    });
  }
});

describe('ring behaviour', () => {
  it('queues a fast rank\'s next operation until the slow rank calls it', async () => {
    const f = await fixture(3, { segmentBytes: 4096 });
    try {
      const n = 50_000;
      const data = f.rings.map((_, r) => intData(r, n));
      await Promise.all(f.rings.map((ring, r) => ring.allReduce(data[r]!, { step: 1 })));
      // Ranks 0 and 1 start operation 2 at once; rank 2 only after 100 ms.
      const early = f.rings.slice(0, 2).map((ring, r) => ring.allReduce(data[r]!, { step: 2 }));
      await new Promise((resolve) => setTimeout(resolve, 100));
      await Promise.all([...early, f.rings[2]!.allReduce(data[2]!, { step: 2 })]);
      const expected = intSum(3, n).map((x) => x * 3);
      data.forEach((d) => assert.deepEqual(d, expected));
    } finally {
      await f.close();
    }
  });

  it('rejects an operation nobody else calls with RING_TIMEOUT, everywhere, and the ring stays failed', async () => {
    const f = await fixture(3);
    try {
      const t = Date.now();
      const pending = [f.rings[0]!.allReduce(new Float32Array(10), { timeoutMs: 300 }), f.rings[1]!.allReduce(new Float32Array(10), { timeoutMs: 300 })];
      await Promise.all(pending.map((p) => assert.rejects(p, isCode('RING_TIMEOUT'))));
      assert.ok(Date.now() - t < 1500);
      // The idle member learns it from its neighbours' coded close.
      while (f.rings[2]!.state === 'open' && Date.now() - t < 1500) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.equal(f.rings[2]!.failure?.code, 'RING_TIMEOUT');
      await assert.rejects(f.rings[2]!.barrier(), isCode('RING_TIMEOUT'));
      assert.equal(f.rings[0]!.state, 'failed');
      await assert.rejects(f.rings[0]!.barrier(), isCode('RING_TIMEOUT'));
    } finally {
      await f.close();
    }
  });

  it('propagates abort() to every member as RING_ABORTED', async () => {
    const f = await fixture(4);
    try {
      const pending = f.rings.slice(1).map((ring) => ring.allReduce(new Float32Array(1000)));
      f.rings[0]!.abort('operator asked');
      await Promise.all(pending.map((p) => assert.rejects(p, isCode('RING_ABORTED'))));
      await assert.rejects(f.rings[0]!.barrier(), isCode('RING_ABORTED'));
    } finally {
      await f.close();
    }
  });

  for (const [what, a, b] of [
    ['different lengths', new Float32Array(10), new Float32Array(11)],
    ['float32 and float64 of the same length', new Float32Array(10), new Float64Array(10)],
  ] as const) {
    it(`detects members that pass ${what} (RING_OP_MISMATCH)`, async () => {
      const f = await fixture(2);
      try {
        const results = await Promise.allSettled([f.rings[0]!.allReduce(a), f.rings[1]!.allReduce(b)]);
        assert.ok(results.some((r) => r.status === 'rejected' && isCode('RING_OP_MISMATCH')(r.reason)));
        for (const r of results) assert.equal(r.status, 'rejected');
      } finally {
        await f.close();
      }
    });
  }

  it('refuses a second operation while one is pending (RING_BUSY), and anything after close (RING_CLOSED)', async () => {
    const f = await fixture(2);
    const first = f.rings[0]!.allReduce(new Float32Array(4));
    await assert.rejects(f.rings[0]!.barrier(), isCode('RING_BUSY'));
    await f.rings[1]!.allReduce(new Float32Array(4));
    await first;
    await f.rings[0]!.close();
    await assert.rejects(f.rings[0]!.barrier(), isCode('RING_CLOSED'));
    await f.close();
  });

  it('forms a new generation on the same endpoints after a failure, and refuses the old one', async () => {
    const eps = await endpoints(3);
    try {
      const g1 = await formRings(eps, 1);
      g1[1]!.abort('test');
      await assert.rejects(g1[0]!.barrier(), isCode('RING_ABORTED'));
      await Promise.all(g1.map((r) => r.close()));
      const g2 = await formRings(eps, 2);
      const data = g2.map((_, r) => intData(r, 999));
      await Promise.all(g2.map((ring, r) => ring.allReduce(data[r]!)));
      assert.deepEqual(data[2], intSum(3, 999));
      const peers = eps.map((e, rank) => ({ rank, host: e.host, port: e.port }));
      await assert.rejects(
        createRing({ endpoint: eps[0]!, membership: { generation: 1, rank: 0, world: 3, peers, token: 'x' } }),
        isCode('RING_STALE_GENERATION'),
      );
      await Promise.all(g2.map((r) => r.close()));
    } finally {
      await Promise.all(eps.map((e) => e.close()));
    }
  });

  it('validates membership and options (RING_INVALID_ARGUMENT)', async () => {
    const peers = [{ rank: 0, host: '127.0.0.1', port: 0 }];
    const m = { generation: 1, rank: 0, world: 1, peers, token: 't' };
    await assert.rejects(createRing({ membership: { ...m, rank: 1 } }), isCode('RING_INVALID_ARGUMENT'));
    await assert.rejects(createRing({ membership: { ...m, token: '' } }), isCode('RING_INVALID_ARGUMENT'));
    await assert.rejects(createRing({ membership: { ...m, world: 2 } }), isCode('RING_INVALID_ARGUMENT'));
    await assert.rejects(createRing({ membership: m, segmentBytes: 6 }), isCode('RING_INVALID_ARGUMENT'));
    const solo = await createRing({ membership: m });
    const data = new Float32Array([1, 2, 3]);
    await solo.allReduce(data);
    assert.deepEqual(data, new Float32Array([1, 2, 3]));
    await assert.rejects(solo.broadcast(undefined, 0), isCode('RING_INVALID_ARGUMENT'));
    await assert.rejects(solo.broadcast(new Uint8Array(1), 1), isCode('RING_INVALID_ARGUMENT'));
    await assert.rejects(solo.allReduce(new Float32Array(1), { step: -1 }), isCode('RING_INVALID_ARGUMENT'));
    await assert.rejects(solo.allReduce(new Int32Array(1) as unknown as Float32Array), isCode('RING_INVALID_ARGUMENT'));
    await solo.close();
    // A float64 element does not fit a 4-byte segment.
    const narrow = await createRing({ membership: m, segmentBytes: 4 });
    await assert.rejects(narrow.allReduce(new Float64Array(1)), isCode('RING_INVALID_ARGUMENT'));
    await narrow.allReduce(new Float32Array(1));
    await narrow.close();
  });
});
