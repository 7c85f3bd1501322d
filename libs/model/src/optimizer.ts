/**
 * Optimizers on flat Float32Arrays, in plain JavaScript. Working on the flat master
 * copy keeps the update identical on every worker whatever its backend, and makes the
 * state trivially serializable: an iteration count plus one flat slot buffer, which is
 * what checkpoints store and what a joining worker receives.
 *
 * - sgd: p -= lr * g (plain gradient descent)
 * - sgd with momentum mu: v = mu * v + g; p -= lr * v
 *   (Nesterov: p -= lr * (g + mu * v), the formulation PyTorch uses)
 * - adam: m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
 *   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 */
import { ModelError } from './errors.js';

export type OptimizerSpec =
  | { readonly name: 'sgd'; readonly momentum?: number; readonly nesterov?: boolean }
  | { readonly name: 'adam'; readonly beta1?: number; readonly beta2?: number; readonly epsilon?: number };

export interface OptimizerState {
  readonly name: OptimizerSpec['name'];
  /** Number of updates applied so far (Adam's t). */
  readonly iterations: number;
  /** Slot buffers concatenated: [] for sgd, [velocity] with momentum, [m, v] for adam. */
  readonly slots: Float32Array;
}

export interface Optimizer {
  readonly spec: OptimizerSpec;
  readonly iterations: number;
  /** Updates params in place with the (already averaged) gradient. */
  update(params: Float32Array, grads: Float32Array, learningRate: number): void;
  /** A copy of the state. */
  exportState(): OptimizerState;
  /** The state itself, not a copy: its slots change with the next update (for writing it out at once). */
  viewState(): OptimizerState;
  /**
   * Continues from `state`, taking its slots as its own without a copy (a state may be
   * gigabytes): whoever handed them over must not use them again.
   */
  importState(state: OptimizerState): void;
}

function slotCount(spec: OptimizerSpec): number {
  if (spec.name === 'adam') return 2;
  return (spec.momentum ?? 0) > 0 ? 1 : 0;
}

/** Length of the flat slot buffer an optimizer of `spec` keeps for `paramCount` parameters. */
export function optimizerSlotCount(spec: OptimizerSpec, paramCount: number): number {
  return slotCount(spec) * paramCount;
}

/** A fresh optimizer, or one that continues from `state` (taking its slots as its own, importState). */
export function createOptimizer(spec: OptimizerSpec, paramCount: number, state?: OptimizerState): Optimizer {
  return new FlatOptimizer(spec, paramCount, state);
}

class FlatOptimizer implements Optimizer {
  private slots: Float32Array;
  private t = 0;

  constructor(
    readonly spec: OptimizerSpec,
    private readonly paramCount: number,
    state?: OptimizerState,
  ) {
    // Zeros only when there is no state to continue from: for Adam on 107M parameters
    // they are 860 MB that importState would drop at once.
    this.slots = state ? new Float32Array(0) : new Float32Array(optimizerSlotCount(spec, paramCount));
    if (state) this.importState(state);
  }

  get iterations(): number {
    return this.t;
  }

  update(params: Float32Array, grads: Float32Array, lr: number): void {
    const n = this.paramCount;
    if (params.length !== n || grads.length < n) {
      throw new ModelError('MODEL_SHAPE_MISMATCH', `optimizer expects ${n} parameters, got ${params.length}`);
    }
    this.t += 1;
    const spec = this.spec;
    if (spec.name === 'adam') {
      const b1 = spec.beta1 ?? 0.9;
      const b2 = spec.beta2 ?? 0.999;
      const eps = spec.epsilon ?? 1e-7;
      const c1 = 1 - Math.pow(b1, this.t);
      const c2 = 1 - Math.pow(b2, this.t);
      const s = this.slots;
      for (let i = 0; i < n; i++) {
        const g = grads[i]!;
        const m = b1 * s[i]! + (1 - b1) * g;
        const v = b2 * s[n + i]! + (1 - b2) * g * g;
        s[i] = m;
        s[n + i] = v;
        params[i] = params[i]! - (lr * (m / c1)) / (Math.sqrt(v / c2) + eps);
      }
      return;
    }
    const mu = spec.momentum ?? 0;
    if (mu === 0) {
      for (let i = 0; i < n; i++) params[i] = params[i]! - lr * grads[i]!;
      return;
    }
    const v = this.slots;
    const nesterov = spec.nesterov === true;
    for (let i = 0; i < n; i++) {
      const g = grads[i]!;
      const vi = mu * v[i]! + g;
      v[i] = vi;
      params[i] = params[i]! - lr * (nesterov ? g + mu * vi : vi);
    }
  }

  exportState(): OptimizerState {
    return { name: this.spec.name, iterations: this.t, slots: Float32Array.from(this.slots) };
  }

  viewState(): OptimizerState {
    return { name: this.spec.name, iterations: this.t, slots: this.slots };
  }

  importState(state: OptimizerState): void {
    const expected = optimizerSlotCount(this.spec, this.paramCount);
    if (state.name !== this.spec.name || state.slots.length !== expected) {
      throw new ModelError(
        'MODEL_STATE_INVALID',
        `optimizer state is ${state.name} with ${state.slots.length} slot values; expected ${this.spec.name} with ${expected}`,
      );
    }
    if (!Number.isInteger(state.iterations) || state.iterations < 0) {
      throw new ModelError('MODEL_STATE_INVALID', `optimizer iterations must be a non-negative integer, got ${state.iterations}`);
    }
    this.slots = state.slots;
    this.t = state.iterations;
  }
}
