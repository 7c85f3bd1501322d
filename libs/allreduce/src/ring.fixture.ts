/** Test helpers: rings of W members in this process, on 127.0.0.1 with OS-chosen ports. */
import { listen, type RingEndpoint } from './endpoint.js';
import { RingError, type RingErrorCode } from './errors.js';
import { createRing, type Ring, type RingOptions } from './ring.js';

export const TOKEN = 'test-token-0123456789';

export interface Fixture {
  readonly endpoints: RingEndpoint[];
  readonly rings: Ring[];
  close(): Promise<void>;
}

export type RingTuning = Omit<RingOptions, 'membership' | 'endpoint'>;

/** Endpoints for `world` members. */
export async function endpoints(world: number, maxSegmentBytes?: number): Promise<RingEndpoint[]> {
  return Promise.all(Array.from({ length: world }, () => listen({ maxSegmentBytes })));
}

/** Forms one generation over the given endpoints. */
export async function formRings(eps: readonly RingEndpoint[], generation: number, tuning: RingTuning = {}): Promise<Ring[]> {
  const peers = eps.map((e, rank) => ({ rank, host: e.host, port: e.port }));
  return Promise.all(
    eps.map((endpoint, rank) =>
      createRing({ ...tuning, endpoint, membership: { generation, rank, world: eps.length, peers, token: TOKEN } }),
    ),
  );
}

export async function fixture(world: number, tuning: RingTuning = {}): Promise<Fixture> {
  const eps = await endpoints(world, Math.max(tuning.segmentBytes ?? 0, 4 * 1024 * 1024));
  const rings = await formRings(eps, 1, { opTimeoutMs: 20_000, ...tuning });
  return {
    endpoints: eps,
    rings,
    async close() {
      await Promise.all(rings.map((r) => r.close()));
      await Promise.all(eps.map((e) => e.close()));
    },
  };
}

/** Deterministic small integers, exact in float32 sums: value depends on (rank, index). */
export function intData(rank: number, length: number): Float32Array {
  const a = new Float32Array(length);
  for (let i = 0; i < length; i++) a[i] = ((i * 7 + rank * 13) % 97) - 48;
  return a;
}

/** The exact sum of intData over `world` ranks. */
export function intSum(world: number, length: number): Float32Array {
  const a = new Float32Array(length);
  for (let r = 0; r < world; r++) {
    const d = intData(r, length);
    for (let i = 0; i < length; i++) a[i] = a[i]! + d[i]!;
  }
  return a;
}

/** Deterministic pseudo-random floats in [-1, 1) per (seed, rank). */
export function floatData(seed: number, rank: number, length: number): Float32Array {
  const a = new Float32Array(length);
  let x = (seed * 2654435761 + rank * 40503 + 1) >>> 0;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    a[i] = x / 2147483648 - 1;
  }
  return a;
}

export function bytesOf(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** A predicate for assert.rejects/throws: a RingError with this code. */
export function isCode(code: RingErrorCode): (err: unknown) => boolean {
  return (err: unknown) => err instanceof RingError && err.code === code;
}
