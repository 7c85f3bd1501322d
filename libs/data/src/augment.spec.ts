import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { augment, augmentEnabled, sampleShift } from './augment.js';
import { dataError } from './testing.js';

const H = 6;
const W = 7;
const COLS = H * W;

/** A batch of images with background `bg` and a distinct value at every pixel of a 2x3 block. */
function images(k: number, bg = 0): Float32Array {
  const x = new Float32Array(k * COLS).fill(bg);
  for (let i = 0; i < k; i++) for (let y = 2; y < 4; y++) for (let c = 2; c < 5; c++) x[i * COLS + y * W + c] = 10 * y + c;
  return x;
}

function bytes(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

describe('sampleShift', () => {
  it('covers [-k, k] in both directions, keyed by the sample', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 500; i++) {
      const [dx, dy] = sampleShift(3, 1, i, 2);
      assert.ok(Math.abs(dx) <= 2 && Math.abs(dy) <= 2);
      seen.add(`${dx},${dy}`);
    }
    assert.equal(seen.size, 25);
    assert.deepEqual(sampleShift(3, 1, 42, 2), sampleShift(3, 1, 42, 2));
  });
});

describe('augment', () => {
  it('moves a known pattern by exactly (dx, dy), filling with the background', () => {
    const bg = -0.42;
    const indices = Uint32Array.from({ length: 40 }, (_, i) => 1000 + i);
    const x = images(indices.length, bg);
    augment(x, indices, COLS, { shift: 2 }, { seed: 9, epoch: 4 }, { height: H, width: W });
    let moved = 0;
    indices.forEach((index, i) => {
      const [dx, dy] = sampleShift(9, 4, index, 2);
      if (dx !== 0 || dy !== 0) moved++;
      for (let y = 0; y < H; y++) {
        for (let c = 0; c < W; c++) {
          const sy = y - dy;
          const sc = c - dx;
          const inBlock = sy >= 2 && sy < 4 && sc >= 2 && sc < 5;
          assert.equal(x[i * COLS + y * W + c], inBlock ? 10 * sy + sc : Math.fround(bg), `sample ${index} (${dx},${dy}) at ${y},${c}`);
        }
      }
    });
    assert.ok(moved > 30);
  });

  it('fills what a shift uncovers with the old value of pixel 0', () => {
    // Pixel 0 is 5, everything else 1: after a move right, the uncovered left column is 5.
    const index = [...Array(100).keys()].find((i) => sampleShift(0, 0, i, 1)[0] === 1 && sampleShift(0, 0, i, 1)[1] === 0)!;
    const x = new Float32Array(COLS).fill(1);
    x[0] = 5;
    augment(x, Uint32Array.of(index), COLS, { shift: 1 }, { seed: 0, epoch: 0 }, { height: H, width: W });
    for (let y = 0; y < H; y++) assert.equal(x[y * W], 5);
    assert.equal(x[1], 5, 'old pixel 0 moved to pixel 1');
    assert.equal(x[W + 1], 1);
  });

  it('adds N(0, noise^2) noise, same key same bytes, different sample different noise', () => {
    const indices = Uint32Array.from({ length: 50 }, (_, i) => i);
    const a = new Float32Array(50 * COLS);
    const b = new Float32Array(50 * COLS);
    augment(a, indices, COLS, { noise: 0.5 }, { seed: 1, epoch: 2 });
    augment(b, indices, COLS, { noise: 0.5 }, { seed: 1, epoch: 2 });
    assert.ok(bytes(a).equals(bytes(b)));
    const mean = a.reduce((s, v) => s + v, 0) / a.length;
    const std = Math.sqrt(a.reduce((s, v) => s + v * v, 0) / a.length);
    assert.ok(Math.abs(mean) < 0.03 && Math.abs(std - 0.5) < 0.02, `mean ${mean} std ${std}`);
    assert.ok(!bytes(a.subarray(0, COLS)).equals(bytes(a.subarray(COLS, 2 * COLS))), 'samples 0 and 1 differ');
    const c = new Float32Array(50 * COLS);
    augment(c, indices, COLS, { noise: 0.5 }, { seed: 1, epoch: 3 });
    assert.ok(!bytes(a).equals(bytes(c)), 'epochs differ');
  });

  it('does not depend on where in the batch (or on which worker) a sample is', () => {
    const spec = { noise: 0.1, shift: 1 };
    const key = { seed: 4, epoch: 0 };
    const whole = images(4);
    augment(whole, Uint32Array.of(7, 8, 9, 10), COLS, spec, key, { height: H, width: W });
    const part = images(2);
    augment(part, Uint32Array.of(9, 10), COLS, spec, key, { height: H, width: W });
    assert.ok(bytes(part).equals(bytes(whole.subarray(2 * COLS))));
  });

  it('shifts before adding noise', () => {
    const shape = { height: H, width: W };
    const key = { seed: 2, epoch: 1 };
    const idx = Uint32Array.of(3, 4, 5);
    const both = images(3);
    augment(both, idx, COLS, { noise: 0.3, shift: 2 }, key, shape);
    const steps = images(3);
    augment(steps, idx, COLS, { shift: 2 }, key, shape);
    augment(steps, idx, COLS, { noise: 0.3 }, key, shape);
    assert.ok(bytes(both).equals(bytes(steps)));
  });

  it('leaves data alone when disabled and rejects bad specs', () => {
    const x = images(1);
    const before = Float32Array.from(x);
    augment(x, Uint32Array.of(0), COLS, {}, { seed: 0, epoch: 0 });
    assert.deepEqual(x, before);
    assert.equal(augmentEnabled({}), false);
    assert.equal(augmentEnabled({ shift: 1 }), true);
    const one = Uint32Array.of(0);
    assert.throws(() => augment(x, one, COLS, { shift: 1 }, { seed: 0, epoch: 0 }), dataError('DATA_AUGMENT_INVALID', { message: /image data/ }));
    assert.throws(() => augment(x, one, COLS, { shift: 1 }, { seed: 0, epoch: 0 }, { height: 5, width: 5 }), dataError('DATA_AUGMENT_INVALID'));
    assert.throws(() => augment(x, one, COLS, { shift: 1.5 }, { seed: 0, epoch: 0 }, { height: H, width: W }), dataError('DATA_AUGMENT_INVALID'));
    assert.throws(() => augment(x, one, COLS, { noise: -1 }, { seed: 0, epoch: 0 }), dataError('DATA_AUGMENT_INVALID'));
    assert.throws(() => augment(x, Uint32Array.of(0, 1), COLS, { noise: 1 }, { seed: 0, epoch: 0 }), dataError('DATA_AUGMENT_INVALID'));
  });
});
