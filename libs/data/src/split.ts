/**
 * Deterministic train/validation/test splits. Sizes are exact and global:
 * test = round(n * test), validation = round(n * validation), train = the rest.
 *
 * Classification splits are stratified: each held-out part takes from every class in
 * proportion to the class's size. Per-class quotas are floors of the exact shares, and
 * the rows left over go to the classes with the largest fractional parts (ties to the
 * lower class index), so a 150-row, 3-class set split 20% gets 10 of each class.
 * Which rows of a class are held out is decided by a permutation keyed by
 * (seed, Stream.split, 1 + class); regression splits use one permutation keyed by
 * (seed, Stream.split, 0). Each part lists its rows in ascending order, so tables
 * keep the source's order; training order comes from epochPermutation, not from here.
 */
import { checkInt, DataError } from './errors.js';
import { permutation, Stream } from './random.js';
import type { SplitSpec, Table } from './types.js';

export interface SplitIndices {
  readonly train: Uint32Array;
  readonly validation: Uint32Array;
  readonly test: Uint32Array;
}

function checkSpec(spec: SplitSpec, ownTest: boolean): void {
  const bad = (what: string) => new DataError('DATA_SPLIT_INVALID', `split ${JSON.stringify(spec)}: ${what}`);
  const frac = (name: 'validation' | 'test') => {
    const v = spec[name];
    if (typeof v !== 'number' || !(v >= 0 && v < 1)) throw bad(`${name} must be a fraction in [0, 1)`);
  };
  frac('validation');
  if (!ownTest) {
    frac('test');
    if (spec.validation + spec.test >= 1) throw bad('validation + test must be below 1');
  }
  if (!Number.isInteger(spec.seed) || spec.seed < 0 || spec.seed > 0xffffffff) throw bad('seed must be an integer in [0, 2^32)');
}

/**
 * Splits rows 0..n-1. `labels` are class indices for a stratified split, or null for
 * a plain shuffled one. With `ownTest` (the source has its own test rows) only
 * validation is carved out and `test` is empty.
 */
export function splitIndices(n: number, labels: Int32Array | null, spec: SplitSpec, ownTest = false): SplitIndices {
  checkInt('n', n, 0);
  checkSpec(spec, ownTest);
  const nTest = ownTest ? 0 : Math.round(n * spec.test);
  const nVal = Math.round(n * spec.validation);
  if (n - nTest - nVal < 1) {
    throw new DataError('DATA_SPLIT_INVALID', `split of ${n} rows into ${nVal} validation and ${nTest} test leaves no training rows`);
  }
  const groups = labels === null ? [permutation(n, spec.seed, Stream.split, 0)] : classGroups(labels, spec.seed);
  const sizes = groups.map((g) => g.length);
  const testQuota = quotas(sizes, nTest, sizes);
  const valQuota = quotas(sizes, nVal, sizes.map((s, c) => s - testQuota[c]!));
  const test: number[] = [];
  const validation: number[] = [];
  const train: number[] = [];
  groups.forEach((rows, c) => {
    const t = testQuota[c]!;
    const v = t + valQuota[c]!;
    for (let i = 0; i < rows.length; i++) (i < t ? test : i < v ? validation : train).push(rows[i]!);
  });
  const sorted = (a: number[]) => Uint32Array.from(a).sort();
  return { train: sorted(train), validation: sorted(validation), test: sorted(test) };
}

/** Each class's rows, in an order shuffled by a permutation keyed by the class. */
function classGroups(labels: Int32Array, seed: number): Uint32Array[] {
  let k = 0;
  for (const l of labels) {
    if (l < 0) throw new DataError('DATA_ARGUMENT_INVALID', `class index ${l} is negative`);
    k = Math.max(k, l + 1);
  }
  const members: number[][] = Array.from({ length: k }, () => []);
  labels.forEach((l, row) => members[l]!.push(row));
  return members.map((rows, c) => {
    const order = permutation(rows.length, seed, Stream.split, 1 + c);
    return Uint32Array.from(order, (i) => rows[i]!);
  });
}

/**
 * Splits `total` over groups in proportion to `sizes` (largest remainder), never
 * giving a group more than its `cap`. The caps always leave room: floor shares fit
 * under them, and total <= sum(caps) holds because train keeps at least one row.
 */
function quotas(sizes: readonly number[], total: number, caps: readonly number[]): number[] {
  const n = sizes.reduce((a, b) => a + b, 0);
  if (n === 0 || total === 0) return sizes.map(() => 0);
  const exact = sizes.map((s) => (s * total) / n);
  const q = exact.map((e, c) => Math.min(Math.floor(e), caps[c]!));
  let left = total - q.reduce((a, b) => a + b, 0);
  const order = exact.map((e, c) => c).sort((a, b) => exact[b]! - Math.floor(exact[b]!) - (exact[a]! - Math.floor(exact[a]!)) || a - b);
  // Usually one pass; more only when caps bite (tiny classes with large fractions).
  while (left > 0) {
    let gave = false;
    for (const c of order) {
      if (left > 0 && q[c]! < caps[c]!) {
        q[c]!++;
        left--;
        gave = true;
      }
    }
    if (!gave) throw new Error('split quotas: caps leave no room (unreachable)');
  }
  return q;
}

/** A new Table with the given rows, in the given order; features and labels are copied. */
export function takeRows(table: Table, indices: ArrayLike<number>): Table {
  const { cols, features } = table;
  const k = indices.length;
  const out = new Float32Array(k * cols);
  const labels = table.labels instanceof Int32Array ? new Int32Array(k) : new Float32Array(k);
  for (let i = 0; i < k; i++) {
    const r = indices[i]!;
    if (!(r >= 0 && r < table.rows && Number.isInteger(r))) {
      throw new DataError('DATA_ARGUMENT_INVALID', `row index ${r} is outside the table's ${table.rows} rows`);
    }
    out.set(features.subarray(r * cols, (r + 1) * cols), i * cols);
    labels[i] = table.labels[r]!;
  }
  return { ...table, features: out, rows: k, labels };
}

/** Splits loaded data: validation (and test, unless the source brought its own) from train. */
export function splitTables(loaded: { readonly train: Table; readonly test?: Table }, spec: SplitSpec): { train: Table; validation: Table; test: Table } {
  const { train } = loaded;
  const labels = train.task.kind === 'classification' ? (train.labels as Int32Array) : null;
  const idx = splitIndices(train.rows, labels, spec, loaded.test !== undefined);
  return {
    train: takeRows(train, idx.train),
    validation: takeRows(train, idx.validation),
    test: loaded.test ?? takeRows(train, idx.test),
  };
}
