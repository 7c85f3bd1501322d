import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import type { AddressInfo } from 'node:net';
import { listen, type RingEndpoint } from './endpoint.js';
import { decodeHandshake, encodeHandshake, HANDSHAKE_VERSION, newNonce, probeFields, proof, proofMatches, tokenBytes } from './handshake.js';
import { silentLogger } from './logger.js';
import { probeEndpoint } from './probe.js';
import { closeOf, Opcode, type RawPeer, rawServer } from './raw-ws.fixture.js';
import { TOKEN } from './ring.fixture.js';
import { createRing } from './ring.js';

const closing: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closing) await c();
});

async function endpoint(token?: string): Promise<RingEndpoint> {
  const ep = await listen({ handshakeTimeoutMs: 2000, ...(token ? { token } : {}) });
  closing.push(() => ep.close());
  return ep;
}

/** Listens on loopback; at the end, closes it and destroys what is still connected. */
async function serve(server: Server): Promise<number> {
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closing.push(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise((resolve) => server.close(() => resolve()));
  });
  return (server.address() as AddressInfo).port;
}

describe('probeEndpoint: the ring handshake, not a TCP connect', () => {
  it('an endpoint holding the token answers: reachable', async () => {
    const ep = await endpoint(TOKEN);
    assert.deepEqual(await probeEndpoint({ host: ep.host, port: ep.port, token: TOKEN }), { reachable: true, detail: 'answered the ring handshake' });
  });

  it('an endpoint of another job (another token) or one that answers no probes: not reachable, saying why', async () => {
    const other = await endpoint('another-token-0123456789');
    const r = await probeEndpoint({ host: other.host, port: other.port, token: TOKEN });
    assert.equal(r.reachable, false);
    assert.match(r.detail, /^RING_AUTH_FAILED: .*bad proof of the job token/);
    const tokenless = await endpoint();
    const t = await probeEndpoint({ host: tokenless.host, port: tokenless.port, token: TOKEN });
    assert.equal(t.reachable, false);
    assert.match(t.detail, /^RING_AUTH_FAILED: .*answers no probes/);
  });

  it('nothing listening: the connect error code', async () => {
    const server = createTcpServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    assert.deepEqual(await probeEndpoint({ host: '127.0.0.1', port, token: TOKEN }), { reachable: false, detail: 'ECONNREFUSED' });
  });

  it('an HTTP server (say the coordinator port) is not a ring endpoint, though a TCP connect succeeds', async () => {
    const port = await serve(createHttpServer((_req, res) => res.writeHead(404).end()));
    assert.deepEqual(await probeEndpoint({ host: '127.0.0.1', port, token: TOKEN }), { reachable: false, detail: 'not a ring endpoint (HTTP 404)' });
  });

  it('a listener that never speaks: no answer by the deadline', async () => {
    const port = await serve(createTcpServer());
    const t0 = Date.now();
    const r = await probeEndpoint({ host: '127.0.0.1', port, token: TOKEN, timeoutMs: 300 });
    assert.deepEqual(r, { reachable: false, detail: 'no answer within 300 ms' });
    assert.ok(Date.now() - t0 < 2000);
  });

  it('a probe is never taken for a ring peer: a ring waiting on the endpoint still forms with its real predecessor', async () => {
    const [a, b] = [await endpoint(TOKEN), await endpoint(TOKEN)];
    const peers = [a, b].map((ep, rank) => ({ rank, host: ep.host, port: ep.port }));
    const forming = [a, b].map((endpoint, rank) =>
      createRing({ endpoint, membership: { generation: 3, rank, world: 2, peers, token: TOKEN }, connectTimeoutMs: 5000, logger: silentLogger }),
    );
    // Probes land while both rings wait for their predecessors.
    const probes = await Promise.all([a, b, a].map((ep) => probeEndpoint({ host: ep.host, port: ep.port, token: tokenBytes(TOKEN) })));
    assert.ok(probes.every((p) => p.reachable));
    const rings = await Promise.all(forming);
    const data = [Float32Array.from([1, 2]), Float32Array.from([10, 20])];
    await Promise.all(rings.map((r, i) => r.allReduce(data[i]!)));
    assert.deepEqual([...data[0]!], [11, 22]);
    await Promise.all(rings.map((r) => r.close()));
  });
});

/** An endpoint played by hand: `play` runs on each prober right after the upgrade. */
async function handPlayed(play: (peer: RawPeer) => void): Promise<number> {
  const server = await rawServer(play);
  closing.push(() => server.close());
  return server.port;
}

const challenge = (peer: RawPeer, nonce = newNonce()): Buffer => {
  peer.send(Opcode.binary, encodeHandshake({ type: 'challenge', v: HANDSHAKE_VERSION, nonce }));
  return nonce;
};

describe('probeEndpoint against an endpoint played by hand', () => {
  it('answers the challenge with a probe, never a hello: its nonce and a proof under the probe label with no ring fields', async () => {
    let seen: { type: string; proves: boolean; mask: Buffer | null } | undefined;
    const port = await handPlayed((peer) => {
      const serverNonce = challenge(peer);
      void peer.reader.until(1).then(([frame]) => {
        const m = decodeHandshake(frame!.payload);
        const fields = probeFields(serverNonce, m.type === 'probe' ? Buffer.from(m.nonce) : Buffer.alloc(32));
        seen = { type: m.type, proves: m.type === 'probe' && proofMatches(proof(tokenBytes(TOKEN), 'probe', fields), m.mac), mask: frame!.mask };
        peer.send(Opcode.binary, encodeHandshake({ type: 'welcome', v: HANDSHAKE_VERSION, mac: proof(tokenBytes(TOKEN), 'probe-welcome', fields) }));
      });
    });
    assert.deepEqual(await probeEndpoint({ host: '127.0.0.1', port, token: TOKEN }), { reachable: true, detail: 'answered the ring handshake' });
    assert.equal(seen?.type, 'probe');
    assert.equal(seen?.proves, true);
    assert.ok(seen?.mask, 'a client frame is masked');
  });

  it('after a proof it closes normally (1000), as a prober, not with an error', async () => {
    let peer: RawPeer | undefined;
    const port = await handPlayed((p) => {
      peer = p;
      const serverNonce = challenge(p);
      void p.reader.until(1).then(([frame]) => {
        const m = decodeHandshake(frame!.payload);
        if (m.type !== 'probe') return;
        p.send(Opcode.binary, encodeHandshake({ type: 'welcome', v: HANDSHAKE_VERSION, mac: proof(tokenBytes(TOKEN), 'probe-welcome', probeFields(serverNonce, Buffer.from(m.nonce))) }));
      });
    });
    assert.equal((await probeEndpoint({ host: '127.0.0.1', port, token: TOKEN })).reachable, true);
    const [, close] = await peer!.reader.until(2);
    assert.deepEqual(closeOf(close!), { code: 1000, reason: 'RING_CLOSED' });
  });

  it('a welcome that a ring peer would get (the hello label), not a prober\'s: not reachable', async () => {
    const port = await handPlayed((peer) => {
      const serverNonce = challenge(peer);
      void peer.reader.until(1).then(([frame]) => {
        const m = decodeHandshake(frame!.payload);
        if (m.type !== 'probe') return;
        peer.send(Opcode.binary, encodeHandshake({ type: 'welcome', v: HANDSHAKE_VERSION, mac: proof(tokenBytes(TOKEN), 'welcome', probeFields(serverNonce, Buffer.from(m.nonce))) }));
      });
    });
    assert.deepEqual(await probeEndpoint({ host: '127.0.0.1', port, token: TOKEN }), { reachable: false, detail: 'it could not prove it holds the job token' });
  });

  it('an opening that is not a challenge: not a ring endpoint, naming what it sent', async () => {
    const port = await handPlayed((peer) => peer.send(Opcode.binary, encodeHandshake({ type: 'welcome', v: HANDSHAKE_VERSION, mac: Buffer.alloc(32) })));
    assert.deepEqual(await probeEndpoint({ host: '127.0.0.1', port, token: TOKEN }), { reachable: false, detail: 'not a ring endpoint (it sent welcome)' });
  });

  it('garbage, or text, instead of a challenge: the decoder\'s code', async () => {
    const garbage = await handPlayed((peer) => peer.send(Opcode.binary, Buffer.from([0xc1, 0x00, 0x17])));
    assert.match((await probeEndpoint({ host: '127.0.0.1', port: garbage, token: TOKEN })).detail, /^RING_BAD_FRAME: /);
    const text = await handPlayed((peer) => peer.send(Opcode.text, Buffer.from('{"type":"challenge"}')));
    assert.match((await probeEndpoint({ host: '127.0.0.1', port: text, token: TOKEN })).detail, /^RING_BAD_FRAME: handshake: not a binary message/);
  });

  it('the deadline covers the whole exchange: a challenge, then silence', async () => {
    const port = await handPlayed((peer) => void challenge(peer));
    const t0 = Date.now();
    assert.deepEqual(await probeEndpoint({ host: '127.0.0.1', port, token: TOKEN, timeoutMs: 300 }), { reachable: false, detail: 'no answer within 300 ms' });
    assert.ok(Date.now() - t0 < 1500);
  });

  it('never rejects: an address that makes no URL, an empty token', async () => {
    const bad = await probeEndpoint({ host: 'a b', port: 1, token: TOKEN });
    assert.equal(bad.reachable, false);
    assert.match(bad.detail, /^cannot dial a b:1: Invalid URL/);
    assert.deepEqual(await probeEndpoint({ host: '127.0.0.1', port: 1, token: '' }), { reachable: false, detail: 'RING_INVALID_ARGUMENT: the job token is empty' });
  });
});
