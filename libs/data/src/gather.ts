/**
 * From row indices to the arrays a training step consumes. A batch is copied out of
 * the table once per step; passing the previous batch's buffers back in as `out`
 * makes the steady state allocation-free (the buffers are reused when large enough,
 * and the result holds views of the right length into them).
 */
import { DataError } from './errors.js';
import type { Table } from './types.js';

export interface Batch {
  /** k x cols, row-major. */
  readonly x: Float32Array;
  /** Class indices (Int32Array) or regression targets (Float32Array), as in the table. */
  readonly labels: Int32Array | Float32Array;
  /** The global sample indices the rows came from (keys for augmentation and dropout). */
  readonly indices: Uint32Array;
  /** Number of rows, k. */
  readonly rows: number;
}

export interface BatchBuffers {
  readonly x?: Float32Array;
  readonly labels?: Int32Array | Float32Array;
}

function fits<T extends Float32Array | Int32Array>(buf: unknown, kind: new (n: number) => T, length: number): T | undefined {
  return buf instanceof kind && buf.length >= length ? (buf.subarray(0, length) as T) : undefined;
}

/** Copies the rows `indices` of `table` into a batch, reusing `out`'s buffers when they fit. */
export function gatherBatch(table: Table, indices: Uint32Array, out: BatchBuffers = {}): Batch {
  const { cols, features, rows } = table;
  const k = indices.length;
  const x = fits(out.x, Float32Array, k * cols) ?? new Float32Array(k * cols);
  const labelKind = table.labels instanceof Int32Array ? Int32Array : Float32Array;
  const labels = fits<Int32Array | Float32Array>(out.labels, labelKind, k) ?? new labelKind(k);
  for (let i = 0; i < k; i++) {
    const r = indices[i]!;
    if (r >= rows) throw new DataError('DATA_ARGUMENT_INVALID', `row index ${r} is outside the table's ${rows} rows`);
    const src = r * cols;
    const dst = i * cols;
    // TypedArray.set has a fixed cost that dominates for narrow rows such as Iris.
    if (cols < 32) for (let c = 0; c < cols; c++) x[dst + c] = features[src + c]!;
    else x.set(features.subarray(src, src + cols), dst);
    labels[i] = table.labels[r]!;
  }
  return { x, labels, indices, rows: k };
}

/** One-hot rows (labels.length x numClasses) for class indices; reuses `out` when it fits. */
export function oneHot(labels: Int32Array, numClasses: number, out?: Float32Array): Float32Array {
  if (!Number.isInteger(numClasses) || numClasses < 1) {
    throw new DataError('DATA_ARGUMENT_INVALID', `numClasses must be a positive integer, got ${numClasses}`);
  }
  const y = fits(out, Float32Array, labels.length * numClasses) ?? new Float32Array(labels.length * numClasses);
  y.fill(0);
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i]!;
    if (!(l >= 0 && l < numClasses)) throw new DataError('DATA_ARGUMENT_INVALID', `label ${l} at position ${i} is not a class index below ${numClasses}`);
    y[i * numClasses + l] = 1;
  }
  return y;
}
