import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TrainError } from './errors.js';
import { decodeSnapshot, encodeSnapshot, MAX_STATE_HEADER_BYTES, SnapshotAssembler, StateParser, stateSource, verifySnapshot } from './snapshot-codec.js';
import { validateJobSpec } from './spec.js';
import { INITIAL_LOOP } from './loop.js';
import type { TrainSnapshot } from './trainer.js';

const SNAP: TrainSnapshot = {
  loop: {
    ...INITIAL_LOOP,
    epoch: 2,
    stepInEpoch: 3,
    globalStep: 27,
    partial: { lossSum: 12.5, count: 48, correct: 40, seconds: 0.25 },
    history: [{ epoch: 1, train: { loss: 0.5, accuracy: 0.8 }, validation: null, learningRate: 0.01, seconds: 1, samplesPerSecond: 100 }],
    best: { loss: 0.4, epoch: 1 },
  },
  params: new Float32Array([1.5, -2, 3.25, 0.1]),
  optimizer: { name: 'adam', iterations: 27, slots: new Float32Array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]) },
  bestParams: new Float32Array([9, 8, 7, 6]),
  trainRows: 120,
};
const SHAPE = { params: 4, slots: 8, optimizer: 'adam' as const };

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof TrainError, String(err));
    return err.code;
  }
  return 'no error';
}

test('round trip: every field comes back bit for bit', () => {
  assert.deepEqual(decodeSnapshot(encodeSnapshot(SNAP), SHAPE), SNAP);
  const noBest = { ...SNAP, bestParams: null };
  assert.deepEqual(decodeSnapshot(encodeSnapshot(noBest), SHAPE), noBest);
  // From an unaligned view into a larger buffer, as a socket may deliver it.
  const bytes = encodeSnapshot(SNAP);
  const shifted = new Uint8Array(bytes.length + 1);
  shifted.set(bytes, 1);
  assert.deepEqual(decodeSnapshot(shifted.subarray(1), SHAPE), SNAP);
  // From a Node Buffer inside a larger allocation, as ws delivers it.
  const pool = Buffer.alloc(bytes.length + 100);
  pool.set(bytes, 37);
  assert.deepEqual(decodeSnapshot(pool.subarray(37, 37 + bytes.length), SHAPE), SNAP);
});

test('another model, optimizer, or a damaged buffer is SNAPSHOT_INVALID', () => {
  const bytes = encodeSnapshot(SNAP);
  assert.equal(code(() => decodeSnapshot(bytes, { ...SHAPE, params: 5 })), 'SNAPSHOT_INVALID');
  assert.equal(code(() => decodeSnapshot(bytes, { ...SHAPE, optimizer: 'sgd' })), 'SNAPSHOT_INVALID');
  assert.equal(code(() => decodeSnapshot(bytes.subarray(0, bytes.length - 4), SHAPE)), 'SNAPSHOT_INVALID');
  assert.equal(code(() => decodeSnapshot(bytes.subarray(0, 6), SHAPE)), 'SNAPSHOT_INVALID');
  const wrongMagic = bytes.slice();
  wrongMagic[0] = 0;
  assert.equal(code(() => decodeSnapshot(wrongMagic, SHAPE)), 'SNAPSHOT_INVALID');
  // Every single-byte corruption of the header is caught or decodes to a valid snapshot; none crashes.
  const headerEnd = 8 + new DataView(bytes.buffer).getUint32(4, true);
  for (let i = 0; i < headerEnd; i++) {
    const b = bytes.slice();
    b[i] = b[i]! ^ 0x5a;
    const c = code(() => decodeSnapshot(b, SHAPE));
    assert.ok(c === 'SNAPSHOT_INVALID' || c === 'no error', `byte ${i}: ${c}`);
  }
});

test('verifySnapshot: finite numbers and a loop state the job could reach, or SNAPSHOT_INVALID naming why', () => {
  // 120 rows in batches of 10: 12 steps an epoch. SNAP is at epoch 2 (0-based), step 3 of it.
  const spec = validateJobSpec({ name: 'v', data: { source: 'builtin:iris' }, training: { batchSize: 10, epochs: 5 } });
  const history = [SNAP.loop.history[0]!, { ...SNAP.loop.history[0]!, epoch: 2 }];
  const good: TrainSnapshot = { ...SNAP, loop: { ...SNAP.loop, history } };
  verifySnapshot(good, spec, 120);
  verifySnapshot({ ...good, loop: { ...good.loop, stepInEpoch: 12, globalStep: 36 } }, spec, 120); // validation pending
  const why = (s: TrainSnapshot, rows = 120): string => {
    try {
      verifySnapshot(s, spec, rows);
    } catch (err) {
      assert.ok(err instanceof TrainError && err.code === 'SNAPSHOT_INVALID', String(err));
      return err.message;
    }
    return 'no error';
  };
  assert.match(why(good, 121), /120 training rows; this job has 121/);
  assert.match(why({ ...good, loop: { ...good.loop, globalStep: 1e9 } }), /globalStep 1000000000 is not epoch 2 x 12 \+ 3/);
  assert.match(why({ ...good, loop: { ...good.loop, stepInEpoch: 13, globalStep: 37 } }), /stepInEpoch 13 is past the 12 steps/);
  assert.match(why(SNAP), /1 epochs recorded at epoch 2/);
  assert.match(why({ ...good, loop: { ...good.loop, history: [history[1]!, history[0]!] } }), /history\[0\] is not epoch 1/);
  assert.match(why({ ...good, loop: { ...good.loop, partial: { ...good.loop.partial, lossSum: -1 } } }), /partial\.lossSum/);
  assert.match(why({ ...good, loop: { ...good.loop, best: { loss: 0.1, epoch: 3 } } }), /loop\.best/);
  assert.match(why({ ...good, params: Float32Array.from([1, NaN, 0, 0]) }), /params\[1\] is NaN/);
  assert.match(why({ ...good, optimizer: { ...good.optimizer, slots: new Float32Array(8).fill(Infinity) } }), /optimizer slots\[0\] is Infinity/);
  assert.match(why({ ...good, bestParams: Float32Array.from([0, 0, 0, -Infinity]) }), /best weights\[3\]/);
});

test('the stream parses the same in pieces of any size, and sends views of the arrays, not copies', () => {
  const bytes = encodeSnapshot(SNAP);
  for (const size of [1, 2, 3, 5, 7, 13, bytes.length]) {
    const assembler = new SnapshotAssembler();
    const parser = new StateParser(SHAPE, assembler, bytes.length);
    for (let at = 0; at < bytes.length; at += size) parser.push(bytes.subarray(at, at + size));
    parser.end();
    assert.deepEqual(assembler.snapshot(), SNAP, `pieces of ${size} bytes`);
  }
  const source = stateSource(SNAP);
  assert.equal(source.bytes, bytes.length);
  assert.equal(source.parts[1]!.buffer, SNAP.params.buffer);
  assert.equal(source.parts[2]!.buffer, SNAP.optimizer.slots.buffer);
});

test('a stream that ends early, runs long, or was announced at another length is SNAPSHOT_INVALID', () => {
  const bytes = encodeSnapshot(SNAP);
  const parse = (b: Uint8Array, total: number | null): void => {
    const parser = new StateParser(SHAPE, new SnapshotAssembler(), total);
    parser.push(b);
    parser.end();
  };
  assert.equal(code(() => parse(bytes.subarray(0, bytes.length - 1), null)), 'SNAPSHOT_INVALID');
  assert.equal(code(() => parse(Uint8Array.from([...bytes, 0, 0, 0, 0]), null)), 'SNAPSHOT_INVALID');
  assert.equal(code(() => parse(bytes, bytes.length + 4)), 'SNAPSHOT_INVALID');
  // A header length past the bound is refused before anything waits for it.
  const huge = bytes.slice(0, 8);
  new DataView(huge.buffer).setUint32(4, MAX_STATE_HEADER_BYTES + 1, true);
  assert.equal(code(() => parse(huge, null)), 'SNAPSHOT_INVALID');
});
