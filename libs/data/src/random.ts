/**
 * Counter-based randomness. Every random number in training is a pure function of a
 * key such as (seed, stream, epoch, global sample index, unit): no generator state is
 * carried between calls, so a number does not depend on which worker draws it, in
 * which order, or whether the run was resumed. This is what makes invariant 1 of
 * DESIGN.md hold for shuffling, dropout and augmentation alike.
 *
 * mix32 is a murmur3-style finalizer chain over 32-bit words: cheap, and good enough
 * statistically for masks, shifts and noise (it is not cryptographic).
 */

/** Streams keep the uses of one seed apart. */
export const Stream = {
  split: 1,
  permutation: 2,
  dropout: 3,
  noise: 4,
  shift: 5,
  init: 6,
  synthetic: 7,
} as const;

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Hash of a sequence of integers (each taken modulo 2^32) to a uint32. */
export function mix32(a: number, b = 0, c = 0, d = 0, e = 0): number {
  let h = fmix((a ^ 0x9e3779b9) >>> 0);
  h = fmix((h ^ Math.imul(b ^ 0x85ebca6b, 0x27d4eb2f)) >>> 0);
  h = fmix((h ^ Math.imul(c ^ 0xc2b2ae35, 0x165667b1)) >>> 0);
  h = fmix((h ^ Math.imul(d ^ 0x27d4eb2f, 0x9e3779b1)) >>> 0);
  h = fmix((h ^ Math.imul(e ^ 0x165667b1, 0x85ebca77)) >>> 0);
  return h;
}

/** A uniform number in [0, 1) from a hash. */
export function toUnit(h: number): number {
  return h / 4294967296;
}

/** A standard normal number from two hashes (Box-Muller). */
export function toGaussian(h1: number, h2: number): number {
  const u1 = (h1 + 1) / 4294967297; // in (0, 1): log is finite
  const u2 = h2 / 4294967296;
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

/** A deterministic permutation of 0..n-1 keyed by (seed, stream, key). */
export function permutation(n: number, seed: number, stream: number, key: number): Uint32Array {
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  // Fisher-Yates; draw i picks from [0, i] using the hash of (seed, stream, key, i).
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(toUnit(mix32(seed, stream, key, i)) * (i + 1));
    const t = out[i]!;
    out[i] = out[j]!;
    out[j] = t;
  }
  return out;
}
