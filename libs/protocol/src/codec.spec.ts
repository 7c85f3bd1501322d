import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bytesOf, decodeCoordinatorMessage, decodeWorkerMessage, encodeMessage, float32s, ProtocolError, uint32s } from './codec.js';

test('a rows message round-trips with its numbers intact and aligned', () => {
  const features = new Float32Array([1.5, -2, 3.25, 0]);
  const indices = new Uint32Array([7, 9]);
  const bytes = encodeMessage({ type: 'rows', id: 3, split: 'train', indices: bytesOf(indices), features: bytesOf(features), labels: bytesOf(new Int32Array([1, 2])) });
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
