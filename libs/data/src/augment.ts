/**
 * Data augmentation on a gathered batch, in place. Every random number is keyed by
 * (seed, stream, epoch, global sample index, ...), never by rank or position in the
 * batch, so a sample gets the same augmentation whichever worker processes it
 * (invariant 1 of DESIGN.md). A sample is seen once per epoch, so (epoch, index)
 * identifies one visit.
 *
 * Shift (image data only): each sample moves by integers dx, dy drawn uniformly from
 * [-k, k], keyed by (seed, Stream.shift, epoch, index); positive dx moves right,
 * positive dy moves down. Pixels uncovered by the move take the value pixel 0 (top
 * left) had before the move. Pixel 0 is background in MNIST-style images, and using
 * its value rather than a literal 0 keeps the fill correct after normalization, where
 * a blank pixel is no longer 0 (it is -mean/std). A constant fill would instead paint
 * visible stripes into standardized images.
 *
 * Noise: every element gets N(0, noise^2) added, keyed by (seed, Stream.noise, epoch,
 * index, element). Shift runs first, so noise is not moved around with the pixels and
 * uncovered pixels get noise too.
 */
import { DataError } from './errors.js';
import { mix32, Stream, toGaussian, toUnit } from './random.js';
import type { AugmentSpec } from './types.js';

export interface AugmentKey {
  readonly seed: number;
  readonly epoch: number;
}

function invalid(what: string): DataError {
  return new DataError('DATA_AUGMENT_INVALID', `augmentation: ${what}`);
}

/** The (dx, dy) by which sample `index` is shifted in `epoch`, each in [-k, k]. */
export function sampleShift(seed: number, epoch: number, index: number, k: number): [number, number] {
  const span = 2 * k + 1;
  const dx = Math.floor(toUnit(mix32(seed, Stream.shift, epoch, index, 0)) * span) - k;
  const dy = Math.floor(toUnit(mix32(seed, Stream.shift, epoch, index, 1)) * span) - k;
  return [dx, dy];
}

/** Whether the spec changes anything; callers can skip augment() otherwise. */
export function augmentEnabled(spec: AugmentSpec): boolean {
  return (spec.noise ?? 0) > 0 || (spec.shift ?? 0) > 0;
}

/**
 * Augments the batch x (indices.length rows of `cols`) in place. `indices` are the
 * global sample indices of the rows, as batchIndices returned them.
 */
export function augment(
  x: Float32Array,
  indices: Uint32Array,
  cols: number,
  spec: AugmentSpec,
  key: AugmentKey,
  imageShape?: { readonly height: number; readonly width: number },
): void {
  const noise = spec.noise ?? 0;
  const shift = spec.shift ?? 0;
  if (!(Number.isFinite(noise) && noise >= 0)) throw invalid(`noise must be a finite number >= 0, got ${noise}`);
  if (!(Number.isInteger(shift) && shift >= 0)) throw invalid(`shift must be an integer >= 0, got ${shift}`);
  if (!Number.isInteger(key.seed) || !Number.isInteger(key.epoch)) throw invalid('seed and epoch must be integers');
  if (x.length < indices.length * cols) throw invalid(`x has ${x.length} values, ${indices.length} rows of ${cols} need ${indices.length * cols}`);
  if (shift > 0) {
    if (imageShape === undefined) throw invalid('shift needs image data (a table with imageShape)');
    if (imageShape.height * imageShape.width !== cols) {
      throw invalid(`image shape ${imageShape.height}x${imageShape.width} does not match ${cols} columns`);
    }
    shiftImages(x, indices, shift, key, imageShape.height, imageShape.width);
  }
  if (noise > 0) addNoise(x, indices, cols, noise, key);
}

function shiftImages(x: Float32Array, indices: Uint32Array, k: number, key: AugmentKey, h: number, w: number): void {
  const cols = h * w;
  const src = new Float32Array(cols);
  for (let i = 0; i < indices.length; i++) {
    const [dx, dy] = sampleShift(key.seed, key.epoch, indices[i]!, k);
    if (dx === 0 && dy === 0) continue;
    const o = i * cols;
    src.set(x.subarray(o, o + cols));
    x.fill(src[0]!, o, o + cols);
    // Destination rows/columns that have a source pixel; everything else keeps the fill.
    const y0 = Math.max(0, dy);
    const y1 = Math.min(h, h + dy);
    const x0 = Math.max(0, dx);
    const x1 = Math.min(w, w + dx);
    for (let y = y0; y < y1; y++) {
      const s = (y - dy) * w - dx;
      x.set(src.subarray(s + x0, s + x1), o + y * w + x0);
    }
  }
}

function addNoise(x: Float32Array, indices: Uint32Array, cols: number, sigma: number, key: AugmentKey): void {
  const { seed, epoch } = key;
  for (let i = 0; i < indices.length; i++) {
    const index = indices[i]!;
    const o = i * cols;
    for (let j = 0; j < cols; j++) {
      const g = toGaussian(mix32(seed, Stream.noise, epoch, index, 2 * j), mix32(seed, Stream.noise, epoch, index, 2 * j + 1));
      x[o + j]! += sigma * g;
    }
  }
}
