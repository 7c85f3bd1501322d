/**
 * Epoch order and sharding: invariant 1 of DESIGN.md as small pure functions.
 *
 * The job fixes the global batch size B. Epoch e visits the training rows in the order
 * perm = epochPermutation(n, seed, e); step s takes positions [s*B, min((s+1)*B, n))
 * of it, so the last batch of an epoch may be partial. A world of W workers splits
 * that slice into W contiguous parts by rank; sizes differ by at most one and the
 * earlier ranks get the extra rows (a batch smaller than W leaves the last ranks with
 * none). Concatenating the ranks' parts in rank order gives back the single-worker
 * batch, so the set of samples in a step, and hence the summed gradient, does not
 * depend on W, and everything here is a function of (n, B, seed, epoch, step, rank,
 * world) with no coordinator round trip.
 *
 * With micro-batches of m rows (the exact reduction, libs/train's exact-sum.ts), the
 * batch is cut into ceil(rows / m) micro-batches, each m rows but the last, and the
 * ranks split whole micro-batches instead of rows: a micro-batch, a function of the
 * step alone, is always computed whole by one worker.
 */
import { checkInt } from './errors.js';
import { permutation, Stream } from './random.js';

/** The order in which epoch `epoch` visits rows 0..n-1. A fresh array each call. */
export function epochPermutation(n: number, seed: number, epoch: number): Uint32Array {
  checkInt('n', n, 0);
  checkInt('seed', seed, 0, 0xffffffff);
  checkInt('epoch', epoch, 0);
  return permutation(n, seed, Stream.permutation, epoch);
}

/** Steps in one epoch: ceil(n / batchSize); the last batch may be partial. */
export function stepsPerEpoch(n: number, batchSize: number): number {
  checkInt('n', n, 0);
  checkInt('batchSize', batchSize, 1);
  return Math.ceil(n / batchSize);
}

/** [start, end) positions of step `step`'s batch within the epoch's permutation. */
export function batchRange(n: number, batchSize: number, step: number): [number, number] {
  const steps = stepsPerEpoch(n, batchSize);
  checkInt('step', step, 0, Math.max(0, steps - 1));
  const start = step * batchSize;
  return [Math.min(start, n), Math.min(start + batchSize, n)];
}

/** [start, end) of rank's contiguous part of `length` items split over `world` ranks. */
export function rankRange(length: number, rank: number, world: number): [number, number] {
  checkInt('length', length, 0);
  checkInt('world', world, 1);
  checkInt('rank', rank, 0, world - 1);
  const base = Math.floor(length / world);
  const extra = length % world;
  const start = rank * base + Math.min(rank, extra);
  return [start, start + base + (rank < extra ? 1 : 0)];
}

export interface ShardKey {
  /** Training rows. */
  readonly n: number;
  /** Global batch size B, the same for every world size. */
  readonly batchSize: number;
  readonly seed: number;
  readonly epoch: number;
  readonly step: number;
  readonly rank: number;
  readonly world: number;
  /** Rows per micro-batch: ranks then take whole micro-batches (microBatchRange). */
  readonly microBatch?: number;
}

/** Micro-batches of `rows` rows at `microBatch` rows each: ceil(rows / microBatch). */
export function microBatchCount(rows: number, microBatch: number): number {
  checkInt('rows', rows, 0);
  checkInt('microBatch', microBatch, 1);
  return Math.ceil(rows / microBatch);
}

/**
 * [first, end) of the micro-batches rank `rank` computes of a batch of `rows` rows, and
 * its rows' [start, end) positions within the batch.
 */
export function microBatchRange(rows: number, microBatch: number, rank: number, world: number): { first: number; end: number; rows: [number, number] } {
  const [first, end] = rankRange(microBatchCount(rows, microBatch), rank, world);
  return { first, end, rows: [Math.min(rows, first * microBatch), Math.min(rows, end * microBatch)] };
}

// One cached permutation: a worker asks for the same epoch step after step, and
// recomputing 60k hashes per step would be waste. Callers get copies, so the cache
// cannot be mutated from outside and the functions stay pure.
let cached: { n: number; seed: number; epoch: number; perm: Uint32Array } | undefined;

function cachedPermutation(n: number, seed: number, epoch: number): Uint32Array {
  if (cached === undefined || cached.n !== n || cached.seed !== seed || cached.epoch !== epoch) {
    cached = { n, seed, epoch, perm: epochPermutation(n, seed, epoch) };
  }
  return cached.perm;
}

/** The global sample indices (row numbers of the train table) this rank processes at this step. */
export function batchIndices(key: ShardKey): Uint32Array {
  const { n, batchSize, seed, epoch, step, rank, world, microBatch } = key;
  const [bStart, bEnd] = batchRange(n, batchSize, step);
  const [rStart, rEnd] = microBatch === undefined ? rankRange(bEnd - bStart, rank, world) : microBatchRange(bEnd - bStart, microBatch, rank, world).rows;
  const perm = cachedPermutation(n, seed, epoch);
  return perm.slice(bStart + rStart, bStart + rEnd);
}
