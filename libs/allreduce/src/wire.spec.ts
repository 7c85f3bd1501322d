/**
 * The ring against a hand-driven peer: the test plays rank 1 of a ring of 2 with raw
 * links and crafted frames, to check what rank 0 does with stale, malformed and
 * oversized input.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { dial } from './connect.js';
import { listen, type RingEndpoint } from './endpoint.js';
import { RingError } from './errors.js';
import { FRAME_HEADER_BYTES as H, OpKind, Phase, writeHeader } from './frame.js';
import { tokenBytes } from './handshake.js';
import type { Link } from './link.js';
import { silentLogger } from './logger.js';
import { isCode, TOKEN } from './ring.fixture.js';
import { createRing, type Ring } from './ring.js';

const SEG = 1024;
const heartbeat = { intervalMs: 200, timeoutMs: 5000 };

interface Peer {
  ring: Ring;
  out: Link;
  inb: Link;
  received: Buffer[];
  down: RingError[];
}

function frame(floats: readonly number[], h: Partial<Parameters<typeof writeHeader>[1]>): Buffer {
  const buf = Buffer.alloc(H + floats.length * 4);
  writeHeader(buf, { kind: OpKind.allReduce, generation: 1, op: 1, phase: Phase.reduceScatter, ringStep: 0, step: 0, chunk: 1, offset: 4, total: 8, root: 0, ...h });
  floats.forEach((v, i) => buf.writeFloatLE(v, H + 4 * i));
  return buf;
}

const floatsOf = (buf: Buffer): number[] => Array.from({ length: (buf.length - H) / 4 }, (_, i) => buf.readFloatLE(H + 4 * i));

describe('ring against a crafted peer', () => {
  let e0: RingEndpoint;
  let e1: RingEndpoint;
  let p: Peer;

  before(async () => {
    e0 = await listen({ maxSegmentBytes: 4 * SEG });
    e1 = await listen({ maxSegmentBytes: 4 * SEG });
  });
  after(async () => {
    await e0.close();
    await e1.close();
  });

  let generation = 0;
  beforeEach(async () => {
    generation++;
    const peers = [
      { rank: 0, host: e0.host, port: e0.port },
      { rank: 1, host: e1.host, port: e1.port },
    ];
    const token = tokenBytes(TOKEN);
    // Rank 1 receives on the link it dials to rank 0 and sends on the one rank 0 dialed to it.
    const [ring, out, inb] = await Promise.all([
      createRing({ endpoint: e0, segmentBytes: SEG, membership: { generation, rank: 0, world: 2, peers, token: TOKEN }, opTimeoutMs: 5000 }),
      e1.expectSuccessor({ generation, rank: 1, world: 2, segmentBytes: SEG, token, heartbeat, logger: silentLogger }),
      dial({ host: e0.host, port: e0.port, generation, from: 1, to: 0, world: 2, segmentBytes: SEG, token, deadline: Date.now() + 5000, heartbeat, logger: silentLogger }),
    ]);
    p = { ring, out, inb, received: [], down: [] };
    inb.bind((f) => p.received.push(Buffer.from(f)), (err) => p.down.push(err));
    out.bind(() => {}, (err) => p.down.push(err));
  });
  afterEach(async () => {
    await p.ring.close();
    p.out.close();
    p.inb.close();
  });

  const until = async (cond: () => boolean): Promise<void> => {
    const t = Date.now();
    while (!cond()) {
      if (Date.now() - t > 3000) throw new Error('condition not met');
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  };

  it('drops frames of an older generation or operation and sums only the current ones', async () => {
    const x = new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]);
    const y = [10, 20, 30, 40, 50, 60, 70, 80];
    const g = generation;
    const op = p.ring.allReduce(x, { step: 9 });
    await until(() => p.received.length === 1);
    p.out.send(frame([1e6, 1e6, 1e6, 1e6], { generation: g - 1, step: 9 }));
    p.out.send(frame([1e6, 1e6, 1e6, 1e6], { generation: g, op: 0, step: 9 }));
    p.out.send(frame(y.slice(4), { generation: g, step: 9 }));
    const rs = p.received[0]!;
    const chunk0 = floatsOf(rs).map((v, i) => v + y[i]!);
    p.out.send(frame(chunk0, { generation: g, step: 9, phase: Phase.allGather, chunk: 0, offset: 0 }));
    await op;
    assert.deepEqual(Array.from(x), [11, 22, 33, 44, 55, 66, 77, 88]);
    assert.equal(p.ring.stats.framesDropped, 2);
    await until(() => p.received.length === 2);
    assert.deepEqual(floatsOf(p.received[1]!), [55, 66, 77, 88]);
  });

  it('as broadcast root, finishes only when the acknowledgement comes back round the ring', async () => {
    const src = Buffer.from('state for a joining worker');
    let done = false;
    const op = p.ring.broadcast(src, 0, { step: 3 }).then(() => (done = true));
    await until(() => p.received.length === 1);
    assert.ok(Buffer.from(p.received[0]!.subarray(H)).equals(src));
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(done, false, 'the root must wait for the acknowledgement');
    const ack = Buffer.alloc(H);
    writeHeader(ack, { kind: OpKind.broadcast, generation, op: 1, phase: Phase.broadcastAck, ringStep: 0, step: 3, chunk: 0, offset: 0, total: src.length, root: 0 });
    p.out.send(ack);
    await op;
  });

  it('as the root\'s predecessor, acknowledges a broadcast once it has every segment', async () => {
    const src = Buffer.alloc(SEG + 10, 7);
    const op = p.ring.broadcast(undefined, 1, { step: 4 });
    for (const offset of [0, SEG]) {
      const data = Buffer.alloc(H + Math.min(SEG, src.length - offset));
      writeHeader(data, { kind: OpKind.broadcast, generation, op: 1, phase: Phase.broadcast, ringStep: 0, step: 4, chunk: 0, offset, total: src.length, root: 1 });
      src.copy(data, H, offset);
      p.out.send(data);
    }
    assert.ok(Buffer.from(await op).equals(src));
    await until(() => p.received.length === 1);
    const ack = p.received[0]!;
    assert.equal(ack.length, H);
    assert.equal(ack[12], Phase.broadcastAck);
    assert.equal(ack.readUInt32LE(32), src.length);
  });

  it('closes on a broadcast acknowledgement that comes before the data with RING_BAD_FRAME', async () => {
    const op = p.ring.broadcast(undefined, 1);
    const rejected = assert.rejects(op, isCode('RING_BAD_FRAME'));
    const ack = Buffer.alloc(H);
    writeHeader(ack, { kind: OpKind.broadcast, generation, op: 1, phase: Phase.broadcastAck, ringStep: 0, step: 0, chunk: 0, offset: 0, total: 5, root: 1 });
    p.out.send(ack);
    await rejected;
  });

  const failsWith = async (bad: Buffer | string, code: 'RING_BAD_FRAME' | 'RING_FRAME_TOO_LARGE' | 'RING_OP_MISMATCH'): Promise<void> => {
    const op = p.ring.allReduce(new Float32Array(8));
    const rejected = assert.rejects(op, isCode(code));
    (p.out as unknown as { ws: { send(d: Buffer | string): void } }).ws.send(bad);
    await rejected;
    await until(() => p.down.length > 0);
    assert.equal(p.down[0]!.code, code, 'the peer learns the code from the close');
  };

  it('closes on a malformed frame with RING_BAD_FRAME', async () => {
    const bad = frame([1, 2, 3, 4], { generation });
    bad[0] = 0;
    await failsWith(bad, 'RING_BAD_FRAME');
  });

  it('closes on a text frame with RING_BAD_FRAME', async () => {
    await failsWith('hello', 'RING_BAD_FRAME');
  });

  it('closes on a frame at the wrong offset with RING_BAD_FRAME', async () => {
    await failsWith(frame([1, 2, 3], { generation, offset: 5 }), 'RING_BAD_FRAME');
  });

  it('closes on a frame two operations ahead with RING_BAD_FRAME', async () => {
    await failsWith(frame([1, 2, 3, 4], { generation, op: 3 }), 'RING_BAD_FRAME');
  });

  it('closes on a frame of another collective with RING_OP_MISMATCH', async () => {
    await failsWith(frame([1, 2, 3, 4], { generation, total: 9 }), 'RING_OP_MISMATCH');
  });

  it('closes on a frame over the segment size with RING_FRAME_TOO_LARGE', async () => {
    await failsWith(frame(new Array<number>(SEG / 4 + 1).fill(0), { generation, total: SEG }), 'RING_FRAME_TOO_LARGE');
  });

  it('closes on a frame over the WebSocket maximum payload with RING_FRAME_TOO_LARGE', async () => {
    await failsWith(Buffer.alloc(H + 4 * SEG + 4), 'RING_FRAME_TOO_LARGE');
  });
});
