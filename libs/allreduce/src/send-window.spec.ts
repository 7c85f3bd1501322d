/**
 * SendWindow without sockets: the test plays the socket, holding each frame's `done`
 * until it says the kernel took the bytes. Window accounting (slots allocated on first
 * use, at most maxSlots in flight, reused, never more than the source has), backpressure
 * (a frame waits for a slot; each returned slot sends the next), order, and what a
 * failed write and a new source do to the frames still waiting.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SendWindow, type SlotSource } from './send-window.js';

const HEAD = 4;

/**
 * A source of `count` frames out of one caller's buffer: frame i is a header of value i
 * and the `i` bytes at `payloads[i]` (of value i), so order, length and origin are visible.
 */
function frames(count: number): SlotSource & { filled: number; hasNextCalls: number; payloads: Buffer[] } {
  const caller = Buffer.alloc((count * (count - 1)) / 2);
  const payloads = Array.from({ length: count }, (_, i) => caller.subarray((i * (i - 1)) / 2, (i * (i + 1)) / 2).fill(i & 0xff));
  const s = {
    filled: 0,
    hasNextCalls: 0,
    payloads,
    hasNext: () => {
      s.hasNextCalls += 1;
      return s.filled < count;
    },
    fill: (head: Buffer) => {
      const i = s.filled++;
      head.fill(i & 0xff);
      return payloads[i]!;
    },
  };
  return s;
}

/** A socket that keeps every frame's `done` until the test completes it; `frame` is what it would write. */
function socket() {
  const sent: { frame: Buffer; payload: Buffer; done: (err?: Error | null) => void }[] = [];
  return {
    sent,
    transmit: (head: Buffer, payload: Buffer, done: (err?: Error | null) => void) => void sent.push({ frame: Buffer.concat([head, payload]), payload, done }),
    /** Completes the oldest frame not yet completed. */
    complete(err?: Error) {
      const next = sent.find((s) => !(s as { completed?: boolean }).completed) as ((typeof sent)[number] & { completed?: boolean }) | undefined;
      assert.ok(next, 'a frame in flight');
      next.completed = true;
      next.done(err ?? null);
    },
  };
}

describe('SendWindow', () => {
  it('allocates nothing until a frame needs a slot, and no more slots than frames', () => {
    const sock = socket();
    const w = new SendWindow(HEAD, 8, sock.transmit);
    assert.equal(w.inFlight, 0);
    w.drain(frames(3));
    assert.equal(sock.sent.length, 3);
    assert.equal(w.inFlight, 3);
  });

  it('keeps at most maxSlots frames in flight; each slot that comes back sends the next frame (backpressure)', () => {
    const sock = socket();
    const w = new SendWindow(HEAD, 3, sock.transmit);
    w.drain(frames(10));
    assert.equal(sock.sent.length, 3, 'three slots, three frames handed to the socket');
    assert.equal(w.inFlight, 3);
    for (let k = 1; k <= 7; k++) {
      sock.complete();
      assert.equal(sock.sent.length, 3 + k, 'one frame per returned slot');
      assert.equal(w.inFlight, 3);
    }
    for (let k = 1; k <= 3; k++) sock.complete();
    assert.equal(sock.sent.length, 10);
    assert.equal(w.inFlight, 0);
  });

  it('sends every frame once, in order: its header and the payload fill() returned, that very memory (no copy)', () => {
    const sock = socket();
    const w = new SendWindow(HEAD, 2, sock.transmit);
    const source = frames(9);
    w.drain(source);
    while (sock.sent.length < 9 || w.inFlight > 0) sock.complete();
    assert.deepEqual(sock.sent.map((s) => s.frame.length), [4, 5, 6, 7, 8, 9, 10, 11, 12]);
    sock.sent.forEach((s, i) => assert.ok(s.frame.every((b) => b === i), `frame ${i} holds its own bytes`));
    sock.sent.forEach((s, i) => assert.equal(s.payload, source.payloads[i], `frame ${i}'s payload is the caller's memory`));
  });

  it('reuses its slots: frame k + maxSlots goes out with the header memory of frame k', () => {
    const sock = socket();
    const slots = 3;
    const views: Buffer[] = [];
    const w = new SendWindow(HEAD, slots, (head, payload, done) => {
      views.push(head);
      sock.transmit(head, payload, done);
    });
    w.drain(frames(7));
    while (views.length < 7 || w.inFlight > 0) sock.complete();
    // Small slots may share one pooled ArrayBuffer: a slot is its memory and its offset.
    const ids = new Map<ArrayBufferLike, number>();
    const slotOf = (v: Buffer): string => `${ids.get(v.buffer) ?? ids.set(v.buffer, ids.size).size - 1}@${v.byteOffset}`;
    for (let k = slots; k < 7; k++) assert.equal(slotOf(views[k]!), slotOf(views[k - slots]!), `frame ${k}`);
    assert.equal(new Set(views.map(slotOf)).size, slots);
  });

  it('a header is a whole slot of slotBytes', () => {
    const lengths: number[] = [];
    const w = new SendWindow(16, 1, (head, payload, done) => {
      lengths.push(head.length, payload.length);
      queueMicrotask(() => done(null));
    });
    w.drain({
      hasNext: () => lengths.length < 1,
      fill: (head) => {
        assert.equal(head.length, 16);
        return Buffer.alloc(3);
      },
    });
    assert.deepEqual(lengths, [16, 3]);
  });

  it('a failed write returns its slot but sends nothing more; only the next drain() goes on', () => {
    const sock = socket();
    const w = new SendWindow(HEAD, 1, sock.transmit);
    const source = frames(3);
    w.drain(source);
    sock.complete(new Error('link closed'));
    assert.equal(sock.sent.length, 1, 'no frame after a failed write');
    assert.equal(w.inFlight, 0, 'the slot came back');
    w.drain(source);
    assert.equal(sock.sent.length, 2);
  });

  it('a new source replaces one still waiting: the old operation\'s rest is never sent', () => {
    const sock = socket();
    const w = new SendWindow(HEAD, 1, sock.transmit);
    const old = frames(5);
    w.drain(old);
    assert.equal(old.filled, 1);
    const next = frames(2);
    w.drain(next);
    assert.equal(next.filled, 0, 'no slot is free yet');
    sock.complete();
    sock.complete();
    assert.equal(old.filled, 1, 'nothing more of the old source');
    assert.equal(next.filled, 2);
  });

  it('drain(undefined) forgets the source; a drained source is forgotten once it runs dry', () => {
    const sock = socket();
    const w = new SendWindow(HEAD, 1, sock.transmit);
    const waiting = frames(3);
    w.drain(waiting);
    w.drain(undefined);
    sock.complete();
    assert.equal(waiting.filled, 1);
    const dry = frames(1);
    w.drain(dry);
    const calls = dry.hasNextCalls;
    sock.complete();
    assert.equal(dry.hasNextCalls, calls, 'not asked again after it ran dry');
  });

  it('a socket that completes a frame synchronously still gets every frame once, in order', () => {
    const lengths: number[] = [];
    const w = new SendWindow(HEAD, 2, (head, payload, done) => {
      lengths.push(payload.length);
      done(null);
    });
    w.drain(frames(40));
    assert.deepEqual(lengths, Array.from({ length: 40 }, (_, i) => i));
    assert.equal(w.inFlight, 0);
  });
});
