import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createRing, listen, type Ring, type RingEndpoint } from '@ringtrain/allreduce';
import { INITIAL_LOOP, stateSource, TrainError, type TrainSnapshot } from '@ringtrain/train';
import { broadcastState } from './state-sync.js';

const endpoints: RingEndpoint[] = [];
const rings: Ring[] = [];
after(async () => {
  await Promise.all(rings.map((r) => r.close()));
  await Promise.all(endpoints.map((e) => e.close()));
});

/** A ring of `world` members on loopback, generation `generation` (the endpoints are shared by the tests). */
async function ring(world: number, generation: number): Promise<Ring[]> {
  while (endpoints.length < world) endpoints.push(await listen({ host: '127.0.0.1', port: 0 }));
  const peers = endpoints.slice(0, world).map((e, rank) => ({ rank, host: e.host, port: e.port }));
  const formed = await Promise.all(endpoints.slice(0, world).map((endpoint, rank) => createRing({ endpoint, membership: { generation, rank, world, peers, token: 'job-token' } })));
  rings.push(...formed);
  return formed;
}

const P = 1000;
const SHAPE = { params: P, slots: 2 * P, optimizer: 'adam' as const };
const floats = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + seed));
const STATE: TrainSnapshot = {
  loop: { ...INITIAL_LOOP, epoch: 1, stepInEpoch: 2, globalStep: 12 },
  params: floats(P, 1),
  optimizer: { name: 'adam', iterations: 12, slots: floats(2 * P, 2) },
  bestParams: floats(P, 3),
  trainRows: 100,
};

test('the source`s state reaches every member bit for bit; the source keeps its own', async () => {
  const members = await ring(3, 1);
  const got = await Promise.all(members.map((r) => broadcastState(r, r.rank === 1 ? STATE : undefined, 1, SHAPE)));
  assert.equal(got[1], STATE, 'the root returns its own state, not a copy');
  for (const rank of [0, 2]) {
    assert.deepEqual(got[rank], STATE);
    assert.notEqual(got[rank]!.params.buffer, STATE.params.buffer);
  }
});

test('arrays that do not match the digest the source sent are SNAPSHOT_INVALID at every receiver', async () => {
  const members = await ring(3, 2);
  // A root that sends the right header with the SHA-256 of other arrays, then its arrays.
  const [prefix, ...arrays] = stateSource(STATE).parts;
  const head = new Uint8Array(32 + prefix!.byteLength);
  head.set(prefix!, 32); // a digest of zeros
  const root = (async () => {
    await members[0]!.broadcast(head, 0);
    for (const a of arrays) await members[0]!.broadcast(a, 0);
  })();
  const received = await Promise.allSettled(members.slice(1).map((r) => broadcastState(r, undefined, 0, SHAPE)));
  await root;
  for (const r of received) {
    assert.equal(r.status, 'rejected');
    const err = (r as PromiseRejectedResult).reason as TrainError;
    assert.ok(err instanceof TrainError && err.code === 'SNAPSHOT_INVALID', String(err));
    assert.match(err.message, /the state from rank 0 does not match its SHA-256/);
  }
});

test('a header for another model is refused before anything is allocated for it', async () => {
  const members = await ring(2, 3);
  // As generation.ts does, the member that refuses aborts its ring, which ends the source's broadcast too.
  const receiver = broadcastState(members[1]!, undefined, 0, { ...SHAPE, params: P + 1 }).catch((err: unknown) => {
    members[1]!.abort('the state did not verify');
    throw err;
  });
  const [source, refused] = await Promise.allSettled([broadcastState(members[0]!, STATE, 0, SHAPE), receiver]);
  assert.equal(source.status, 'rejected', 'the source learns that the ring ended');
  const err = (refused as PromiseRejectedResult).reason as TrainError;
  assert.equal(err.code, 'SNAPSHOT_INVALID');
  assert.match(err.message, /1000 parameters; this model has 1001/);
});
