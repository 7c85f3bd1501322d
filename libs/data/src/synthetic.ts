/**
 * Synthetic data of any size from a fixed random teacher network, for scaling tests and
 * benchmarks where the data must be big, learnable and identical on every machine.
 *
 * Inputs are N(0, 1), each a pure function of (seed, row, column) through the keyed
 * RNG, so row i is the same whatever `rows` is. The teacher is features -> 32 tanh ->
 * outputs with N(0, 1) weights scaled by 1/sqrt(fan-in), which keeps pre-activations
 * near unit variance: nonlinear enough to need a hidden layer for the last few percent,
 * smooth enough for a small MLP to get well above chance.
 *
 * Classification: label = argmax of the teacher's outputs. The output biases are set
 * so that the outputs have mean zero over a fixed calibration sample (512 rows from a
 * separate key), which keeps any one class from swallowing the others. Regression: the
 * target is the teacher's single output.
 */
import { DataError } from './errors.js';
import { mix32, Stream, toGaussian } from './random.js';
import type { Table } from './types.js';

export interface SyntheticSpec {
  readonly rows: number;
  readonly features: number;
  /** Number of classes; 0 for a regression target. */
  readonly classes: number;
  readonly seed: number;
}

export const SYNTHETIC_DEFAULTS: SyntheticSpec = { rows: 1000, features: 20, classes: 3, seed: 0 };
const HIDDEN = 32;
const CALIBRATION_ROWS = 512;

/** Parts of the synthetic stream, so inputs, weights and calibration never share numbers. */
const Part = { input: 1, w1: 2, b1: 3, w2: 4, calibration: 5 } as const;

/**
 * Parses the text after `synthetic:`: comma-separated key=value pairs among rows,
 * features, classes, seed and task (classification | regression). Empty means defaults.
 */
export function parseSyntheticSpec(text: string, source = `synthetic:${text}`): SyntheticSpec {
  const spec: { -readonly [K in keyof SyntheticSpec]: SyntheticSpec[K] } = { ...SYNTHETIC_DEFAULTS };
  let task: string | undefined;
  const bad = (what: string) =>
    new DataError('DATA_SOURCE_INVALID', `${source}: ${what}; expected e.g. synthetic:rows=10000,features=784,classes=10,seed=1`);
  for (const part of text.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
    const eq = part.indexOf('=');
    if (eq < 0) throw bad(`"${part}" is not key=value`);
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === 'task') {
      if (value !== 'classification' && value !== 'regression') throw bad(`task must be classification or regression, got "${value}"`);
      task = value;
      continue;
    }
    if (!(key in SYNTHETIC_DEFAULTS)) throw bad(`unknown key "${key}"`);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) throw bad(`${key} must be a non-negative integer, got "${value}"`);
    spec[key as keyof SyntheticSpec] = Number(value);
  }
  if (task === 'regression') spec.classes = 0;
  if (task === 'classification' && spec.classes === 0) throw bad('task=classification needs classes >= 2');
  if (spec.classes === 1) throw bad('classes must be 0 (regression) or at least 2');
  if (spec.rows < 1) throw bad('rows must be at least 1');
  if (spec.features < 1) throw bad('features must be at least 1');
  if (spec.seed > 0xffffffff) throw bad('seed must fit in 32 bits');
  return spec;
}

function gaussian(seed: number, part: number, a: number, b: number): number {
  return toGaussian(mix32(seed, Stream.synthetic, part, a, 2 * b), mix32(seed, Stream.synthetic, part, a, 2 * b + 1));
}

function gaussians(seed: number, part: number, rows: number, cols: number, scale: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r * cols + c] = scale * gaussian(seed, part, r, c);
  return out;
}

/** The teacher network: w1 [HIDDEN x features], b1 [HIDDEN], w2 [outputs x HIDDEN]. */
class Teacher {
  private readonly w1: Float32Array;
  private readonly b1: Float32Array;
  private readonly w2: Float32Array;
  private readonly b2: Float64Array;
  private readonly hidden = new Float64Array(HIDDEN);

  constructor(
    seed: number,
    private readonly features: number,
    readonly outputs: number,
  ) {
    this.w1 = gaussians(seed, Part.w1, HIDDEN, features, 1 / Math.sqrt(features));
    this.b1 = gaussians(seed, Part.b1, 1, HIDDEN, 0.5);
    this.w2 = gaussians(seed, Part.w2, outputs, HIDDEN, 1 / Math.sqrt(HIDDEN));
    this.b2 = new Float64Array(outputs);
  }

  /** Writes the outputs for input x (a row of `features`) into out. */
  forward(x: Float32Array, out: Float64Array): void {
    const f = this.features;
    for (let h = 0; h < HIDDEN; h++) {
      let z = this.b1[h]!;
      const w = h * f;
      for (let j = 0; j < f; j++) z += this.w1[w + j]! * x[j]!;
      this.hidden[h] = Math.tanh(z);
    }
    for (let o = 0; o < this.outputs; o++) {
      let z = this.b2[o]!;
      for (let h = 0; h < HIDDEN; h++) z += this.w2[o * HIDDEN + h]! * this.hidden[h]!;
      out[o] = z;
    }
  }

  /** Sets the output biases to minus the mean output over a calibration sample. */
  calibrate(seed: number): void {
    const f = this.features;
    const x = gaussians(seed, Part.calibration, CALIBRATION_ROWS, f, 1);
    const y = new Float64Array(this.outputs);
    const sum = new Float64Array(this.outputs);
    for (let r = 0; r < CALIBRATION_ROWS; r++) {
      this.forward(x.subarray(r * f, (r + 1) * f), y);
      for (let o = 0; o < this.outputs; o++) sum[o]! += y[o]!;
    }
    for (let o = 0; o < this.outputs; o++) this.b2[o] = -sum[o]! / CALIBRATION_ROWS;
  }
}

/** Generates the table described by `spec`. */
export function syntheticTable(spec: SyntheticSpec): Table {
  const { rows, features: cols, classes, seed } = spec;
  const features = gaussians(seed, Part.input, rows, cols, 1);
  const teacher = new Teacher(seed, cols, classes === 0 ? 1 : classes);
  const y = new Float64Array(teacher.outputs);
  const featureNames = Array.from({ length: cols }, (_, j) => `x${j}`);
  if (classes === 0) {
    const labels = new Float32Array(rows);
    for (let r = 0; r < rows; r++) {
      teacher.forward(features.subarray(r * cols, (r + 1) * cols), y);
      labels[r] = y[0]!;
    }
    return { features, rows, cols, featureNames, labels, task: { kind: 'regression', target: 'y' } };
  }
  teacher.calibrate(seed);
  const labels = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    teacher.forward(features.subarray(r * cols, (r + 1) * cols), y);
    let best = 0;
    for (let o = 1; o < classes; o++) if (y[o]! > y[best]!) best = o;
    labels[r] = best;
  }
  const names = Array.from({ length: classes }, (_, c) => String(c));
  return { features, rows, cols, featureNames, labels, task: { kind: 'classification', classes: names } };
}
