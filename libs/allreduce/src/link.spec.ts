/**
 * Link, one authenticated connection between ring neighbours, against real ws peers
 * and against a peer played by hand (raw-ws.fixture.ts): frames held until bind and
 * delivered whole; heartbeats, silence, pausing and a blocked event loop; close codes
 * both ways, for every ring error code; raw frames of odd lengths, fragmented, text,
 * unmasked, with a reserved bit, over the maximum payload.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { RING_ERROR_CODES, RingError } from './errors.js';
import { arenaOf } from './frame-arena.js';
import { type HeartbeatOptions, Link } from './link.js';
import { silentLogger } from './logger.js';
import { relayedConnection } from './fast-receive.js';
import { closeOf, closePayload, encodeFrame, Opcode, type RawPeer, rawClient, rawServer, until } from './raw-ws.fixture.js';

const HB: HeartbeatOptions = { intervalMs: 25, timeoutMs: 250 };
const MAX_PAYLOAD = 1024;
const PEER = 3;

const cleanup: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

/** A WebSocket server as the endpoint configures one; resolves with its port and the next server-side socket. */
async function server(maxPayload = MAX_PAYLOAD): Promise<{ port: number; accepted: () => Promise<WebSocket> }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload });
  await new Promise<void>((resolve) => wss.once('listening', resolve));
  const queue: WebSocket[] = [];
  wss.on('connection', (ws) => queue.push(ws));
  cleanup.push(() => {
    for (const ws of wss.clients) ws.terminate();
    return new Promise<void>((resolve) => wss.close(() => resolve()));
  });
  return {
    port: (wss.address() as AddressInfo).port,
    accepted: async () => {
      await until(() => queue.length > 0, 3000, 'a connection');
      return queue.shift()!;
    },
  };
}

/** Both ends of one WebSocket connection: the server's side and a ws client. */
async function wsPair(client: WebSocket.ClientOptions = {}, maxPayload = MAX_PAYLOAD): Promise<{ server: WebSocket; client: WebSocket }> {
  const s = await server(maxPayload);
  const ws = new WebSocket(`ws://127.0.0.1:${s.port}/`, { perMessageDeflate: false, ...client });
  ws.on('error', () => {});
  await new Promise<void>((resolve) => ws.once('open', () => resolve()));
  cleanup.push(() => ws.terminate());
  return { server: await s.accepted(), client: ws };
}

interface Bound {
  readonly link: Link;
  readonly frames: Buffer[];
  readonly down: RingError[];
}

function bound(ws: WebSocket, heartbeat = HB): Bound {
  const link = new Link(ws, { peer: PEER, heartbeat, logger: silentLogger });
  cleanup.push(() => link.terminate());
  const b: Bound = { link, frames: [], down: [] };
  link.bind((f) => b.frames.push(Buffer.from(f)), (err) => b.down.push(err));
  return b;
}

/** The close code and reason a ws client sees. */
const closeSeen = (ws: WebSocket): Promise<{ code: number; reason: string }> =>
  new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString('utf8') })));

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('Link: frames', () => {
  it('delivers binary frames of any length (0, 1, 3, 1023, 65537 bytes) whole, in order, as Buffers', async () => {
    const { server, client } = await wsPair();
    const a = bound(client);
    const b = bound(server);
    const lengths = [0, 1, 3, 1023, 65537];
    const sent = lengths.map((n, i) => Buffer.alloc(n, i + 1));
    // The server allows MAX_PAYLOAD bytes: the last frame goes the other way, to the client.
    for (const frame of sent.slice(0, 4)) a.link.send(frame);
    await until(() => b.frames.length === 4 || b.down.length > 0);
    b.link.send(sent[4]!);
    await until(() => a.frames.length === 1);
    assert.deepEqual(b.frames, sent.slice(0, 4));
    assert.ok(a.frames[0]!.equals(sent[4]!));
    assert.deepEqual([...a.down, ...b.down], []);
  });

  // Frames of 4 KiB and more go into the WebAssembly arena (frame-arena.ts), where all
  // slots share one ArrayBuffer; smaller ones into plain buffers.
  for (const { kind, maxPayload, size } of [
    { kind: 'plain buffers', maxPayload: MAX_PAYLOAD, size: 1000 },
    { kind: 'the arena', maxPayload: 64 * 1024, size: 5000 },
  ]) {
    it(`binary frames arrive in pooled buffers (${kind}): a released buffer carries a later frame, one held is never reused`, async () => {
      const { server, client } = await wsPair({}, maxPayload);
      const link = new Link(server, { peer: PEER, heartbeat: HB, logger: silentLogger });
      cleanup.push(() => link.terminate());
      const got: { frame: Buffer; release: () => void }[] = [];
      link.bind((frame, release) => got.push({ frame, release }), () => {});
      const next = async (n: number, fill: number): Promise<{ frame: Buffer; release: () => void }> => {
        const before = got.length;
        client.send(Buffer.alloc(n, fill));
        await until(() => got.length > before);
        return got.at(-1)!;
      };
      // A buffer is where its bytes are: its ArrayBuffer and its offset in it.
      const same = (a: Buffer, b: Buffer): boolean => a.buffer === b.buffer && a.byteOffset === b.byteOffset;
      const held = await next(size, 1);
      const second = await next(size, 2);
      assert.equal(arenaOf(held.frame.buffer) !== undefined, kind === 'the arena', `the frame is in ${kind}`);
      assert.ok(!same(second.frame, held.frame), 'a held buffer is not handed out again');
      second.release();
      second.release(); // twice is once
      const third = await next(size - 100, 3);
      assert.ok(same(third.frame, second.frame), 'the released buffer carries the next frame');
      const fourth = await next(size - 200, 4);
      assert.ok(!same(fourth.frame, third.frame), 'released once, it is handed out once');
      assert.ok(!same(fourth.frame, held.frame), 'the held one is still not handed out');
      assert.ok(held.frame.equals(Buffer.alloc(size, 1)), 'the held frame is intact');
      assert.ok(third.frame.equals(Buffer.alloc(size - 100, 3)));
      assert.equal((third.frame.byteOffset + 40) % 4, 0, 'a ring payload after its 40-byte header can be viewed as float32');
    });
  }

  it('holds frames and a down event that come before bind, then hands them over on bind, frames first', async () => {
    const { server, client } = await wsPair();
    const link = new Link(server, { peer: PEER, heartbeat: HB, logger: silentLogger });
    cleanup.push(() => link.terminate());
    const closed = new Promise((resolve) => server.once('close', resolve));
    for (const n of [5, 6, 7]) client.send(Buffer.alloc(n, n));
    client.close(4003, 'RING_ABORTED: a new generation');
    await closed;
    assert.equal(link.isOpen, false);
    const seen: string[] = [];
    link.bind(
      (f) => seen.push(`frame ${f.length}`),
      (err) => seen.push(`down ${err.code} ${String(err.details.closeCode)}`),
    );
    assert.deepEqual(seen, ['frame 5', 'frame 6', 'frame 7', 'down RING_ABORTED 4003']);
  });

  it('calls back once a frame is written; nothing stays buffered after', async () => {
    const { server, client } = await wsPair();
    const a = bound(client);
    bound(server);
    const written = await Promise.all([1, 2, 3].map((n) => new Promise<Error | undefined>((resolve) => a.link.send(Buffer.alloc(n), (err) => resolve(err ?? undefined)))));
    assert.deepEqual(written, [undefined, undefined, undefined]);
    assert.equal(a.link.bufferedAmount, 0);
  });

  it('pause() stops reading; resume() delivers what waited, in order', async () => {
    const { server, client } = await wsPair();
    const b = bound(server);
    b.link.pause();
    for (const n of [1, 2, 3]) client.send(Buffer.alloc(n));
    await sleep(100);
    assert.equal(b.frames.length, 0);
    b.link.resume();
    await until(() => b.frames.length === 3);
    assert.deepEqual(b.frames.map((f) => f.length), [1, 2, 3]);
  });
});

describe('Link: heartbeats and silence', () => {
  it('a peer that answers pings stays up long past the silence limit', async () => {
    const { server, client } = await wsPair();
    let pings = 0;
    client.on('ping', () => (pings += 1));
    const b = bound(server);
    await sleep(4 * HB.timeoutMs);
    assert.ok(b.link.isOpen);
    assert.deepEqual(b.down, []);
    assert.ok(pings >= 10, `${pings} pings`);
  });

  it('a peer that only sends (frames or its own pings) and never answers is not silent', async () => {
    const { server, client } = await wsPair({ autoPong: false });
    const b = bound(server);
    let beats = 0;
    const beat = setInterval(() => (beats++ % 2 === 0 ? client.send(Buffer.alloc(1)) : client.ping()), 40);
    cleanup.push(() => clearInterval(beat));
    await sleep(4 * HB.timeoutMs);
    assert.deepEqual(b.down, []);
  });

  it('a silent peer is lost after heartbeat.timeoutMs with RING_PEER_LOST, and learns it from the close code', async () => {
    const { server, client } = await wsPair({ autoPong: false });
    const seen = closeSeen(client);
    const t0 = Date.now();
    const b = bound(server);
    await until(() => b.down.length > 0, 10 * HB.timeoutMs);
    const elapsed = Date.now() - t0;
    assert.equal(b.down[0]!.code, 'RING_PEER_LOST');
    assert.equal(b.down[0]!.details.peer, PEER);
    assert.ok((b.down[0]!.details.silentMs as number) > HB.timeoutMs);
    assert.ok(elapsed >= HB.timeoutMs && elapsed < 6 * HB.timeoutMs, `${elapsed} ms`);
    const { code, reason } = await seen;
    assert.equal(code, 4001);
    assert.match(reason, /^RING_PEER_LOST: rank 3 silent for \d+ ms$/);
    assert.equal(b.link.isOpen, false);
  });

  it('silence is not judged while paused; once resumed, it is', async () => {
    const { server } = await wsPair({ autoPong: false });
    const link = new Link(server, { peer: PEER, heartbeat: HB, logger: silentLogger });
    cleanup.push(() => link.terminate());
    const down: RingError[] = [];
    link.pause();
    link.bind(() => {}, (err) => down.push(err));
    await sleep(3 * HB.timeoutMs);
    assert.equal(down.length, 0, 'not lost while paused');
    link.resume();
    await until(() => down.length > 0, 10 * HB.timeoutMs);
    assert.equal(down[0]!.code, 'RING_PEER_LOST');
  });

  it('after its own event loop was blocked past the limit, it gives the peer a fresh window instead of blaming it', async () => {
    const { server } = await wsPair();
    const b = bound(server);
    await sleep(2 * HB.intervalMs);
    // A synchronous training step: the peer's pongs wait unread in the socket meanwhile,
    // and the heartbeat timer runs before they are read.
    const end = Date.now() + 3 * HB.timeoutMs;
    while (Date.now() < end);
    await sleep(2 * HB.timeoutMs);
    assert.deepEqual(b.down, []);
    assert.ok(b.link.isOpen);
  });
});

describe('Link: close codes', () => {
  it('close(err) sends the error\'s close code and reason; the peer\'s link reports that code; the closer reports nothing', async () => {
    const { server, client } = await wsPair();
    const a = bound(client);
    const b = bound(server);
    a.link.close(new RingError('RING_ABORTED', 'the coordinator said stop'));
    a.link.close(new RingError('RING_TIMEOUT', 'a second close does nothing'));
    await until(() => b.down.length > 0);
    assert.equal(b.down[0]!.code, 'RING_ABORTED');
    assert.equal(b.down[0]!.details.closeCode, 4003);
    assert.match(b.down[0]!.message, /RING_ABORTED: the coordinator said stop/);
    await sleep(50);
    assert.deepEqual(a.down, []);
    assert.equal(a.link.isOpen, false);
  });

  it('close() without an error is a normal close (1000, RING_CLOSED)', async () => {
    const { server, client } = await wsPair();
    const seen = closeSeen(client);
    bound(server).link.close();
    assert.deepEqual(await seen, { code: 1000, reason: 'RING_CLOSED' });
  });

  it('every ring error code travels as its own close code and comes out as the same code', async () => {
    for (const code of RING_ERROR_CODES) {
      const { server, client } = await wsPair();
      const b = bound(server);
      const err = new RingError(code, 'test');
      client.close(err.closeCode, `${code}: test`);
      await until(() => b.down.length > 0);
      assert.equal(b.down[0]!.code, code, `${code} (close code ${err.closeCode})`);
      assert.equal(b.down[0]!.details.closeCode, err.closeCode);
    }
  });

  it('a close code of ours whose reason names another code is not trusted: RING_PEER_LOST', async () => {
    const { server, client } = await wsPair();
    const b = bound(server);
    client.close(4003, 'RING_TIMEOUT: mismatched');
    await until(() => b.down.length > 0);
    assert.equal(b.down[0]!.code, 'RING_PEER_LOST');
  });

  it('a protocol-error close (1002, 1003, 1007) is RING_BAD_FRAME; a normal close or a reset is RING_PEER_LOST', async () => {
    const cases: [number | 'reset', string][] = [[1002, 'RING_BAD_FRAME'], [1003, 'RING_BAD_FRAME'], [1007, 'RING_BAD_FRAME'], [1000, 'RING_PEER_LOST'], [1001, 'RING_PEER_LOST'], ['reset', 'RING_PEER_LOST']];
    for (const [how, expected] of cases) {
      const { server, client } = await wsPair();
      const b = bound(server);
      if (how === 'reset') client.terminate();
      else client.close(how);
      await until(() => b.down.length > 0);
      assert.equal(b.down[0]!.code, expected, String(how));
    }
  });

  it('reports down exactly once, however many ways the connection ends', async () => {
    const { server, client } = await wsPair();
    const b = bound(server);
    client.send('text is not a frame');
    await until(() => b.down.length > 0);
    client.terminate();
    await sleep(100);
    assert.deepEqual(b.down.map((e) => e.code), ['RING_BAD_FRAME']);
  });
});

describe('Link: raw frames from a hand-played peer', () => {
  async function rawPair(): Promise<{ raw: RawPeer; b: Bound }> {
    const s = await server();
    const raw = await rawClient(s.port);
    cleanup.push(() => void raw.socket.destroy());
    return { raw, b: bound(await s.accepted()) };
  }

  it('a masked binary frame of odd length, a message in three fragments, and a frame written a byte at a time arrive whole', async () => {
    const { raw, b } = await rawPair();
    raw.send(Opcode.binary, Buffer.from('thirteen byte'));
    raw.send(Opcode.binary, Buffer.from('abc'), { fin: false });
    raw.send(Opcode.continuation, Buffer.from('de'), { fin: false });
    raw.send(Opcode.continuation, Buffer.from('f'));
    const slow = encodeFrame(Opcode.binary, Buffer.alloc(301, 9));
    for (let i = 0; i < slow.length; i++) raw.socket.write(slow.subarray(i, i + 1));
    await until(() => b.frames.length === 3);
    assert.deepEqual(b.frames.map((f) => f.toString('latin1')), ['thirteen byte', 'abcdef', Buffer.alloc(301, 9).toString('latin1')]);
    assert.deepEqual(b.down, []);
  });

  it('a text frame: RING_BAD_FRAME here, close code 4005 with the code in the reason there', async () => {
    const { raw, b } = await rawPair();
    raw.send(Opcode.text, Buffer.from('hello'));
    await until(() => b.down.length > 0);
    assert.equal(b.down[0]!.code, 'RING_BAD_FRAME');
    const [close] = await raw.reader.until(1);
    assert.equal(closeOf(close!).code, 4005);
    assert.match(closeOf(close!).reason, /^RING_BAD_FRAME: text frame from rank 3$/);
    assert.equal(close!.mask, null, 'a server frame is unmasked');
  });

  for (const [what, bad] of [
    ['an unmasked client frame', { mask: null }],
    ['a reserved bit with no extension', { rsv1: true }],
  ] as const) {
    it(`${what}: RING_BAD_FRAME (a WebSocket protocol error), close code 1002`, async () => {
      const { raw, b } = await rawPair();
      raw.send(Opcode.binary, Buffer.alloc(8), bad);
      await until(() => b.down.length > 0);
      assert.equal(b.down[0]!.code, 'RING_BAD_FRAME');
      assert.match(b.down[0]!.message, /WebSocket protocol error from rank 3/);
      const [close] = await raw.reader.until(1);
      assert.equal(closeOf(close!).code, 1002);
    });
  }

  it('a frame over the maximum payload: RING_FRAME_TOO_LARGE, close code 1009', async () => {
    const { raw, b } = await rawPair();
    raw.send(Opcode.binary, Buffer.alloc(MAX_PAYLOAD + 1));
    await until(() => b.down.length > 0);
    assert.equal(b.down[0]!.code, 'RING_FRAME_TOO_LARGE');
    const [close] = await raw.reader.until(1);
    assert.equal(closeOf(close!).code, 1009);
  });

  it('a close frame from the peer with a ring code: that code', async () => {
    const { raw, b } = await rawPair();
    raw.send(Opcode.close, closePayload(4007, 'RING_OP_MISMATCH: lengths differ'));
    await until(() => b.down.length > 0);
    assert.equal(b.down[0]!.code, 'RING_OP_MISMATCH');
  });
});

describe('Link: payloads placed where the ring says (fast-receive.ts)', () => {
  const SLOW: HeartbeatOptions = { intervalMs: 1000, timeoutMs: 10_000 };

  /** A Link on a ws client of a hand-played server, which sends it raw, unmasked frames. */
  async function clientOfRaw(relayed: boolean): Promise<{ link: Link; peer: RawPeer }> {
    const server = await rawServer();
    cleanup.push(() => server.close());
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/`, {
      perMessageDeflate: false,
      maxPayload: 64 * 1024,
      ...(relayed ? { createConnection: relayedConnection as unknown as WebSocket.ClientOptions['createConnection'] } : {}),
    });
    ws.on('error', () => {});
    const upgraded = server.nextPeer();
    await new Promise<void>((resolve) => ws.once('open', () => resolve()));
    const peer = await upgraded;
    const link = new Link(ws, { peer: PEER, heartbeat: SLOW, logger: silentLogger });
    cleanup.push(() => link.terminate());
    return { link, peer };
  }

  /** Writes `bytes` in pieces of these sizes (the rest at the end), each in a read of its own. */
  async function inPieces(peer: RawPeer, bytes: Buffer, sizes: readonly number[]): Promise<void> {
    let at = 0;
    for (const n of [...sizes, bytes.length]) {
      if (at >= bytes.length) break;
      peer.socket.write(bytes.subarray(at, Math.min(bytes.length, at + n)));
      at += n;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  const payload = (n: number, seed: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff));

  for (const relayed of [true, false]) {
    it(`${relayed ? 'relayed reads' : 'data events'}: a payload the placer takes lands there and only the header is delivered; others arrive whole`, async () => {
      const { link, peer } = await clientOfRaw(relayed);
      const got: { frame: Buffer; placed: number }[] = [];
      const asked: { head: Buffer; length: number }[] = [];
      const target = Buffer.alloc(1000);
      link.bind(
        (frame, release, placed) => {
          got.push({ frame: Buffer.from(frame), placed });
          release();
        },
        () => {},
        (head, length) => {
          asked.push({ head: Buffer.from(head), length });
          return length === 1040 ? target : length === 540 ? Buffer.alloc(10) : null; // a target of the wrong size is not used
        },
      );
      const [placed, wrongSize, declined, short] = [payload(1040, 1), payload(540, 2), payload(300, 3), payload(30, 4)];
      const wire = Buffer.concat([placed, wrongSize, declined, short].map((p) => encodeFrame(Opcode.binary, p, { mask: null })));
      // Pieces that cut the WebSocket header, the ring header and the payloads anywhere.
      await inPieces(peer, wire, [1, 3, 20, 17, 1, 600, 2, 3, 39, 500, 41, 7]);
      await until(() => got.length === 4);
      assert.deepEqual(asked.map((a) => a.length), [1040, 540, 300], 'asked once per frame longer than a header, not for the short one');
      asked.forEach((a, i) => assert.ok(a.head.equals([placed, wrongSize, declined][i]!.subarray(0, 40)), `asked with frame ${i}'s first 40 bytes`));
      assert.ok(target.equals(placed.subarray(40)), 'the placed payload is where the placer said');
      assert.deepEqual(got.map((g) => g.placed), [1040, 0, 0, 0]);
      assert.ok(got[0]!.frame.equals(placed.subarray(0, 40)), 'a placed frame is delivered as its header');
      assert.ok(got[1]!.frame.equals(wrongSize) && got[2]!.frame.equals(declined) && got[3]!.frame.equals(short), 'the others whole');
    });
  }

  for (const relayed of [true, false]) {
    it(`${relayed ? 'relayed reads' : 'data events'}: a placement cancelled partway: the link stops reading, nothing more lands in the target, and the frame is not delivered`, async () => {
      const { link, peer } = await clientOfRaw(relayed);
      const got: Buffer[] = [];
      const target = Buffer.alloc(1000);
      link.bind((frame) => got.push(Buffer.from(frame)), () => {}, () => target);
      const bytes = payload(1040, 5);
      const first = encodeFrame(Opcode.binary, bytes, { mask: null });
      peer.socket.write(first.subarray(0, 4 + 40 + 100)); // WebSocket header, ring header and 100 payload bytes
      await until(() => target[99] === bytes[139]);
      link.cancelPlacement();
      // The rest of the frame, and another; read or not, none of it may reach the target.
      peer.socket.write(Buffer.concat([first.subarray(144), encodeFrame(Opcode.binary, payload(700, 6), { mask: null })]));
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.ok(target.subarray(0, 100).equals(bytes.subarray(40, 140)), 'what came before the cancel');
      assert.ok(target.subarray(100).equals(Buffer.alloc(900)), 'nothing after it');
      assert.deepEqual(got, [], 'the cancelled frame is not delivered, nor anything after it');
    });
  }
});
