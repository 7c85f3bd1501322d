/**
 * The WebAssembly arena: its SIMD add gives the bits of one JavaScript float32 (or
 * float64) add per element, whatever the length and values; its slots are handed out
 * once until given back.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { arenaOf, FrameArena } from './frame-arena.js';
import { addMemory, simdAvailable } from './wasm-add.js';

/** Values that exercise rounding: mixed magnitudes, subnormals, signed zeros, infinities. */
function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let x = seed;
  const next = (): number => ((x = (x * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const special = [0, -0, 1e-45, -1e-45, 1.1754942e-38, 3.4028235e38, -3.4028235e38, Infinity, -Infinity, 16777217];
  for (let i = 0; i < n; i++) {
    const r = next();
    out[i] = r < 0.1 ? special[Math.floor(next() * special.length)]! : (next() - 0.5) * 10 ** Math.floor(next() * 12 - 6);
  }
  return out;
}


describe('frame arena', () => {
  it('this Node has WebAssembly SIMD, so the ring adds there (a regression to JavaScript would only be slower, so it is checked here)', () => {
    assert.equal(simdAvailable(), true);
    assert.notEqual(addMemory(65536), null);
  });

  // float32: the bits of Math.fround(a + b); float64: of a + b. Each array type rounds on store.
  // (typed as one constructor: both take the same arguments, and TypeScript cannot call a union of them)
  for (const Type of [Float32Array, Float64Array] as unknown as Float64ArrayConstructor[]) {
    it(`adds ${Type.name} with the bits of one add per element, for every length 0..70 and values of every magnitude; keep stores the sums too`, () => {
      const size = Type.BYTES_PER_ELEMENT;
      const arena = FrameArena.create(4096, 1)!;
      const asBytes = (a: Float32Array | Float64Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
      for (let n = 0; n <= 70; n++) {
        for (const keep of [false, true]) {
          const frame = arena.take(40 + n * size)!;
          const payload = new Type(frame.buffer, frame.byteOffset + 40, n);
          payload.set(Type.from(values(n, n + 1), (v, i) => v * (1 + i * 1e-9)));
          const d = Type.from(values(n, 1000 + n), (v) => v / 3);
          const before = Type.from(d);
          const expected = Type.from(payload, (p, i) => p + d[i]!);
          arena.add(frame.byteOffset + 40, d, keep);
          assert.ok(asBytes(payload).equals(asBytes(expected)), `n = ${n}`);
          assert.ok(asBytes(d).equals(asBytes(keep ? expected : before)), `n = ${n}, keep ${keep}`);
          arena.give(frame);
        }
      }
    });
  }

  it('hands each slot out once until it is given back, the last given first; refuses frames over a slot and a full arena', () => {
    const arena = FrameArena.create(1000, 3)!;
    assert.equal(arena.slotBytes, 1024, 'slots start on cache lines');
    const [a, b, c] = [arena.take(1000)!, arena.take(10)!, arena.take(500)!];
    assert.deepEqual([a.length, b.length, c.length], [1000, 10, 500]);
    assert.equal(new Set([a.byteOffset, b.byteOffset, c.byteOffset]).size, 3);
    assert.ok([a, b, c].every((f) => arenaOf(f.buffer) === arena));
    assert.equal(arena.take(1), null, 'full');
    arena.give(b);
    assert.equal(arena.take(1025), null, 'over a slot');
    assert.equal(arena.take(8)!.byteOffset, b.byteOffset, 'the slot given back');
    assert.equal(arenaOf(new ArrayBuffer(8)), undefined);
  });

  it('is not made where it would pass 2 GiB, nor for no slots', () => {
    assert.equal(FrameArena.create(100 * 1024 * 1024, 32), null);
    assert.equal(FrameArena.create(1024, 0), null);
  });

  it('refuses an add longer than its stage', () => {
    const arena = FrameArena.create(64, 1)!;
    assert.throws(() => arena.add(0, new Float32Array(17), false), RangeError);
  });
});
