/**
 * Dropout masks keyed by (seed, step, global sample index, layer, unit). A sample's mask
 * does not depend on which worker holds it or where it sits in the local batch, so a
 * batch split across any number of workers drops exactly the units a single worker
 * would (invariant 1 of DESIGN.md). Kept units are scaled by 1 / (1 - rate)
 * ("inverted dropout"), so inference needs no rescaling.
 */
import { mix32, Stream, toUnit } from '@ringtrain/data';

export interface DropoutKey {
  readonly seed: number;
  readonly step: number;
}

/** Fills `out` (rows x units) with 0 or 1 / (1 - rate). */
export function dropoutMask(
  out: Float32Array,
  indices: Uint32Array,
  units: number,
  rate: number,
  layer: number,
  key: DropoutKey,
): Float32Array {
  const keep = 1 - rate;
  const scale = 1 / keep;
  for (let r = 0; r < indices.length; r++) {
    const rowKey = mix32(key.seed, Stream.dropout, key.step, indices[r]!, layer);
    const base = r * units;
    for (let j = 0; j < units; j++) {
      out[base + j] = toUnit(mix32(rowKey, j)) < keep ? scale : 0;
    }
  }
  return out;
}
