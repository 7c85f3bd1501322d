/**
 * The trainable MLP: a flat master copy of its parameters (the layout of
 * architecture.ts) mirrored into one tf.Variable per kernel and bias. Optimizers work
 * on the flat copy in plain JavaScript, so every worker computes the same bits
 * whatever its backend; `upload()` then refreshes the variables the tensor code reads.
 */
import * as tf from '@tensorflow/tfjs-core';
import { mix32, Stream, toUnit } from '@ringtrain/data';
import { type Architecture, layerWidths, paramLayout, type ParamLayout, validateArchitecture } from './architecture.js';
import { ModelError } from './errors.js';

/** Backends that copy a new tensor's values at once, so that the array may change afterwards. */
const COPYING_BACKENDS: ReadonlySet<string> = new Set(['wasm', 'tensorflow']);

export class Mlp {
  readonly layout: ParamLayout;
  /** One variable per layout slot, in layout order. */
  readonly variables: tf.Variable[];

  private constructor(
    readonly arch: Architecture,
    readonly params: Float32Array,
  ) {
    validateArchitecture(arch);
    this.layout = paramLayout(arch);
    if (params.length !== this.layout.size) {
      throw new ModelError('MODEL_SHAPE_MISMATCH', `expected ${this.layout.size} parameters, got ${params.length}`);
    }
    this.variables = this.layout.slots.map((s) => {
      // slice, not subarray: the cpu backend keeps the array it is given, and the
      // variables must not alias the master copy that optimizers write into.
      const initial = tf.tensor(params.slice(s.offset, s.offset + s.size), [...s.shape]);
      const v = tf.variable(initial, true);
      initial.dispose(); // the variable holds its own reference to the data
      return v;
    });
  }

  /**
   * Glorot-uniform kernels and zero biases (the Keras defaults), drawn from the keyed
   * RNG: the same seed gives the same model on every worker and backend.
   */
  static create(arch: Architecture, seed: number): Mlp {
    const layout = paramLayout(arch);
    const params = new Float32Array(layout.size);
    const widths = layerWidths(arch);
    for (const slot of layout.slots) {
      if (slot.kind !== 'kernel') continue;
      const limit = Math.sqrt(6 / (widths[slot.layer]! + widths[slot.layer + 1]!));
      for (let i = 0; i < slot.size; i++) {
        params[slot.offset + i] = (2 * toUnit(mix32(seed, Stream.init, slot.layer, i)) - 1) * limit;
      }
    }
    return new Mlp(arch, params);
  }

  static fromParams(arch: Architecture, params: Float32Array): Mlp {
    return new Mlp(arch, Float32Array.from(params));
  }

  /** Replace every parameter (state sync, best-weights restore) and refresh the variables. */
  setParams(params: Float32Array): void {
    if (params.length !== this.params.length) {
      throw new ModelError('MODEL_SHAPE_MISMATCH', `expected ${this.params.length} parameters, got ${params.length}`);
    }
    this.params.set(params);
    this.upload();
  }

  /**
   * A copy of the parameters that upload() hands to tf.tensor, made once (a fresh copy
   * every step was 2 MB of garbage per step for 784-512-256-10 and cost the step time in
   * collections), for backends that keep the array they are given (cpu; webgl until it
   * uploads): their variables alias this buffer, which only upload() writes, right before
   * it assigns them again. wasm and tensorflow copy the values into their own memory when
   * the tensor is made (tfjs-backend-wasm's `move`), so they read the parameters
   * themselves: 4 bytes a parameter less (430 MB for 107M parameters).
   */
  private staging: Float32Array | null = null;

  /** Copy the flat master parameters into the variables. */
  upload(): void {
    let source = this.params;
    if (!COPYING_BACKENDS.has(tf.getBackend())) {
      source = this.staging ??= new Float32Array(this.params.length);
      source.set(this.params);
    }
    this.layout.slots.forEach((s, i) => {
      const t = tf.tensor(source.subarray(s.offset, s.offset + s.size), [...s.shape]);
      this.variables[i]!.assign(t);
      t.dispose();
    });
  }

  kernel(layer: number): tf.Variable {
    return this.variables[2 * layer]!;
  }

  bias(layer: number): tf.Variable {
    return this.variables[2 * layer + 1]!;
  }

  dispose(): void {
    for (const v of this.variables) v.dispose();
  }
}
