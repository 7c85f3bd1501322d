/**
 * The trainable MLP: one flat Float32Array of parameters in the layout of
 * architecture.ts, and nothing else. Optimizers work on it in plain JavaScript, so every
 * worker computes the same bits whatever its backend; the tensor code asks for a layer's
 * kernel or bias as a tensor made from it at the moment it needs one, and disposes it.
 *
 * Why no tf.Variable per layer: on the wasm backend a variable is a second copy of the
 * parameters in the backend's heap, and XNNPACK keeps a packed copy of every kernel a
 * matMul was given as its right operand until that tensor is disposed
 * (tfjs-backend-wasm's batch_mat_mul_impl.cc caches its operator by tensor id). With the
 * tensors made per layer and disposed as soon as that layer is done, the heap holds one
 * layer's kernel, its packed copy or its gradient at a time, not the whole model's
 * (memory-plan.ts): for 784-8192-8192-4096-10 that is 0.5 GB instead of 2.1 GB, and a
 * heap that never shrinks keeps whatever it once reached.
 */
import * as tf from '@tensorflow/tfjs-core';
import { type Architecture, paramLayout, type ParamLayout, validateArchitecture } from './architecture.js';
import { ModelError } from './errors.js';
import { initialParamsInto } from './initial-params.js';

export class Mlp {
  readonly layout: ParamLayout;
  private own: Float32Array;

  private constructor(
    readonly arch: Architecture,
    params: Float32Array,
  ) {
    validateArchitecture(arch);
    this.layout = paramLayout(arch);
    this.own = this.checked(params);
  }

  /** The parameters: the optimizer updates them in place. adoptParams replaces the array itself. */
  get params(): Float32Array {
    return this.own;
  }

  private checked(params: Float32Array): Float32Array {
    if (params.length !== this.layout.size) {
      throw new ModelError('MODEL_SHAPE_MISMATCH', `expected ${this.layout.size} parameters, got ${params.length}`);
    }
    return params;
  }

  /** Glorot-uniform kernels and zero biases, keyed by the seed (initial-params.ts). */
  static create(arch: Architecture, seed: number): Mlp {
    const params = initialParamsInto(arch, seed, 0, new Float32Array(paramLayout(arch).size));
    return new Mlp(arch, params);
  }

  static fromParams(arch: Architecture, params: Float32Array): Mlp {
    return new Mlp(arch, Float32Array.from(params));
  }

  /** Takes `params` as its own array, without a copy (a state just received or read, which nobody else keeps). */
  static adopt(arch: Architecture, params: Float32Array): Mlp {
    return new Mlp(arch, params);
  }

  /**
   * Takes `params` as the model's array from now on, without a copy (a state just
   * received, the best epoch's weights at the end): the array held before is left as it
   * was, so whoever still reads it (a checkpoint, a transfer of the final weights) reads
   * what it was given.
   */
  adoptParams(params: Float32Array): void {
    this.own = this.checked(params);
  }

  /**
   * A tensor of slot `i` (layout order) made now from the parameters. Dispose it, or make
   * it inside tf.tidy. The cpu backend keeps the array it is given rather than a copy, so
   * the tensor must not outlive a change to the parameters: every caller uses it within
   * one synchronous pass (a step's forward and backward, an evaluation batch).
   */
  slotTensor(i: number): tf.Tensor {
    const s = this.layout.slots[i]!;
    return tf.tensor(this.params.subarray(s.offset, s.offset + s.size), [...s.shape], 'float32');
  }

  kernel(layer: number): tf.Tensor2D {
    return this.slotTensor(2 * layer) as tf.Tensor2D;
  }

  bias(layer: number): tf.Tensor1D {
    return this.slotTensor(2 * layer + 1) as tf.Tensor1D;
  }

  /** One tensor per slot, in layout order (tfjs-layers' setWeights, tf.variableGrads in tests): the caller disposes them. */
  slotTensors(): tf.Tensor[] {
    return this.layout.slots.map((_, i) => this.slotTensor(i));
  }
}
