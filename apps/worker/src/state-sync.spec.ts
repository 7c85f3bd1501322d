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
    await members[0]!.allReduce(new Float32Array(1)); // "who needs the arrays": the root does not
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

const copyOf = (s: TrainSnapshot): TrainSnapshot => ({ ...s, params: s.params.slice(), optimizer: { ...s.optimizer, slots: s.optimizer.slots.slice() }, bestParams: s.bestParams!.slice() });

test('members that all hold the source`s state keep their own: no arrays are sent, nothing is copied', async () => {
  const members = await ring(3, 4);
  const own = [copyOf(STATE), STATE, copyOf(STATE)];
  const frames = () => members.reduce((n, r) => n + r.stats.framesSent, 0);
  const before = frames();
  const got = await Promise.all(members.map((r) => broadcastState(r, own[r.rank], 1, SHAPE)));
  got.forEach((g, rank) => assert.equal(g, own[rank], `rank ${rank} keeps its own arrays`));
  const kept = frames() - before;
  // The same with one member that holds nothing: the three arrays go round as well.
  const again = await Promise.all(members.map((r) => broadcastState(r, r.rank === 2 ? undefined : own[r.rank], 1, SHAPE)));
  const sent = frames() - before - kept;
  assert.deepEqual(again[2], STATE);
  // Each broadcast is a data frame and an acknowledgement per hop: 3 arrays x 2 hops x 2 more.
  assert.equal(sent - kept, 3 * 2 * 2, `frames when all hold the state: ${kept}; when one does not: ${sent}`);
});

test('a joiner gets the state, and so does a member holding an older one; a member that holds it takes a fresh copy too', async () => {
  const members = await ring(4, 5);
  const older: TrainSnapshot = { ...copyOf(STATE), loop: { ...STATE.loop, stepInEpoch: 1, globalStep: 11 } };
  const same = copyOf(STATE);
  const own = [STATE, undefined, older, same];
  const got = await Promise.all(members.map((r) => broadcastState(r, own[r.rank], 0, SHAPE)));
  assert.equal(got[0], STATE);
  for (const rank of [1, 2, 3]) {
    assert.deepEqual(got[rank], STATE);
    assert.notEqual(got[rank]!.params.buffer, STATE.params.buffer);
  }
  assert.notEqual(got[3], same, 'a transfer that breaks half way must not touch the state it holds');
  assert.deepEqual(same, STATE);
});
