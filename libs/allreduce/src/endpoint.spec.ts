import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { CLOSE_GRACE_MS, listen, type RingEndpoint } from './endpoint.js';
import { decodeHandshake, encodeHandshake, HANDSHAKE_VERSION, newNonce, proof, tokenBytes } from './handshake.js';
import { silentLogger } from './logger.js';
import { endpoints, isCode, TOKEN } from './ring.fixture.js';
import { createRing } from './ring.js';
import type { RingError } from './errors.js';

/** A raw client: returns the close code and reason after `act` runs on the challenge. */
async function rawClient(ep: RingEndpoint, act: (ws: WebSocket, challenge: Buffer) => void): Promise<{ code: number; reason: string }> {
  const ws = new WebSocket(`ws://${ep.host}:${ep.port}/`);
  ws.on('error', () => {});
  return new Promise((resolve) => {
    ws.once('message', (data: Buffer) => act(ws, data));
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
}

/** A hello for rank 1 -> 0 of 2; `announced` is the segment size sent, which may differ from the one proven. */
function hello(challenge: Buffer, token: string, generation: number, announced = 262144): Buffer {
  const msg = decodeHandshake(challenge);
  assert.equal(msg.type, 'challenge');
  const nonce = newNonce();
  const fields = { serverNonce: msg.type === 'challenge' ? msg.nonce : nonce, clientNonce: nonce, generation, from: 1, to: 0, world: 2, segmentBytes: 262144 };
  return encodeHandshake({ type: 'hello', v: 1, generation, from: 1, to: 0, world: 2, segmentBytes: announced, nonce, mac: proof(tokenBytes(token), 'hello', fields) });
}

describe('endpoint authentication', () => {
  let ep: RingEndpoint;
  before(async () => {
    ep = await listen({ handshakeTimeoutMs: 300 });
    // A ring of generation 5 waits for its successor; it must not get any of these clients.
    ep.expectSuccessor({ generation: 5, rank: 0, world: 2, segmentBytes: 262144, token: tokenBytes(TOKEN), heartbeat: { intervalMs: 100, timeoutMs: 1000 }, logger: silentLogger }).catch(() => {});
  });
  after(async () => ep.close());

  it('refuses a client that cannot prove the token with RING_AUTH_FAILED', async () => {
    const r = await rawClient(ep, (ws, c) => ws.send(hello(c, 'wrong-token', 5)));
    assert.equal(r.code, 4004);
    assert.match(r.reason, /^RING_AUTH_FAILED/);
  });

  it('refuses a hello whose segment size differs from the one its proof covers with RING_AUTH_FAILED', async () => {
    const r = await rawClient(ep, (ws, c) => ws.send(hello(c, TOKEN, 5, 131072)));
    assert.equal(r.code, 4004);
    assert.match(r.reason, /^RING_AUTH_FAILED/);
  });

  it('refuses garbage with RING_BAD_FRAME and oversized handshakes with RING_FRAME_TOO_LARGE', async () => {
    assert.equal((await rawClient(ep, (ws) => ws.send(Buffer.from([1, 2, 3])))).code, 4005);
    assert.equal((await rawClient(ep, (ws) => ws.send('{"type":"hello"}'))).code, 4005);
    assert.equal((await rawClient(ep, (ws) => ws.send(Buffer.alloc(10_000)))).code, 4006);
  });

  it('closes a silent client at the handshake deadline with RING_TIMEOUT', async () => {
    const t = Date.now();
    const r = await rawClient(ep, () => {});
    assert.equal(r.code, 4002);
    assert.ok(Date.now() - t < 2000);
  });

  it('refuses a generation older than the newest with RING_STALE_GENERATION', async () => {
    const r = await rawClient(ep, (ws, c) => ws.send(hello(c, TOKEN, 4)));
    assert.equal(r.code, 4009);
  });

  it('fails ring formation on both sides when the tokens differ', async () => {
    const eps = await endpoints(2);
    const peers = eps.map((e, rank) => ({ rank, host: e.host, port: e.port }));
    const results = await Promise.allSettled(
      eps.map((endpoint, rank) => createRing({ endpoint, connectTimeoutMs: 2000, membership: { generation: 1, rank, world: 2, peers, token: `token-${rank}` } })),
    );
    for (const r of results) assert.ok(r.status === 'rejected' && isCode('RING_AUTH_FAILED')(r.reason), String(r.status === 'rejected' ? r.reason : 'formed'));
    await Promise.all(eps.map((e) => e.close()));
  });

  it('times out ring formation when the successor never answers', async () => {
    const eps = await endpoints(2);
    const peers = eps.map((e, rank) => ({ rank, host: e.host, port: e.port }));
    await assert.rejects(createRing({ endpoint: eps[0]!, connectTimeoutMs: 300, membership: { generation: 1, rank: 0, world: 2, peers, token: TOKEN } }), isCode('RING_TIMEOUT'));
    await Promise.all(eps.map((e) => e.close()));
  });

  it('says which peer it could not reach at all, apart from one that never dialed in', async () => {
    const eps = await endpoints(2);
    const peers = eps.map((e, rank) => ({ rank, host: e.host, port: e.port }));
    await eps[1]!.close(); // nobody listens at rank 1's address any more
    const err = await createRing({ endpoint: eps[0]!, connectTimeoutMs: 300, membership: { generation: 1, rank: 0, world: 2, peers, token: TOKEN } }).then(
      () => assert.fail('formed a ring with a closed peer'),
      (e: unknown) => e,
    );
    assert.ok(isCode('RING_TIMEOUT')(err));
    assert.equal((err as RingError).details.peer, 1);
    assert.equal((err as RingError).details.unreachable, true);
    assert.match((err as RingError).message, /could not connect to rank 1 at /);
    await eps[0]!.close();
  });
});

describe('endpoint limits', () => {
  it('counts parked connections toward maxPendingConnections and refuses the extra ones with RING_BUSY', async () => {
    const ep = await listen({ maxPendingConnections: 2, handshakeTimeoutMs: 600 });
    try {
      // No ring of generation 9 here: both clients authenticate nothing and wait, parked.
      const parked = [0, 1].map(() => rawClient(ep, (ws, c) => ws.send(hello(c, TOKEN, 9))));
      await new Promise((resolve) => setTimeout(resolve, 150));
      const extra = await Promise.all([0, 1, 2].map(() => rawClient(ep, (ws) => ws.terminate())));
      for (const r of extra) {
        assert.equal(r.code, 4008);
        assert.match(r.reason, /^RING_BUSY/);
      }
      for (const r of await Promise.all(parked)) assert.equal(r.code, 4002);
      // With the parked ones gone, the endpoint accepts connections again.
      let challenged = false;
      await rawClient(ep, (ws) => {
        challenged = true;
        ws.terminate();
      });
      assert.ok(challenged);
    } finally {
      await ep.close();
    }
  });

  it('with the token, a hello for a ring not yet here is checked before it may wait: without the token it is refused at once, and cannot fill the pending slots', async () => {
    const logged: unknown[] = [];
    const logger = { ...silentLogger, warn: (obj: unknown) => void logged.push(obj), child: () => logger };
    const ep = await listen({ token: TOKEN, maxPendingConnections: 2, handshakeTimeoutMs: 2000, logger });
    try {
      const t0 = Date.now();
      const forged = await Promise.all([0, 1, 2, 3].map(() => rawClient(ep, (ws, c) => ws.send(hello(c, 'not-the-token', 9)))));
      for (const r of forged) {
        assert.equal(r.code, 4004);
        assert.match(r.reason, /^RING_AUTH_FAILED/);
      }
      assert.ok(Date.now() - t0 < 1000, 'refused at once, not after the handshake deadline');
      assert.equal(logged.length, 1, 'four refusals, one log line (REFUSAL_LOG_MS)');
      // A token holder's hello still waits for its ring, which then takes it.
      const ring = ep.expectSuccessor({ generation: 9, rank: 0, world: 2, segmentBytes: 262144, token: tokenBytes(TOKEN), heartbeat: { intervalMs: 100, timeoutMs: 1000 }, logger: silentLogger });
      let welcomed = false;
      const client = rawClient(ep, (ws, c) => {
        ws.send(hello(c, TOKEN, 9));
        ws.once('message', (m: Buffer) => {
          welcomed = decodeHandshake(m).type === 'welcome';
          ws.send(encodeHandshake({ type: 'ready', v: HANDSHAKE_VERSION })); // the ring takes the link once its dialer is ready
        });
      });
      (await ring).close();
      await client;
      assert.ok(welcomed);
    } finally {
      await ep.close();
    }
  });

  it('a welcomed dialer\'s link is the ring\'s only once it says ready; anything else after the welcome is RING_BAD_FRAME, and the ring never gets it', async () => {
    const ep = await listen({ handshakeTimeoutMs: 2000 });
    try {
      const reg = (generation: number) => ep.expectSuccessor({ generation, rank: 0, world: 2, segmentBytes: 262144, token: tokenBytes(TOKEN), heartbeat: { intervalMs: 100, timeoutMs: 1000 }, logger: silentLogger });
      // Ready after a pause: the registration waits for it.
      const ready = reg(11);
      let settled = false;
      void ready.then(() => (settled = true), () => (settled = true));
      let send: (() => void) | undefined;
      const client = rawClient(ep, (ws, c) => {
        ws.send(hello(c, TOKEN, 11));
        ws.once('message', () => (send = () => ws.send(encodeHandshake({ type: 'ready', v: HANDSHAKE_VERSION }))));
      });
      while (!send) await new Promise((resolve) => setTimeout(resolve, 5));
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(settled, false, 'welcomed, not ready: the ring waits');
      send();
      (await ready).close();
      await client;
      // Data instead of ready: refused, and the registration fails with the same code.
      const refused = reg(12).then(() => null, (e: unknown) => e);
      const bad = await rawClient(ep, (ws, c) => {
        ws.send(hello(c, TOKEN, 12));
        ws.once('message', () => ws.send(Buffer.alloc(48, 7)));
      });
      assert.equal(bad.code, 4005);
      assert.match(bad.reason, /^RING_BAD_FRAME: rank 1 sent something other than ready after the welcome/);
      assert.ok(isCode('RING_BAD_FRAME')(await refused), 'the registration fails with the same code');
    } finally {
      await ep.close();
    }
  });

  it('close() resolves within its grace period while a client holds a connection open', async () => {
    const ep = await listen();
    const sockets = await Promise.all(
      [false, true].map(
        (upgrade) =>
          new Promise<Socket>((resolve) => {
            // One never sends an HTTP request, one sends half of one.
            const s = connect(ep.port, ep.host, () => {
              if (upgrade) s.write('GET / HTTP/1.1\r\nHost: x\r\n');
              resolve(s);
            });
            s.on('error', () => {});
          }),
      ),
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    const t = Date.now();
    const closed = await Promise.race([ep.close().then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), CLOSE_GRACE_MS + 2000))]);
    assert.ok(closed, 'close() did not resolve');
    assert.ok(Date.now() - t < CLOSE_GRACE_MS + 1000);
    assert.ok(ep.isClosed);
    for (const s of sockets) s.destroy();
  });
});
