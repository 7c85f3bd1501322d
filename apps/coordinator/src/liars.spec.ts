/**
 * A token holder that lies, over a real WebSocket to a real JobRuntime: each attack of
 * issue 13 reproduced as it was measured, and refused. Iris: 120 training rows in
 * batches of 32 (4 steps an epoch), 2 epochs, a model of 15 parameters.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bytesOf, float32s, ROWS_CHUNK_BYTES, uint32s, type WorkerMessage } from '@ringtrain/protocol';
import { encodeSnapshot, INITIAL_LOOP } from '@ringtrain/train';
import { closed, coordinator, done, withPayload, type FakeWorker, type Harness, joined, P, register, status, until, within, worker } from './server.fixture.js';

/** w1 alone in generation 1, then w2 joining: generation 2 of [w1, w2] from the coordinator's state. */
async function twoInARing(h: Harness): Promise<[FakeWorker, FakeWorker]> {
  const w1 = await joined(h, 'w1');
  await w1.next('generation');
  const w2 = await joined(h, 'w2');
  await w1.next('stop');
  w1.send({ type: 'stopped', generation: 1, progress: null, code: 'RING_ABORTED', reason: 'told to stop' });
  const [g1, g2] = [await w1.next('generation'), await w2.next('generation')];
  assert.deepEqual([g1.generation, g1.rank, g2.rank, g2.world], [2, 0, 1, 2]);
  return [w1, w2];
}

async function refused(w: FakeWorker, m: WorkerMessage): Promise<{ code: number; reason: string }> {
  const c = closed(w.ws);
  w.send(m);
  return c;
}

test('generation 4294967295 in a register is refused, not adopted: the numbering and coordinator.json stay the job\'s', async (t) => {
  const h = await coordinator(t);
  const w1 = await joined(h, 'w1');
  assert.equal((await w1.next('generation')).generation, 1);
  const liar = await worker(h);
  assert.deepEqual(await refused(liar, register('liar', { generation: 4294967295 })), {
    code: 1008,
    reason: 'PROTOCOL_BAD_MESSAGE: register: generation 4294967295 is more than 1000 above this job\'s newest, 1',
  });
  // Past a u32 it never decodes.
  const other = await worker(h);
  assert.match((await refused(other, register('other', { generation: 2 ** 32 }))).reason, /^PROTOCOL_BAD_MESSAGE: worker message "register": generation: Too big/);
  const s = await status(h);
  assert.equal(s.generation, 1);
  assert.deepEqual(s.ring, ['w1']);
  assert.equal(h.runtime.rejections.counts.bad_message, 2);
  const file = join(h.outDir, 'coordinator.json');
  await until(() => existsSync(file), 'coordinator.json written');
  assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { generation: 1 });
});

test('coordinator.json read back: a generation out of range, or no JSON, starts from 0; a good one continues', async (t) => {
  for (const [text, first] of [['{"generation":4294967295}\n', 1], ['{"generation":-3}', 1], ['{"generation":1.5}', 1], ['{', 1], ['{"generation":41}\n', 42]] as const) {
    const h = await coordinator(t, { prepare: (dir) => writeFile(join(dir, 'coordinator.json'), text) });
    const w = await joined(h, 'w1');
    assert.equal((await w.next('generation')).generation, first, text);
  }
});

test('a forged done is refused: from a newcomer outside the ring (PROTOCOL_ROLE), with no epochs (PROTOCOL_BAD_MESSAGE); a member other than rank 0 is not taken', async (t) => {
  const h = await coordinator(t);
  const w1 = await joined(h, 'w1');
  await w1.next('generation');
  // w2 joins; until w1 reports, the next ring has not formed and w2 is in none.
  const w2 = await joined(h, 'w2');
  await w1.next('stop');
  assert.deepEqual(await refused(w2, done(1, 0.5)), { code: 1008, reason: 'PROTOCOL_ROLE: done of generation 1: w2 is not a member of generation 1' });
  // The exact forgery: every weight 0.5, no epoch recorded.
  const w3 = await joined(h, 'w3');
  assert.deepEqual(await refused(w3, done(1, 0.5, { history: [], steps: 0, bestEpoch: 0 })), {
    code: 1008,
    reason: 'PROTOCOL_BAD_MESSAGE: worker message "done": result.history: 0 epochs recorded of the job\'s 2, and not stopped early',
  });
  assert.equal(h.runtime.rejections.counts.wrong_role, 1);
  assert.equal(existsSync(join(h.outDir, 'model')), false);
  assert.notEqual((await status(h)).state, 'completed');
  // A ring of w1 and a fresh w4; w4 (rank 1) sends its own result first: counted, not taken.
  w1.send({ type: 'stopped', generation: 1, progress: null, code: 'RING_ABORTED', reason: 'told to stop' });
  await w1.next('generation');
  const w4 = await joined(h, 'w4');
  await w1.next('stop');
  w1.send({ type: 'stopped', generation: 2, progress: null, code: 'RING_ABORTED', reason: 'told to stop' });
  assert.equal((await w1.next('generation')).generation, 3);
  assert.equal((await w4.next('generation')).rank, 1);
  w4.send(done(3, 0.5));
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(w4.ws.readyState, w4.ws.OPEN);
  assert.equal(existsSync(join(h.outDir, 'model')), false);
  // Rank 0's result is the job's.
  w1.send(done(3, 0.25));
  const outcome = await within(h.runtime.outcome, 'the job completed', 20_000);
  assert.equal(outcome.kind, 'completed');
  const weights = readFileSync(join(h.outDir, 'model', 'weights.bin'));
  assert.deepEqual([...new Float32Array(weights.buffer, weights.byteOffset, weights.byteLength / 4)], new Array(15).fill(0.25));
});

test('checkpoints come from rank 0 only and a state only when asked: anything else is PROTOCOL_ROLE', async (t) => {
  const h = await coordinator(t);
  const [, w2] = await twoInARing(h);
  const snapshot = encodeSnapshot({ loop: INITIAL_LOOP, params: new Float32Array(15), optimizer: { name: 'adam', iterations: 0, slots: new Float32Array(30) }, bestParams: null, trainRows: 120 });
  assert.deepEqual(await refused(w2, withPayload((state) => ({ type: 'checkpoint', generation: 2, reason: 'steps', state }), snapshot)), {
    code: 1008,
    reason: 'PROTOCOL_ROLE: checkpoint of generation 2: only rank 0 of generation 2 checkpoints',
  });
  const w3 = await joined(h, 'w3');
  assert.deepEqual(await refused(w3, withPayload((state) => ({ type: 'state', generation: 2, state }), snapshot)), { code: 1008, reason: 'PROTOCOL_ROLE: state of generation 2: not asked for' });
  assert.equal((await status(h)).checkpoints.length, 0);
});

test('a fetch of 2 million indices (8 MB) is refused at the wire; so is one past the shard of a world of 2, or from outside the ring', async (t) => {
  const h = await coordinator(t);
  const [w1] = await twoInARing(h);
  const fetch = (id: number, indices: Uint32Array): WorkerMessage => ({ type: 'fetch', id, split: 'train', indices: bytesOf(indices) });
  // Within the shard (4 steps of 16 rows): answered.
  w1.send(fetch(1, Uint32Array.from({ length: 64 }, (_, i) => i)));
  assert.equal(uint32s((await w1.next('rows')).indices, 'indices').length, 64);
  assert.deepEqual(await refused(w1, fetch(2, Uint32Array.from({ length: 65 }, (_, i) => i))), {
    code: 1008,
    reason: 'PROTOCOL_BAD_MESSAGE: fetch: 65 train rows asked for; a shard of a world of 2 has at most 64',
  });
  const w3 = await joined(h, 'w3');
  assert.deepEqual(await refused(w3, fetch(3, Uint32Array.from([0]))), { code: 1008, reason: 'PROTOCOL_ROLE: fetch: w3 is not a member of the newest ring' });
  const w4 = await joined(h, 'w4');
  assert.deepEqual(await refused(w4, fetch(4, new Uint32Array(2_000_000))), {
    code: 1008,
    reason: 'PROTOCOL_BAD_MESSAGE: worker message "fetch": indices: 2000000 rows asked for; the train split has 120',
  });
});

test('rows are answered in chunks of at most 4 MiB, in the order asked, that together are the rows asked for', async (t) => {
  // 1,024 columns: 1,022 rows fit in a chunk.
  const h = await coordinator(t, { spec: { name: 'wide', data: { source: 'synthetic:rows=4000,features=1024,classes=3,seed=1' }, training: { epochs: 1, batchSize: 64 } } });
  const w = await joined(h, 'w1');
  await w.next('generation');
  const { train } = h.job.data;
  const asked = Uint32Array.from({ length: 2500 }, (_, k) => (k * 7) % train.rows);
  w.send({ type: 'fetch', id: 5, split: 'train', indices: bytesOf(asked) });
  const offsets: number[] = [];
  for (let got = 0; got < asked.length; ) {
    const m = await w.next('rows');
    assert.ok(m.indices.byteLength + m.features.byteLength + m.labels.byteLength <= ROWS_CHUNK_BYTES);
    assert.equal(m.offset, got);
    const indices = uint32s(m.indices, 'indices');
    assert.deepEqual(indices, asked.subarray(got, got + indices.length));
    const first = indices[0]!;
    assert.deepEqual(float32s(m.features, 'features').subarray(0, 1024), train.features.subarray(first * 1024, (first + 1) * 1024));
    offsets.push(m.offset);
    got += indices.length;
  }
  assert.deepEqual(offsets, [0, 1022, 2044]);
});

test('step 1e12 with the coordinator\'s own HTTP port as ring address is refused; a plausible claim there is excluded by the handshake probe', async (t) => {
  const h = await coordinator(t);
  const w1 = await joined(h, 'w1');
  await w1.next('generation');
  const http = { host: '127.0.0.1', port: h.server.port };
  const liar = await worker(h);
  assert.match((await refused(liar, register('liar', { address: http, held: { jobId: h.runtime.id, progress: { step: 1e12, epochs: 0 } } }))).reason, /^PROTOCOL_BAD_MESSAGE: worker message "register": held\.progress\.step: Too big/);
  const far = await worker(h);
  assert.equal(
    (await refused(far, register('liar', { address: http, held: { jobId: h.runtime.id, progress: { step: 1e9, epochs: 0 } } }))).reason,
    'PROTOCOL_BAD_MESSAGE: worker message "register": held.progress: step 1000000000 is past the job\'s 8 steps',
  );
  assert.equal((await status(h)).step, 0);
  // Within the job's steps: taken as the most advanced state, so the next ring's source ...
  const plausible = await joined(h, 'liar', { address: http, held: { jobId: h.runtime.id, progress: { step: P, epochs: 1 } } });
  await w1.next('stop');
  w1.send({ type: 'stopped', generation: 1, progress: null, code: 'RING_ABORTED', reason: 'told to stop' });
  const g = await w1.next('generation');
  assert.deepEqual([g.source, g.progress], [1, { step: P, epochs: 1 }]);
  await plausible.next('generation');
  // ... whose address w1 cannot dial. The coordinator's probe runs the ring handshake, which an HTTP port cannot answer.
  const gone = closed(plausible.ws);
  w1.send({ type: 'stopped', generation: 2, progress: null, code: 'RING_ABORTED', reason: 'could not connect to rank 1', unreachable: 1 });
  await plausible.next('stop');
  const reject = await plausible.next('reject');
  assert.equal(reject.code, 'PEER_UNREACHABLE');
  assert.equal((await gone).code, 4000);
  const s = await status(h);
  assert.ok(
    s.events.some((e) => e.kind === 'excluded' && e.message === `liar excluded: w1 could not connect to its ring address 127.0.0.1:${h.server.port}, nor could the coordinator (not a ring endpoint (HTTP 404))`),
    JSON.stringify(s.events.slice(-4)),
  );
});

test('a source whose state a member finds invalid is excluded (SOURCE_INVALID); the ring goes on without it', async (t) => {
  const h = await coordinator(t);
  const w1 = await joined(h, 'w1');
  await w1.next('generation');
  const liar = await joined(h, 'liar', { held: { jobId: h.runtime.id, progress: { step: P, epochs: 1 } } });
  await w1.next('stop');
  w1.send({ type: 'stopped', generation: 1, progress: null, code: 'RING_ABORTED', reason: 'told to stop' });
  const g = await w1.next('generation');
  assert.equal(g.source, 1);
  await liar.next('generation');
  const gone = closed(liar.ws);
  w1.send({ type: 'stopped', generation: 2, progress: null, code: 'RING_ABORTED', reason: 'state snapshot: params[0] is NaN', invalidSource: 1 });
  await liar.next('stop');
  assert.equal((await liar.next('reject')).code, 'SOURCE_INVALID');
  assert.equal((await gone).code, 4000);
  const next = await w1.next('generation');
  assert.deepEqual([next.generation, next.world, next.source, next.progress], [3, 1, 0, { step: 0, epochs: 0 }]);
  assert.ok((await status(h)).events.some((e) => e.kind === 'excluded' && e.message.startsWith('liar excluded: it claimed step 4 but the state it sent did not verify at w1')));
  // A member can only name the generation's source: w1 naming itself, or a rank that was no source, changes nothing.
  w1.send({ type: 'stopped', generation: 3, progress: null, code: 'RING_ABORTED', reason: 'x', invalidSource: 0 });
  assert.equal((await w1.next('generation')).generation, 4);
});
