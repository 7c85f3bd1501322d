import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { ProtocolError } from './codec.js';
import { type AckMessage, type ChunkMessage, TRANSFER_CHUNK_BYTES } from './messages.js';
import { IncomingTransfer, OutgoingTransfer, TRANSFER_WINDOW_BYTES, TransferError } from './transfer.js';

function bytes(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed * 7) & 0xff;
  return out;
}

/** A sender and a receiver joined by queues; the receiver's sink is slow on purpose, so the window is what bounds the bytes in flight. */
function pair(total: number, sinkDelayMs = 0) {
  const received: Uint8Array[] = [];
  let inFlightMax = 0;
  let sent = 0;
  let acked = 0;
  let incoming!: IncomingTransfer;
  const out = new OutgoingTransfer(7, (m) => {
    sent = m.offset + m.data.byteLength;
    inFlightMax = Math.max(inFlightMax, sent - acked);
    // Structured clone stands for the wire: the receiver never sees the sender's memory.
    const copy = { ...m, data: Uint8Array.from(m.data) };
    setImmediate(() => incoming.take(copy));
    return true;
  });
  incoming = new IncomingTransfer(
    { id: 7, bytes: total },
    async (d) => {
      if (sinkDelayMs) await new Promise((r) => setTimeout(r, sinkDelayMs));
      received.push(d);
    },
    (a: AckMessage) => {
      acked = a.offset;
      setImmediate(() => out.ack(a));
    },
  );
  return { out, incoming, received, inFlight: () => inFlightMax };
}

test('a transfer of many chunks arrives whole, in order, never more than the window unacknowledged', async () => {
  const data = bytes(5 * TRANSFER_WINDOW_BYTES + 12345);
  const p = pair(data.byteLength, 1);
  // Sent from three parts of odd sizes, as a state's header and arrays are.
  const parts = [data.subarray(0, 1001), data.subarray(1001, 3 * TRANSFER_CHUNK_BYTES + 5), data.subarray(3 * TRANSFER_CHUNK_BYTES + 5)];
  await Promise.all([p.out.run({ bytes: data.byteLength, parts }), p.incoming.done]);
  assert.deepEqual(Buffer.concat(p.received), Buffer.from(data));
  assert.ok(p.inFlight() <= TRANSFER_WINDOW_BYTES, `${p.inFlight()} bytes in flight`);
  // Packed into full chunks whatever the parts: one per 4 MiB.
  assert.equal(p.received.length, Math.ceil(data.byteLength / TRANSFER_CHUNK_BYTES));
  assert.ok(p.received.every((c) => c.byteLength <= TRANSFER_CHUNK_BYTES));
});

test('an empty transfer is one empty chunk with the digest of nothing', async () => {
  const p = pair(0);
  await Promise.all([p.out.run({ bytes: 0, parts: [] }), p.incoming.done]);
  assert.equal(Buffer.concat(p.received).byteLength, 0);
});

test('each chunk is checked: out of order, past the end, a wrong digest, more than a window unacknowledged are PROTOCOL_BAD_MESSAGE and fail the transfer', async () => {
  const data = bytes(100);
  const sha256 = createHash('sha256').update(data).digest('hex');
  const make = () => new IncomingTransfer({ id: 1, bytes: 100 }, () => {}, () => {});
  const chunk = (offset: number, d: Uint8Array, sha?: string): ChunkMessage => ({ type: 'chunk', id: 1, offset, data: d, ...(sha ? { sha256: sha } : {}) });
  const cases: [string, (t: IncomingTransfer) => void, RegExp][] = [
    ['out of order', (t) => t.take(chunk(10, data.subarray(10, 20))), /a chunk at byte 10; the next is 0/],
    ['past the end', (t) => t.take(chunk(0, bytes(101))), /past its 100 bytes/],
    ['wrong digest', (t) => t.take(chunk(0, data, 'a'.repeat(64))), /do not match the sender's SHA-256/],
    ['no digest on the last', (t) => t.take(chunk(0, data)), /the last chunk has no SHA-256/],
    ['a digest too early', (t) => t.take(chunk(0, data.subarray(0, 50), sha256)), /a SHA-256 before the last chunk/],
    [
      'after the end',
      (t) => {
        t.take(chunk(0, data, sha256));
        t.take(chunk(100, new Uint8Array(0)));
      },
      /after the transfer ended/,
    ],
  ];
  for (const [name, run, message] of cases) {
    const t = make();
    assert.throws(() => run(t), (e: unknown) => e instanceof ProtocolError && e.code === 'PROTOCOL_BAD_MESSAGE' && message.test(e.message), name);
    if (name !== 'after the end') await assert.rejects(t.done, ProtocolError, name);
  }
  // A sender that ignores the window: the receiver's sink never finishes, so nothing is acked.
  const big = new IncomingTransfer({ id: 2, bytes: 10 * TRANSFER_CHUNK_BYTES }, () => new Promise(() => {}), () => {});
  const piece = bytes(TRANSFER_CHUNK_BYTES);
  for (let k = 0; k < TRANSFER_WINDOW_BYTES / TRANSFER_CHUNK_BYTES; k++) big.take({ type: 'chunk', id: 2, offset: k * TRANSFER_CHUNK_BYTES, data: piece });
  assert.throws(() => big.take({ type: 'chunk', id: 2, offset: TRANSFER_WINDOW_BYTES, data: piece }), /more than \d+ bytes unacknowledged/);
});

test('a sender without acks gives up (TRANSFER_STALLED); one whose channel closed stops (TRANSFER_ABORTED)', async () => {
  const stalled = new OutgoingTransfer(1, () => true, 50);
  const data = bytes(TRANSFER_WINDOW_BYTES + 1);
  await assert.rejects(stalled.run({ bytes: data.byteLength, parts: [data] }), (e: unknown) => e instanceof TransferError && e.code === 'TRANSFER_STALLED');
  const closed = new OutgoingTransfer(2, () => false);
  await assert.rejects(closed.run({ bytes: 10, parts: [bytes(10)] }), (e: unknown) => e instanceof TransferError && e.code === 'TRANSFER_ABORTED');
  const aborted = new OutgoingTransfer(3, () => true);
  const running = aborted.run({ bytes: 10, parts: [bytes(10)] });
  aborted.abort(new TransferError('TRANSFER_ABORTED', 'the connection closed'));
  await assert.rejects(running, /the connection closed/);
});

test('a sink that fails fails the transfer, and nothing more is acked', async () => {
  const acks: number[] = [];
  const t = new IncomingTransfer({ id: 1, bytes: 20 }, (d) => {
    if (d[0] === 99) throw new Error('disk full');
  }, (a) => acks.push(a.offset));
  t.take({ type: 'chunk', id: 1, offset: 0, data: new Uint8Array(10) });
  const second = new Uint8Array(10).fill(99);
  const all = Buffer.concat([new Uint8Array(10), second]);
  t.take({ type: 'chunk', id: 1, offset: 10, data: second, sha256: createHash('sha256').update(all).digest('hex') });
  await assert.rejects(t.done, /disk full/);
  assert.deepEqual(acks, [10]);
});
