import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { RingFrameError } from './errors.js';
import { decodeFrame, FRAME_HEADER_BYTES, OpKind, Phase, writeHeader, writeStage } from './frame.js';

const base = { kind: OpKind.allReduce, generation: 7, op: 3, phase: Phase.reduceScatter, ringStep: 1, step: 12345, chunk: 2, offset: 8, total: 100, root: 0 } as const;

function frame(count: number, h: Partial<Parameters<typeof writeHeader>[1]> = {}): Buffer {
  const buf = Buffer.alloc(FRAME_HEADER_BYTES + count * 4);
  writeHeader(buf, { ...base, ...h });
  return buf;
}

function assertFrameError(fn: () => unknown, code: 'RING_BAD_FRAME' | 'RING_FRAME_TOO_LARGE'): void {
  assert.throws(fn, (err: unknown) => err instanceof RingFrameError && err.code === code);
}

describe('frame', () => {
  it('round-trips every header field', () => {
    const h = decodeFrame(frame(4), 1024);
    assert.deepEqual(h, { ...base, count: 4 });
    const b = Buffer.alloc(FRAME_HEADER_BYTES + 5);
    writeHeader(b, { ...base, kind: OpKind.broadcast, phase: Phase.broadcast, ringStep: 0, chunk: 0, root: 3, offset: 0, total: 5 });
    assert.deepEqual(decodeFrame(b, 1024), { ...base, kind: OpKind.broadcast, phase: Phase.broadcast, ringStep: 0, chunk: 0, root: 3, offset: 0, total: 5, count: 5 });
  });

  it('a float64 all-reduce frame counts 8-byte elements; a payload that is not a whole number of them is refused', () => {
    const b = Buffer.alloc(FRAME_HEADER_BYTES + 24);
    writeHeader(b, { ...base, kind: OpKind.allReduce64 });
    assert.deepEqual(decodeFrame(b, 1024), { ...base, kind: OpKind.allReduce64, count: 3 });
    assertFrameError(() => decodeFrame(b.subarray(0, FRAME_HEADER_BYTES + 20), 1024), 'RING_BAD_FRAME');
    assertFrameError(() => decodeFrame(Buffer.concat([b, Buffer.alloc(8)]), 16), 'RING_FRAME_TOO_LARGE');
  });

  it('decodes an empty broadcast acknowledgement and refuses one with data or an offset', () => {
    const ack = { ...base, kind: OpKind.broadcast, phase: Phase.broadcastAck, ringStep: 0, chunk: 0, root: 1, offset: 0, total: 5 } as const;
    const b = Buffer.alloc(FRAME_HEADER_BYTES);
    writeHeader(b, ack);
    assert.deepEqual(decodeFrame(b, 1024), { ...ack, count: 0 });
    const withData = Buffer.alloc(FRAME_HEADER_BYTES + 1);
    writeHeader(withData, ack);
    assertFrameError(() => decodeFrame(withData, 1024), 'RING_BAD_FRAME');
    writeHeader(b, { ...ack, offset: 1 });
    assertFrameError(() => decodeFrame(b, 1024), 'RING_BAD_FRAME');
    writeHeader(b, { ...ack, kind: OpKind.allReduce, root: 0 });
    assertFrameError(() => decodeFrame(b, 1024), 'RING_BAD_FRAME');
  });

  it('rewrites only the stage when forwarding', () => {
    const buf = frame(2);
    writeStage(buf, Phase.allGather, 0);
    assert.deepEqual(decodeFrame(buf, 1024), { ...base, phase: Phase.allGather, ringStep: 0, count: 2 });
  });

  it('rejects each bad field with RING_BAD_FRAME', () => {
    const cases: Array<(b: Buffer) => void> = [
      (b) => (b[0] = 0),
      (b) => (b[2] = 9),
      (b) => (b[3] = 0),
      (b) => (b[3] = OpKind.broadcast),
      (b) => (b[12] = 7),
      (b) => (b[13] = 1),
      (b) => b.writeDoubleLE(-1, 16),
      (b) => b.writeDoubleLE(1.5, 16),
      (b) => b.writeDoubleLE(Number.NaN, 16),
      (b) => b.writeUInt32LE(98, 28),
      (b) => b.writeUInt32LE(1, 36),
    ];
    for (const mutate of cases) {
      const b = frame(4);
      mutate(b);
      assertFrameError(() => decodeFrame(b, 1024), 'RING_BAD_FRAME');
    }
    assertFrameError(() => decodeFrame(Buffer.alloc(FRAME_HEADER_BYTES - 1), 1024), 'RING_BAD_FRAME');
    assertFrameError(() => decodeFrame(Buffer.concat([frame(1), Buffer.alloc(1)]), 1024), 'RING_BAD_FRAME');
    assertFrameError(() => decodeFrame(frame(0, { kind: OpKind.barrier, total: 1, offset: 0 }), 1024), 'RING_BAD_FRAME');
  });

  it('rejects a payload over the maximum with RING_FRAME_TOO_LARGE', () => {
    assertFrameError(() => decodeFrame(frame(257), 1024), 'RING_FRAME_TOO_LARGE');
  });

  it('never throws anything but a coded frame error on random or mutated input', () => {
    const valid = frame(16, { total: 1000 });
    for (let i = 0; i < 20_000; i++) {
      let input: Buffer;
      if (i % 2 === 0) {
        input = randomBytes(Math.floor(Math.random() * 120));
      } else {
        input = Buffer.from(valid);
        for (let k = 0; k < 1 + (i % 4); k++) input[Math.floor(Math.random() * input.length)] = Math.floor(Math.random() * 256);
        if (i % 7 === 0) input = input.subarray(0, Math.floor(Math.random() * input.length));
      }
      try {
        const h = decodeFrame(input, 1024);
        assert.ok(h.offset + h.count <= h.total);
        assert.ok(Number.isSafeInteger(h.step) && h.step >= 0);
      } catch (err) {
        assert.ok(err instanceof RingFrameError, String(err));
      }
    }
  });
});
