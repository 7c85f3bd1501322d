import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bytesOf, decodeCoordinatorMessage, decodeWorkerMessage, encodeMessage, float32s, ProtocolError, uint32s } from './codec.js';
import { MAX_GENERATION, PROTOCOL_VERSION, ROWS_CHUNK_BYTES, rowsPerChunk } from './messages.js';

test('a rows message round-trips with its numbers intact and aligned', () => {
  const features = new Float32Array([1.5, -2, 3.25, 0]);
  const indices = new Uint32Array([7, 9]);
  const bytes = encodeMessage({ type: 'rows', id: 3, split: 'train', offset: 0, indices: bytesOf(indices), features: bytesOf(features), labels: bytesOf(new Int32Array([1, 2])) });
  const m = decodeCoordinatorMessage(bytes);
  assert.equal(m.type, 'rows');
  if (m.type !== 'rows') return;
  assert.deepEqual([...float32s(m.features, 'features')], [1.5, -2, 3.25, 0]);
  assert.deepEqual([...uint32s(m.indices, 'indices')], [7, 9]);
});

test('a heartbeat round-trips', () => {
  const hb = {
    type: 'heartbeat' as const,
    generation: 2,
    progress: { step: 10, epochs: 1 },
    timing: { steps: 5, computeMs: 1.5, commMs: 0.5, waitMs: 0 },
    steps: [{ step: 9, epoch: 1, loss: 0.5, samples: 32 }],
    epochs: [],
  };
  assert.deepEqual(decodeWorkerMessage(encodeMessage(hb)), hb);
});

test('garbage and wrong fields are PROTOCOL_BAD_MESSAGE naming the field', () => {
  const bad = (f: () => unknown, re: RegExp) =>
    assert.throws(f, (e: unknown) => e instanceof ProtocolError && e.code === 'PROTOCOL_BAD_MESSAGE' && re.test(e.message));
  bad(() => decodeWorkerMessage(new Uint8Array([0xc1])), /not msgpack|worker message/);
  bad(() => decodeWorkerMessage(encodeMessage({ type: 'nope' } as never)), /type/);
  bad(() => decodeWorkerMessage(encodeMessage({ type: 'fetch', id: -1, split: 'train', indices: new Uint8Array(4) } as never)), /"fetch": id/);
  bad(() => decodeCoordinatorMessage(encodeMessage({ type: 'stop', generation: 1 } as never)), /reason/);
  bad(() => float32s(new Uint8Array(6), 'features'), /features: 6 bytes/);
  // Random bytes never escape as anything but ProtocolError.
  let seed = 1;
  for (let i = 0; i < 2000; i++) {
    const n = (i % 64) + 1;
    const b = new Uint8Array(n);
    for (let j = 0; j < n; j++) b[j] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
    try {
      decodeWorkerMessage(b);
    } catch (e) {
      assert.ok(e instanceof ProtocolError, String(e));
    }
  }
});

/** Encodes `m` as a worker would (any shape), for the decoder to judge. */
const raw = (m: Record<string, unknown>): Uint8Array => encodeMessage(m as never);
const refused = (f: () => unknown, re: RegExp) =>
  assert.throws(f, (e: unknown) => e instanceof ProtocolError && e.code === 'PROTOCOL_BAD_MESSAGE' && re.test(e.message), `expected a refusal matching ${re}`);
const progress = { step: 10, epochs: 1 };

test('generations are u32: -1 (none seen) in register and heartbeat, 0..2^32-1 everywhere', () => {
  const register = { type: 'register', protocol: PROTOCOL_VERSION, id: 'w', address: { host: 'h', port: 1 }, backend: 'cpu', held: null };
  assert.equal(decodeWorkerMessage(raw({ ...register, generation: -1 })).type, 'register');
  assert.equal(decodeWorkerMessage(raw({ ...register, generation: MAX_GENERATION })).type, 'register');
  refused(() => decodeWorkerMessage(raw({ ...register, generation: MAX_GENERATION + 1 })), /"register": generation/);
  refused(() => decodeWorkerMessage(raw({ ...register, generation: -2 })), /"register": generation/);
  refused(() => decodeWorkerMessage(raw({ type: 'stopped', generation: 2 ** 40, progress: null, code: 'RING_ABORTED', reason: '' })), /"stopped": generation/);
  refused(() => decodeWorkerMessage(raw({ type: 'checkpoint', generation: -1, reason: 'steps', snapshot: new Uint8Array(8) })), /"checkpoint": generation/);
  refused(() => decodeWorkerMessage(raw({ type: 'state', generation: 1.5, snapshot: new Uint8Array(8) })), /"state": generation/);
  refused(() => decodeCoordinatorMessage(raw({ type: 'upload', generation: MAX_GENERATION + 1 })), /"upload": generation/);
  refused(() => decodeCoordinatorMessage(raw({ type: 'stop', generation: -1, reason: '' })), /"stop": generation/);
});

test('a generation message is consistent: rank and source below the world, one peer per rank in order, the source progress', () => {
  const peers = [0, 1].map((rank) => ({ rank, host: 'h', port: 7000 + rank }));
  const ok = { type: 'generation', generation: 3, rank: 1, world: 2, peers, source: 0, progress };
  assert.equal(decodeCoordinatorMessage(raw(ok)).type, 'generation');
  refused(() => decodeCoordinatorMessage(raw({ ...ok, rank: 2 })), /"generation": rank: rank 2 is not below the world 2/);
  refused(() => decodeCoordinatorMessage(raw({ ...ok, source: 5 })), /source/);
  refused(() => decodeCoordinatorMessage(raw({ ...ok, peers: [peers[0]] })), /peers: 1 peers for a world of 2/);
  refused(() => decodeCoordinatorMessage(raw({ ...ok, peers: [peers[1], peers[0]] })), /peers\.0\.rank/);
  refused(() => decodeCoordinatorMessage(raw({ ...ok, progress: undefined })), /progress/);
});

test('timings and rates are finite and non-negative; losses and accuracies finite', () => {
  const hb = { type: 'heartbeat', generation: 1, progress: null, timing: { steps: 1, computeMs: 1, commMs: 1, waitMs: 1 }, steps: [], epochs: [] };
  assert.equal(decodeWorkerMessage(raw(hb)).type, 'heartbeat');
  refused(() => decodeWorkerMessage(raw({ ...hb, timing: { ...hb.timing, computeMs: -1 } })), /timing\.computeMs/);
  refused(() => decodeWorkerMessage(raw({ ...hb, timing: { ...hb.timing, waitMs: Infinity } })), /timing\.waitMs/);
  refused(() => decodeWorkerMessage(raw({ ...hb, timing: { ...hb.timing, commMs: NaN } })), /timing\.commMs/);
  refused(() => decodeWorkerMessage(raw({ ...hb, steps: [{ step: 1, epoch: 1, loss: NaN, samples: 4 }] })), /steps\.0\.loss/);
  const epoch = { epoch: 1, train: { loss: 0.5, accuracy: 0.9 }, validation: null, learningRate: 0.001, seconds: 2, samplesPerSecond: 100 };
  assert.equal(decodeWorkerMessage(raw({ ...hb, epochs: [epoch] })).type, 'heartbeat');
  refused(() => decodeWorkerMessage(raw({ ...hb, epochs: [{ ...epoch, seconds: -Infinity }] })), /epochs\.0\.seconds/);
  refused(() => decodeWorkerMessage(raw({ ...hb, epochs: [{ ...epoch, samplesPerSecond: -3 }] })), /samplesPerSecond/);
  refused(() => decodeWorkerMessage(raw({ ...hb, epochs: [{ ...epoch, train: { loss: Infinity, accuracy: 0.5 } }] })), /train\.loss/);
  refused(() => decodeWorkerMessage(raw({ ...hb, epochs: [{ ...epoch, train: { loss: 1, accuracy: 1.5 } }] })), /train\.accuracy/);
});

test('rows come in chunks of at most 4 MiB', () => {
  for (const cols of [1, 4, 784, 3072, 2_000_000]) {
    const n = rowsPerChunk(cols);
    assert.ok(n >= 1);
    assert.ok(n === 1 || n * 4 * (cols + 2) <= ROWS_CHUNK_BYTES, `${n} rows of ${cols} columns`);
    assert.ok((n + 1) * 4 * (cols + 2) > ROWS_CHUNK_BYTES, 'as many as fit');
  }
});

test('register and job carry PROTOCOL_VERSION: another version (or none, as version 1 sent) is PROTOCOL_VERSION naming both, checked before the other fields', () => {
  const versionError = (f: () => unknown): ProtocolError => {
    try {
      f();
    } catch (err) {
      assert.ok(err instanceof ProtocolError);
      return err;
    }
    assert.fail('not refused');
  };
  const old = versionError(() => decodeWorkerMessage(raw({ type: 'register', id: 'w' })));
  assert.equal(old.code, 'PROTOCOL_VERSION');
  assert.equal(old.message, `register: the worker speaks control protocol 1 (it carries none), this coordinator ${PROTOCOL_VERSION}: run the same ringtrain version everywhere`);
  const newer = versionError(() => decodeWorkerMessage(raw({ type: 'register', protocol: PROTOCOL_VERSION + 1 })));
  assert.match(newer.message, new RegExp(`^register: the worker speaks control protocol ${PROTOCOL_VERSION + 1}, this coordinator ${PROTOCOL_VERSION}:`));
  const job = versionError(() => decodeCoordinatorMessage(raw({ type: 'job', protocol: 1 })));
  assert.equal(job.code, 'PROTOCOL_VERSION');
  assert.match(job.message, new RegExp(`^job: the coordinator speaks control protocol 1, this worker ${PROTOCOL_VERSION}:`));
  // Whatever the version field holds, the refusal is a ProtocolError (a BigInt once made JSON throw here).
  for (const odd of [18446744073709551615n, 'x'.repeat(1000), { a: 1 }, null, 2.5]) {
    const e = versionError(() => decodeWorkerMessage(raw({ type: 'register', protocol: odd })));
    assert.equal(e.code, 'PROTOCOL_VERSION');
    assert.ok(e.message.length < 200, e.message);
  }
  // Other messages carry no version; a right version goes on to the other fields.
  assert.equal(versionError(() => decodeWorkerMessage(raw({ type: 'register', protocol: PROTOCOL_VERSION }))).code, 'PROTOCOL_BAD_MESSAGE');
});

test('stopped carries a code: a stable error code, refused otherwise', () => {
  const stopped = (code: unknown) => raw({ type: 'stopped', generation: 1, progress: null, code, reason: 'r' });
  assert.equal((decodeWorkerMessage(stopped('RING_TIMEOUT')) as { code: string }).code, 'RING_TIMEOUT');
  for (const bad of ['ring_timeout', 'RING', 'RING_', '', 'A'.repeat(70) + '_B', 3]) {
    refused(() => decodeWorkerMessage(stopped(bad)), /"stopped": code/);
  }
});
