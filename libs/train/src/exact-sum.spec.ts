/**
 * ExactSum: integers on a shared power-of-two scale sum to the same bits whatever the
 * partition into workers and the order of the additions, close to the true sum; the
 * scale never lets a sum reach 2^53; an element past the bound is seen.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ExactSum, exponentAbove, scaleExponent } from './exact-sum.js';

/** Deterministic float32 "gradients": mixed signs and magnitudes over 12 binades. */
function gradients(seed: number, length: number): Float32Array {
  const out = new Float32Array(length);
  let x = seed >>> 0 || 1;
  const next = (): number => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
  for (let i = 0; i < length; i++) out[i] = (next() - 0.5) * 2 ** Math.floor(next() * 12 - 8);
  return out;
}

const bytes = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe('exact sum', () => {
  it('exponentAbove is the smallest e with |x| < 2^e, at and around powers of two, tiny and huge', () => {
    for (const [x, e] of [
      [1, 1],
      [0.999999, 0],
      [2, 2],
      [3, 2],
      [-4, 3],
      [0.5, 0],
      [0.75, 0],
      [2 ** -149, -148],
      [3.4028234663852886e38, 128],
      [2 ** 60 + 2 ** 20, 61],
    ] as const) {
      assert.equal(exponentAbove(x), e, `x = ${x}`);
    }
  });

  it('a scale keeps any sum of `parts` elements under the bound below 2^52', () => {
    for (const bound of [1e-30, 3e-8, 0.5, 1, 1.5, 1000, 2 ** 40]) {
      for (const parts of [1, 2, 3, 16, 17, 1000]) {
        const s = scaleExponent(bound, parts);
        const largest = 2 ** exponentAbove(bound) * 2 ** s; // an element just under 2^e, scaled
        assert.ok(parts * largest <= 2 ** 52, `bound ${bound}, parts ${parts}: ${parts} x ${largest}`);
        assert.ok(2 * parts * largest > 2 ** 51, `bound ${bound}, parts ${parts}: the scale is not needlessly coarse`);
      }
    }
    assert.throws(() => scaleExponent(0, 4), RangeError);
    assert.throws(() => scaleExponent(1, 0), RangeError);
    assert.throws(() => scaleExponent(Number.NaN, 4), RangeError);
  });

  it('16 micro-batches summed by 1, 2, 3, 5 or 16 workers, in any order: the same bits, within the scale\'s resolution of the true sum', () => {
    const parts = 16;
    const length = 1000;
    const micro = Array.from({ length: parts }, (_, k) => gradients(k + 1, length));
    let bound = 0;
    for (const g of micro) for (const v of g) bound = Math.max(bound, Math.abs(v));
    const scale = scaleExponent(bound, parts);
    const results: Buffer[] = [];
    for (const world of [1, 2, 3, 5, 16]) {
      for (const reversed of [false, true]) {
        // Worker w takes a contiguous run of micro-batches; the "ring" adds the workers' sums in some order.
        const sums = Array.from({ length: world }, (_, w) => {
          const sum = new ExactSum(new Float64Array(length));
          sum.begin(bound, parts);
          const from = Math.floor((w * parts) / world);
          const to = Math.floor(((w + 1) * parts) / world);
          const mine = micro.slice(from, to);
          for (const g of reversed ? mine.reverse() : mine) assert.ok(sum.fits(sum.add(g)));
          return sum;
        });
        const total = sums[0]!;
        for (const other of reversed ? sums.slice(1).reverse() : sums.slice(1)) for (let i = 0; i < length; i++) total.ints[i] = total.ints[i]! + other.ints[i]!;
        const out = new Float32Array(length);
        total.readInto(out);
        results.push(Buffer.from(bytes(out)));
      }
    }
    for (const r of results) assert.ok(r.equals(results[0]!), 'the same bits for every partition and order');
    // Each micro-batch's element is off by at most half a unit of 2^-scale; then one float32 rounding.
    const out = new Float32Array(results[0]!.buffer, results[0]!.byteOffset, length);
    for (let i = 0; i < length; i++) {
      let exact = 0;
      for (const g of micro) exact += g[i]!;
      const tolerance = (parts / 2) * 2 ** -scale + Math.abs(exact) * 2 ** -24;
      assert.ok(Math.abs(out[i]! - exact) <= tolerance, `element ${i}: ${out[i]} against ${exact}`);
    }
  });

  it('an element at or above the bound does not fit; the largest finite |element| is returned', () => {
    const sum = new ExactSum(new Float64Array(4));
    sum.begin(1.5, 4); // elements below 2
    const max = sum.add(Float32Array.from([0.5, -1.75, 1, Infinity]));
    assert.equal(max, 1.75);
    assert.ok(sum.fits(max));
    assert.ok(!sum.fits(2));
    assert.ok(!sum.fits(sum.add(Float32Array.from([0, -2, 0, 0]))));
    const out = new Float32Array(4);
    sum.readInto(out);
    assert.equal(out[3], Infinity, 'a non-finite element stays non-finite');
  });
});
