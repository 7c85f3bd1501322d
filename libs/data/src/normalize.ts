/**
 * Per-column normalization. Statistics are fitted on the training split only (fitting
 * on validation or test rows would leak them into training) and stored as plain JSON
 * with the model, so that serving applies exactly the transform training saw.
 *
 * standardize: (x - mean) / std, population std; a constant column's std is stored
 *              as 1, so it maps to 0 instead of dividing by zero.
 * minmax:      (x - min) / (max - min); a constant column's range counts as 1.
 * none:        identity; records the column count so a mismatch is still caught.
 * Sums are accumulated in float64: float32 sums over 60k rows lose digits.
 *
 * Image data (a table with imageShape) gets one statistic for all pixels, repeated per
 * column: a pixel means the same thing wherever it sits, and shift augmentation moves
 * normalized pixels between columns, which is only right if every column is scaled
 * alike (and then the background fill of augment.ts is the normalized background).
 */
import { DataError } from './errors.js';
import type { NormalizeMethod, NormStats, Table } from './types.js';

const METHODS: readonly NormalizeMethod[] = ['standardize', 'minmax', 'none'];

function invalid(what: string): DataError {
  return new DataError('DATA_NORMALIZE_INVALID', `normalization: ${what}`);
}

export function fitNormalizer(table: Table, method: NormalizeMethod): NormStats {
  const { rows, cols, features } = table;
  if (!METHODS.includes(method)) throw invalid(`unknown method ${JSON.stringify(method)}; expected ${METHODS.join(', ')}`);
  if (method === 'none') return { method, cols };
  if (rows === 0) throw invalid('cannot fit statistics on a table with no rows');
  if (table.imageShape) return pooled(features, rows * cols, cols, method);
  if (method === 'minmax') {
    const min = new Array<number>(cols).fill(Infinity);
    const max = new Array<number>(cols).fill(-Infinity);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const v = features[r * cols + c]!;
        if (v < min[c]!) min[c] = v;
        if (v > max[c]!) max[c] = v;
      }
    }
    return { method, min, max };
  }
  const sum = new Float64Array(cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) sum[c]! += features[r * cols + c]!;
  const mean = Array.from(sum, (s) => s / rows);
  // Two passes: the one-pass E[x^2] - E[x]^2 cancels badly for large, tight values.
  const sq = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const d = features[r * cols + c]! - mean[c]!;
      sq[c]! += d * d;
    }
  }
  const std = Array.from(sq, (s) => {
    const v = Math.sqrt(s / rows);
    return v > 0 ? v : 1;
  });
  return { method, mean, std };
}

/** One statistic over every value (image data), repeated for each of the cols columns. */
function pooled(values: Float32Array, n: number, cols: number, method: 'standardize' | 'minmax'): NormStats {
  if (method === 'minmax') {
    let min = Infinity;
    let max = -Infinity;
    for (let i = 0; i < n; i++) {
      const v = values[i]!;
      if (v < min) min = v;
      if (v > max) max = v;
    }
    return { method, min: new Array<number>(cols).fill(min), max: new Array<number>(cols).fill(max) };
  }
  let sum = 0;
  for (let i = 0; i < n; i++) sum += values[i]!;
  const mean = sum / n;
  let sq = 0;
  for (let i = 0; i < n; i++) sq += (values[i]! - mean) ** 2;
  const std = Math.sqrt(sq / n) || 1;
  return { method, mean: new Array<number>(cols).fill(mean), std: new Array<number>(cols).fill(std) };
}

/** Column count the statistics were fitted on. */
export function normCols(stats: NormStats): number {
  switch (stats.method) {
    case 'none':
      return stats.cols;
    case 'standardize':
      return stats.mean.length;
    case 'minmax':
      return stats.min.length;
  }
}

/** A new Table with normalized features. 'none' shares the (never mutated) feature buffer. */
export function applyNormalizer(stats: NormStats, table: Table): Table {
  const { rows, cols, features } = table;
  if (normCols(stats) !== cols) throw invalid(`statistics are for ${normCols(stats)} columns, the table has ${cols}`);
  if (stats.method === 'none') return { ...table };
  const shift = new Float64Array(cols);
  const scale = new Float64Array(cols);
  for (let c = 0; c < cols; c++) {
    if (stats.method === 'standardize') {
      shift[c] = stats.mean[c]!;
      scale[c] = 1 / stats.std[c]!;
    } else {
      const range = stats.max[c]! - stats.min[c]!;
      shift[c] = stats.min[c]!;
      scale[c] = 1 / (range > 0 ? range : 1);
    }
  }
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let c = 0; c < cols; c++) out[o + c] = (features[o + c]! - shift[c]!) * scale[c]!;
  }
  return { ...table, features: out };
}

/** Validates statistics read back from JSON (a checkpoint) before anything uses them. */
export function parseNormStats(json: unknown): NormStats {
  if (typeof json !== 'object' || json === null) throw invalid('statistics must be an object');
  const o = json as Record<string, unknown>;
  const numbers = (key: string, positive = false): number[] => {
    const v = o[key];
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && Number.isFinite(x) && (!positive || x > 0))) {
      throw invalid(`"${key}" must be an array of finite${positive ? ' positive' : ''} numbers`);
    }
    return v as number[];
  };
  switch (o['method']) {
    case 'none': {
      const cols = o['cols'];
      if (typeof cols !== 'number' || !Number.isInteger(cols) || cols < 0) throw invalid('"cols" must be a non-negative integer');
      return { method: 'none', cols };
    }
    case 'standardize': {
      const mean = numbers('mean');
      const std = numbers('std', true);
      if (mean.length !== std.length) throw invalid(`mean has ${mean.length} columns, std ${std.length}`);
      return { method: 'standardize', mean, std };
    }
    case 'minmax': {
      const min = numbers('min');
      const max = numbers('max');
      if (min.length !== max.length) throw invalid(`min has ${min.length} columns, max ${max.length}`);
      if (min.some((m, i) => m > max[i]!)) throw invalid('min exceeds max');
      return { method: 'minmax', min, max };
    }
    default:
      throw invalid(`unknown method ${JSON.stringify(o['method'])}; expected ${METHODS.join(', ')}`);
  }
}
