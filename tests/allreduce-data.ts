/** Deterministic inputs for the cross-process all-reduce tests, and checks of a result against them. */
import { createHash } from 'node:crypto';

export type DataKind = 'int' | 'float';

/** Rank `rank`'s input: small integers (sums exact in float32) or pseudo-random floats in [-1, 1). */
export function input(kind: DataKind, seed: number, rank: number, length: number): Float32Array {
  const a = new Float32Array(length);
  let x = (seed * 0x9e3779b1 + (rank + 1) * 0x85ebca6b) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x = Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) >>> 0;
    x = (x ^ (x >>> 12)) >>> 0;
    a[i] = kind === 'int' ? (x % 201) - 100 : x / 2147483648 - 1;
  }
  return a;
}

/** Whether `got` is the sum over `world` ranks: exact for integers, within float32 rounding of a float64 reference otherwise. */
export function checkSum(kind: DataKind, seed: number, world: number, got: Float32Array): boolean {
  const n = got.length;
  const sum = new Float64Array(n);
  const abs = new Float64Array(n);
  for (let r = 0; r < world; r++) {
    const d = input(kind, seed, r, n);
    for (let i = 0; i < n; i++) {
      sum[i] = sum[i]! + d[i]!;
      abs[i] = abs[i]! + Math.abs(d[i]!);
    }
  }
  for (let i = 0; i < n; i++) {
    const err = Math.abs(got[i]! - sum[i]!);
    if (kind === 'int' ? err !== 0 : err > world * 2 ** -23 * abs[i]! + 1e-30) return false;
  }
  return true;
}

export function digest(a: Float32Array): string {
  return createHash('sha256').update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest('hex');
}
