/**
 * The ring over TLS, in this process, through @ringtrain/allreduce's public API, with
 * certificates made at run time (tls-certs.ts): the all-reduce of integers (exact, every
 * rank bit-identical) for W = 2, 3, 4 and odd lengths, broadcast and barrier, with peers
 * verified by the address dialed or by a fixed name; certificates that fail verification
 * and peers that speak no TLS refused at once with RING_TLS_FAILED, not at the connect
 * deadline; and a proxy between two ranks that reads the payload in clear without TLS
 * and never with it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { createRing, isRingError, listen, type Ring, type RingEndpoint, type RingTls } from '@ringtrain/allreduce';
import { checkSum, input } from './allreduce-data.js';
import { FaultProxy } from './allreduce-proxy.js';
import { makeCerts, type TestCerts } from './tls-certs.js';

const TOKEN = 'tls-test-token-0123456789';
const LENGTHS = [0, 1, 1000, 2 ** 20 + 3];

let certs: TestCerts;
let good: RingTls;
before(() => {
  certs = makeCerts();
  good = { cert: readFileSync(certs.cert), key: readFileSync(certs.key), ca: readFileSync(certs.ca) };
});

interface Formed {
  readonly endpoints: RingEndpoint[];
  readonly results: PromiseSettledResult<Ring>[];
  /** When each rank's createRing settled, in ms from the start. */
  readonly ms: number[];
  close(): Promise<void>;
}

/** Endpoints with `tlsOf(rank)` and one generation formed over them. */
async function form(world: number, tlsOf: (rank: number) => RingTls | undefined, connectTimeoutMs = 10_000): Promise<Formed> {
  const endpoints = await Promise.all(Array.from({ length: world }, (_, r) => listen({ maxSegmentBytes: 64 * 1024, ...(tlsOf(r) ? { tls: tlsOf(r)! } : {}) })));
  const peers = endpoints.map((e, rank) => ({ rank, host: '127.0.0.1', port: e.port }));
  const start = Date.now();
  const ms: number[] = [];
  const results = await Promise.allSettled(
    endpoints.map((endpoint, rank) =>
      createRing({ endpoint, segmentBytes: 64 * 1024, connectTimeoutMs, opTimeoutMs: 20_000, membership: { generation: 1, rank, world, peers, token: TOKEN } }).finally(() => (ms[rank] = Date.now() - start)),
    ),
  );
  return {
    endpoints,
    results,
    ms,
    async close() {
      await Promise.all(results.map((r) => (r.status === 'fulfilled' ? r.value.close() : undefined)));
      await Promise.all(endpoints.map((e) => e.close()));
    },
  };
}

function rings(f: Formed): Ring[] {
  return f.results.map((r, rank) => {
    assert.equal(r.status, 'fulfilled', `rank ${rank}: ${r.status === 'rejected' ? String(r.reason) : ''}`);
    return (r as PromiseFulfilledResult<Ring>).value;
  });
}

describe('ring all-reduce over TLS', () => {
  for (const [world, serverName] of [[2, undefined], [3, 'ringtrain-worker'], [4, undefined]] as const) {
    it(`W = ${world}, peers verified by ${serverName ? `the fixed name ${serverName}` : 'the address dialed'}: exact sums, bit-identical ranks, broadcast, barrier`, async () => {
      const f = await form(world, () => ({ ...good, ...(serverName ? { serverName } : {}) }));
      try {
        const rs = rings(f);
        assert.ok(f.endpoints.every((e) => e.tls));
        for (const length of LENGTHS) {
          const data = rs.map((_, r) => input('int', length, r, length));
          await Promise.all(rs.map((ring, r) => ring.allReduce(data[r]!, { step: length })));
          data.forEach((d, r) => assert.ok(checkSum('int', length, world, d), `rank ${r}, length ${length}`));
          data.forEach((d, r) => assert.ok(Buffer.from(d.buffer).equals(Buffer.from(data[0]!.buffer)), `rank ${r} bit-identical`));
        }
        const src = Buffer.alloc(200_001, 7);
        const got = await Promise.all(rs.map((ring, r) => ring.broadcast(r === 1 ? src : undefined, 1)));
        got.forEach((g) => assert.ok(Buffer.from(g).equals(src)));
        await Promise.all(rs.map((ring) => ring.barrier()));
      } finally {
        await f.close();
      }
    });
  }
});

describe('TLS failures fail the dial at once with RING_TLS_FAILED', () => {
  /** Rank `dialer`'s dial fails with RING_TLS_FAILED, long before the 3 s connect deadline. */
  async function refusedAtOnce(world: number, tlsOf: (rank: number) => RingTls | undefined, dialer: number, detail: RegExp): Promise<void> {
    const f = await form(world, tlsOf, 3000);
    try {
      const r = f.results[dialer]!;
      assert.equal(r.status, 'rejected');
      const err = (r as PromiseRejectedResult).reason;
      assert.ok(isRingError(err) && err.code === 'RING_TLS_FAILED', String(err));
      assert.match(err.message, detail);
      // Evidence against the successor's endpoint, as no connection at all: the coordinator probes it (with its own CA).
      assert.deepEqual([err.details.peer, err.details.unreachable], [(dialer + 1) % world, true]);
      assert.ok(f.ms[dialer]! < 1500, `failed after ${f.ms[dialer]} ms`);
    } finally {
      await f.close();
    }
  }

  it('a CA that did not sign the peer', async () => {
    const other = { ...good, ca: readFileSync(certs.otherCa) };
    // Rank 1 dials rank 0 and trusts only the other CA.
    await refusedAtOnce(2, (r) => (r === 1 ? other : good), 1, /certificate failed verification \((UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN)/);
  });

  it('a certificate without the address dialed, unless a fixed name is verified instead', async () => {
    const unnamed = { ...good, cert: readFileSync(certs.unnamedCert), key: readFileSync(certs.unnamedKey) };
    await refusedAtOnce(2, (r) => (r === 0 ? unnamed : good), 1, /ERR_TLS_CERT_ALTNAME_INVALID/);
    const f = await form(2, () => ({ ...unnamed, serverName: 'elsewhere.invalid' }));
    try {
      assert.equal(rings(f).length, 2);
    } finally {
      await f.close();
    }
  });

  it('a peer that speaks no TLS', async () => {
    await refusedAtOnce(2, (r) => (r === 0 ? undefined : good), 1, /no TLS session could be set up/);
  });

  it('an unusable certificate or CA is refused when listening, with RING_INVALID_ARGUMENT', async () => {
    const invalid = (err: unknown) => isRingError(err) && err.code === 'RING_INVALID_ARGUMENT';
    await assert.rejects(listen({ tls: { ...good, cert: 'not a certificate' } }), invalid);
    await assert.rejects(listen({ tls: { ...good, ca: 'not a CA' } }), invalid);
    await assert.rejects(listen({ tls: { ...good, serverName: 'two words' } }), invalid);
  });
});

describe('what a listener on the wire reads', () => {
  let proxy: FaultProxy | undefined;
  after(async () => proxy?.close());

  // Every value on the wire is 2.5 (rank 0 sends 2.5s, rank 1 zeros, so the sums are 2.5 too).
  const pattern = Buffer.from(new Float32Array(16).fill(2.5).buffer);
  for (const tls of [false, true]) {
    it(`${tls ? 'with' : 'without'} TLS, a proxy between rank 0 and rank 1 ${tls ? 'never sees' : 'sees'} the payload`, async () => {
      const eps = await Promise.all([0, 1].map(() => listen(tls ? { tls: good } : {})));
      proxy = await FaultProxy.start(eps[1]!.port, { record: true });
      const peers = [
        { rank: 0, host: '127.0.0.1', port: eps[0]!.port },
        { rank: 1, host: '127.0.0.1', port: proxy.port },
      ];
      const rs = await Promise.all(eps.map((endpoint, rank) => createRing({ endpoint, membership: { generation: 1, rank, world: 2, peers, token: TOKEN } })));
      const data = [new Float32Array(64 * 1024).fill(2.5), new Float32Array(64 * 1024)];
      await Promise.all(rs.map((ring, r) => ring.allReduce(data[r]!)));
      assert.ok(data[1]!.every((v) => v === 2.5));
      const seen = proxy.transcript();
      assert.ok(seen.length > 256 * 1024, `${seen.length} bytes crossed the proxy`);
      assert.equal(seen.includes(pattern), !tls);
      await Promise.all(rs.map((r) => r.close()));
      await Promise.all(eps.map((e) => e.close()));
      await proxy.close();
      proxy = undefined;
    });
  }
});
