/**
 * The initial parameters of a model, computable in any range of the flat layout: every
 * value is a pure function of (seed, layer, index), so a coordinator can stream a fresh
 * model's 400 MB in chunks without holding it, and Mlp.create fills the whole array with
 * the same bits.
 *
 * Glorot-uniform kernels and zero biases (the Keras defaults), drawn from the keyed RNG:
 * the same seed gives the same model on every worker and backend.
 */
import { mix32, Stream, toUnit } from '@ringtrain/data';
import { type Architecture, layerWidths, paramLayout } from './architecture.js';

/** Writes parameters [offset, offset + out.length) of a fresh `arch` model with `seed` into `out`. */
export function initialParamsInto(arch: Architecture, seed: number, offset: number, out: Float32Array): Float32Array {
  const widths = layerWidths(arch);
  const end = offset + out.length;
  for (const slot of paramLayout(arch).slots) {
    const from = Math.max(offset, slot.offset);
    const to = Math.min(end, slot.offset + slot.size);
    if (from >= to) continue;
    if (slot.kind === 'bias') {
      out.fill(0, from - offset, to - offset);
      continue;
    }
    const limit = Math.sqrt(6 / (widths[slot.layer]! + widths[slot.layer + 1]!));
    for (let p = from; p < to; p++) out[p - offset] = (2 * toUnit(mix32(seed, Stream.init, slot.layer, p - slot.offset)) - 1) * limit;
  }
  return out;
}
