/**
 * dial(), the connecting side of a ring link, against a real endpoint and against an
 * endpoint played by hand (raw-ws.fixture.ts): the handshake as it goes on the wire
 * (a zero masking key, the hello's fields and proof); retries while nobody listens, with
 * small deadlines; which failures are final (authentication, a stale generation, a bad
 * message, TLS) and which are retried; the `unreachable` mark on a successor that never
 * answered; cancellation.
 */
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { dial, type DialOptions, zeroMask } from './connect.js';
import { listen } from './endpoint.js';
import { RingError } from './errors.js';
import { decodeHandshake, encodeHandshake, HANDSHAKE_VERSION, newNonce, proof, proofMatches, tokenBytes } from './handshake.js';
import type { Link } from './link.js';
import { type RingLogger, silentLogger } from './logger.js';
import { closeOf, freePort, Opcode, type RawPeer, rawServer, until } from './raw-ws.fixture.js';
import { isCode, TOKEN } from './ring.fixture.js';

const HEARTBEAT = { intervalMs: 1000, timeoutMs: 15_000 };
const SEGMENT = 1024;

const cleanup: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

/** Rank 0 of 2 dialing rank 1 at `port`, generation 1, with a deadline `ms` from now. */
function options(port: number, ms: number, over: Partial<DialOptions> = {}): DialOptions {
  return { host: '127.0.0.1', port, generation: 1, from: 0, to: 1, world: 2, segmentBytes: SEGMENT, token: tokenBytes(TOKEN), deadline: Date.now() + ms, heartbeat: HEARTBEAT, logger: silentLogger, ...over };
}

/** dial() to completion: the link, or the error, and how long it took. */
async function timed(o: DialOptions): Promise<{ link?: Link; err?: RingError; ms: number }> {
  const t0 = Date.now();
  try {
    const link = await dial(o);
    cleanup.push(() => link.close());
    return { link, ms: Date.now() - t0 };
  } catch (err) {
    return { err: err as RingError, ms: Date.now() - t0 };
  }
}

/** A logger that counts the dial's retries. */
function retries(): RingLogger & { count: number } {
  const log = { ...silentLogger, count: 0, child: () => log };
  log.debug = (_obj: object, msg?: string) => void (msg === 'dial failed; retrying' && (log.count += 1));
  return log;
}

async function endpoint(generation = 1) {
  const ep = await listen({ handshakeTimeoutMs: 2000 });
  cleanup.push(() => ep.close());
  const inbound = ep.expectSuccessor({ generation, rank: 1, world: 2, segmentBytes: SEGMENT, token: tokenBytes(TOKEN), heartbeat: HEARTBEAT, logger: silentLogger });
  inbound.then((link) => cleanup.push(() => link.close()), () => {});
  return { ep, inbound };
}

/**
 * An endpoint played by hand: sends a challenge, reads the hello, and answers with
 * what `answer` makes of it (a welcome, something else, or nothing).
 */
async function handPlayed(answer: (hello: ReturnType<typeof decodeHandshake>, serverNonce: Buffer, peer: RawPeer) => void) {
  const server = await rawServer((peer) => {
    const serverNonce = newNonce();
    peer.send(Opcode.binary, encodeHandshake({ type: 'challenge', v: HANDSHAKE_VERSION, nonce: serverNonce }));
    void peer.reader.until(1).then(([frame]) => answer(decodeHandshake(frame!.payload), serverNonce, peer), () => {});
  });
  cleanup.push(() => server.close());
  return server;
}

describe('dial: the handshake on the wire', () => {
  it('masks with a zero key and sends a hello with its fields and proof; a correct welcome gives a link to the predecessor, which says ready', async () => {
    let proofOk = false;
    const server = await handPlayed((hello, serverNonce, peer) => {
      assert.equal(hello.type, 'hello');
      if (hello.type !== 'hello') return;
      const fields = { serverNonce, clientNonce: Buffer.from(hello.nonce), generation: 1, from: 0, to: 1, world: 2, segmentBytes: SEGMENT };
      assert.deepEqual({ generation: hello.generation, from: hello.from, to: hello.to, world: hello.world, segmentBytes: hello.segmentBytes }, { generation: 1, from: 0, to: 1, world: 2, segmentBytes: SEGMENT });
      proofOk = proofMatches(proof(tokenBytes(TOKEN), 'hello', fields), hello.mac);
      peer.send(Opcode.binary, encodeHandshake({ type: 'welcome', v: HANDSHAKE_VERSION, mac: proof(tokenBytes(TOKEN), 'welcome', fields) }));
    });
    const { link, err } = await timed(options(server.port, 2000));
    assert.equal(err, undefined);
    assert.ok(proofOk, 'the hello proves the token');
    assert.equal(link!.peer, 1);
    const peer = server.peers[0]!;
    const [hello] = await peer.reader.until(1);
    assert.deepEqual(hello!.mask, Buffer.alloc(4), 'an all-zero masking key');
    const [, ready] = await peer.reader.until(2);
    assert.deepEqual(decodeHandshake(ready!.payload), { type: 'ready', v: HANDSHAKE_VERSION }, 'ready, once the link listens');
    link!.send(Buffer.from([1, 2, 3, 4, 5]));
    const [, , data] = await peer.reader.until(3);
    assert.deepEqual({ opcode: data!.opcode, mask: data!.mask, payload: [...data!.payload] }, { opcode: Opcode.binary, mask: Buffer.alloc(4), payload: [1, 2, 3, 4, 5] });
  });

  it('zeroMask writes four zero bytes', () => {
    const mask = Uint8Array.from([9, 9, 9, 9, 9]);
    zeroMask(mask);
    assert.deepEqual([...mask], [0, 0, 0, 0, 9]);
  });

  it('connects to an endpoint that expects this rank as its successor; frames flow both ways, and the data way reads through the relay (onread)', async () => {
    const { ep, inbound } = await endpoint();
    const { link } = await timed(options(ep.port, 3000));
    const inb = await inbound;
    assert.equal(link!.reads, 'relay', 'the dialer reads its data where its parser says (onread)');
    assert.equal(inb.reads, 'data-events');
    const got: number[] = [];
    inb.bind((f) => got.push(...f), () => {});
    link!.send(Buffer.from([7, 8]));
    await until(() => got.length === 2);
    assert.deepEqual(got, [7, 8]);
    // The data way: the endpoint's side sends, the dialer receives, in pooled buffers.
    const frames: { frame: Buffer; release: () => void }[] = [];
    link!.bind((frame, release) => frames.push({ frame: Buffer.from(frame), release: () => release() }), () => {});
    const big = Buffer.alloc(40 + SEGMENT, 9); // the largest frame the dialer takes: a segment and its header
    // One at a time, so that each arrives in reads of its own.
    for (const [i, frame] of [big, Buffer.from([1, 2, 3]), big, big].entries()) {
      inb.send(frame);
      await until(() => frames.length === i + 1);
      assert.ok(frames[i]!.frame.equals(frame), `frame ${i}`);
    }
    // Each read landed where the parser asked (no copy), but the first after the takeover,
    // whose buffer was chosen before it.
    assert.ok(link!.misplacedReads <= 1, `${link!.misplacedReads} reads were copied`);
    // The endpoint's side writes a frame from two pieces without joining them (fast-send.ts),
    // with 7- and 16-bit WebSocket lengths (fast-send.spec.ts has the 64-bit one); the
    // dialer's, which must mask, through ws.
    assert.equal(inb.sends, 'parts');
    assert.equal(link!.sends, 'ws');
    const caller = Buffer.alloc(SEGMENT, 5);
    const sizes = [0, 85, 86, SEGMENT];
    for (const [i, n] of sizes.entries()) {
      const head = Buffer.alloc(40, n & 0xff);
      const written = await new Promise<Error | null | undefined>((resolve) => inb.sendParts(head, caller.subarray(0, n), resolve));
      assert.equal(written, null, `payload ${n}: written`);
      await until(() => frames.length === 5 + i);
      assert.ok(frames.at(-1)!.frame.equals(Buffer.concat([head, caller.subarray(0, n)])), `payload ${n}`);
    }
  });
});

describe('dial: final failures end it at once, long before the deadline', () => {
  it('a welcome without the job token\'s proof: RING_AUTH_FAILED, and the server gets close code 4004', async () => {
    const server = await handPlayed((_hello, _nonce, peer) => peer.send(Opcode.binary, encodeHandshake({ type: 'welcome', v: HANDSHAKE_VERSION, mac: Buffer.alloc(32) })));
    const log = retries();
    const { err, ms } = await timed(options(server.port, 5000, { logger: log }));
    assert.ok(isCode('RING_AUTH_FAILED')(err), String(err));
    assert.equal(err!.details.unreachable, undefined, 'it answered: not unreachable');
    assert.ok(ms < 2000, `${ms} ms`);
    assert.equal(log.count, 0, 'not retried');
    const [, close] = await server.peers[0]!.reader.until(2);
    assert.equal(closeOf(close!).code, 4004);
    assert.match(closeOf(close!).reason, /^RING_AUTH_FAILED: rank 1 could not prove/);
  });

  it('a message that is not a welcome where one is due: RING_BAD_FRAME', async () => {
    const server = await handPlayed((_hello, nonce, peer) => peer.send(Opcode.binary, encodeHandshake({ type: 'challenge', v: HANDSHAKE_VERSION, nonce })));
    const { err, ms } = await timed(options(server.port, 5000));
    assert.ok(isCode('RING_BAD_FRAME')(err), String(err));
    assert.match(err!.message, /expected welcome, got challenge/);
    assert.ok(ms < 2000, `${ms} ms`);
  });

  it('an endpoint of another token: RING_AUTH_FAILED', async () => {
    const { ep } = await endpoint();
    const { err, ms } = await timed(options(ep.port, 5000, { token: tokenBytes('another-token-0123456789') }));
    assert.ok(isCode('RING_AUTH_FAILED')(err), String(err));
    assert.ok(ms < 2000, `${ms} ms`);
  });

  it('an endpoint that has served a newer generation: RING_STALE_GENERATION', async () => {
    const { ep } = await endpoint(5);
    const { err, ms } = await timed(options(ep.port, 5000, { generation: 4 }));
    assert.ok(isCode('RING_STALE_GENERATION')(err), String(err));
    assert.ok(ms < 2000, `${ms} ms`);
  });

  it('no TLS where the dial wants it: RING_TLS_FAILED, marked unreachable, naming the address', async () => {
    const { ep } = await endpoint();
    const { err, ms } = await timed(options(ep.port, 5000, { tls: { servername: '' } }));
    assert.ok(isCode('RING_TLS_FAILED')(err), String(err));
    assert.equal(err!.details.unreachable, true);
    assert.equal(err!.details.peer, 1);
    assert.match(err!.message, new RegExp(`at 127\\.0\\.0\\.1:${ep.port}$`));
    assert.ok(ms < 2000, `${ms} ms`);
  });

  it('cancelled(): its error, at the next retry', async () => {
    const port = await freePort();
    const stop = new RingError('RING_ABORTED', 'the ring was aborted while forming');
    let cancelled: RingError | undefined;
    setTimeout(() => (cancelled = stop), 150);
    const { err, ms } = await timed(options(port, 5000, { cancelled: () => cancelled }));
    assert.equal(err, stop);
    assert.ok(ms >= 150 && ms < 2000, `${ms} ms`);
  });
});

describe('dial: retries until the deadline', () => {
  it('a refused connection is retried, backing off, until the successor listens', async () => {
    const port = await freePort();
    const log = retries();
    const dialing = timed(options(port, 4000, { logger: log }));
    await new Promise((resolve) => setTimeout(resolve, 300));
    const ep = await listen({ port, handshakeTimeoutMs: 2000 });
    cleanup.push(() => ep.close());
    ep.expectSuccessor({ generation: 1, rank: 1, world: 2, segmentBytes: SEGMENT, token: tokenBytes(TOKEN), heartbeat: HEARTBEAT, logger: silentLogger }).then((l) => cleanup.push(() => l.close()), () => {});
    const { link, err, ms } = await dialing;
    assert.equal(err, undefined);
    assert.ok(link);
    assert.ok(ms >= 300, `${ms} ms`);
    // Backing off from 20 ms by doubling: 20 + 40 + 80 + 160 > 300, so at most a handful.
    assert.ok(log.count >= 2 && log.count <= 8, `${log.count} retries`);
  });

  it('nobody listening until the deadline: RING_TIMEOUT marked unreachable, naming the address and the last error', async () => {
    const port = await freePort();
    const { err, ms } = await timed(options(port, 400));
    assert.ok(isCode('RING_TIMEOUT')(err), String(err));
    assert.deepEqual({ peer: err!.details.peer, generation: err!.details.generation, unreachable: err!.details.unreachable }, { peer: 1, generation: 1, unreachable: true });
    assert.match(err!.message, new RegExp(`^could not connect to rank 1 at 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
    assert.ok(ms >= 350 && ms < 1500, `${ms} ms`);
  });

  for (const [what, start] of [
    ['a TCP listener that never answers the upgrade', silentTcp],
    ['an endpoint that upgrades and then sends no challenge', silentUpgrade],
    ['an HTTP server that is not a ring endpoint', httpNotFound],
  ] as const) {
    it(`${what}: retried, then RING_TIMEOUT marked unreachable at the deadline, not later`, async () => {
      const port = await start();
      const { err, ms } = await timed(options(port, 500));
      assert.ok(isCode('RING_TIMEOUT')(err), String(err));
      assert.equal(err!.details.unreachable, true);
      assert.ok(ms >= 450 && ms < 1500, `${ms} ms`);
    });
  }
});

async function silentTcp(): Promise<number> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanup.push(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return (server.address() as AddressInfo).port;
}

async function silentUpgrade(): Promise<number> {
  const server = await rawServer();
  cleanup.push(() => server.close());
  return server.port;
}

async function httpNotFound(): Promise<number> {
  const server = createServer((s) => {
    s.on('error', () => {});
    s.once('data', () => s.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanup.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as AddressInfo).port;
}
