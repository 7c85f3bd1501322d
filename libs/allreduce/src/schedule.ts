/**
 * Offsets and sizes for the ring collectives, as small pure functions.
 *
 * A buffer of `length` elements is cut into `world` contiguous chunks whose sizes
 * differ by at most one (the first `length % world` chunks get the extra element).
 * Each chunk is cut into segments of at most `segment` elements; a chunk always has
 * at least one segment, possibly empty, so that every chunk sends at least one frame
 * and the data dependencies that make a collective a barrier hold for any length.
 *
 * Reduce-scatter step s (0 <= s < world - 1): rank r sends chunk (r - s) mod world to
 * its successor and receives chunk (r - s - 1) mod world from its predecessor. After the
 * last step rank r holds chunk (r + 1) mod world fully reduced. All-gather step s: rank
 * r sends chunk (r + 1 - s) mod world and receives chunk (r - s) mod world.
 *
 * The ring needs only the receiving side: a rank sends its own chunk r at step 0 and
 * otherwise forwards what it received. The sending side is schedule.spec.ts's oracle.
 */

export function mod(a: number, n: number): number {
  const m = a % n;
  return m < 0 ? m + n : m;
}

/** Start of chunk `chunk` when `length` elements are split over `world` chunks. */
export function chunkStart(length: number, world: number, chunk: number): number {
  return chunk * Math.floor(length / world) + Math.min(chunk, length % world);
}

/** Length of chunk `chunk` when `length` elements are split over `world` chunks. */
export function chunkLength(length: number, world: number, chunk: number): number {
  return Math.floor(length / world) + (chunk < length % world ? 1 : 0);
}

/** Segments in a run of `length` elements cut at `segment` elements; at least one. */
export function segmentCount(length: number, segment: number): number {
  return length === 0 ? 1 : Math.ceil(length / segment);
}

/** Elements in segment `index` of a run of `length` elements. */
export function segmentLength(length: number, segment: number, index: number): number {
  return Math.max(0, Math.min(segment, length - index * segment));
}

/** The chunk rank `rank` receives (and adds to) at reduce-scatter step `step`. */
export function reduceScatterRecvChunk(rank: number, world: number, step: number): number {
  return mod(rank - step - 1, world);
}

/** The chunk rank `rank` receives at all-gather step `step`. */
export function allGatherRecvChunk(rank: number, world: number, step: number): number {
  return mod(rank - step, world);
}

/** Bytes each rank sends in one all-reduce of `bytes` bytes; the NCCL "bus" factor. */
export function busBytes(bytes: number, world: number): number {
  return world <= 1 ? 0 : (2 * (world - 1) * bytes) / world;
}
