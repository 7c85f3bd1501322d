import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import type { AddressInfo } from 'node:net';
import { listen, type RingEndpoint } from './endpoint.js';
import { tokenBytes } from './handshake.js';
import { silentLogger } from './logger.js';
import { probeEndpoint } from './probe.js';
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
