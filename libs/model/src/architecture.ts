/**
 * The shape of an MLP and the layout of its parameters in one flat Float32Array.
 *
 * Layout (the order every gradient, parameter and optimizer-slot buffer uses): for each
 * dense layer l = 0..L-1 in order, its kernel (inputs_l x units_l, row-major, so
 * element [i][j] is at offset + i * units_l + j), then its bias (units_l). A gradient
 * buffer appends STATS_LENGTH numbers after the parameters: the loss sum, the sample
 * count and the correct-prediction count, so that one all-reduce sums all of them.
 */
import { ModelError } from './errors.js';

export type Activation = 'relu' | 'tanh' | 'sigmoid' | 'linear';
export const ACTIVATIONS: readonly Activation[] = ['relu', 'tanh', 'sigmoid', 'linear'];

export interface HiddenLayer {
  readonly units: number;
  readonly activation: Activation;
  /** Fraction of this layer's outputs dropped while training; 0 = no dropout. */
  readonly dropout: number;
}

/** softmax: classification (the loss sees logits); linear: regression. */
export type OutputActivation = 'softmax' | 'linear';

export interface Architecture {
  readonly inputs: number;
  readonly hidden: readonly HiddenLayer[];
  readonly outputs: number;
  readonly output: OutputActivation;
}

export interface ParamSlot {
  readonly layer: number;
  readonly kind: 'kernel' | 'bias';
  readonly shape: readonly [number, number] | readonly [number];
  readonly offset: number;
  readonly size: number;
}

export interface ParamLayout {
  readonly slots: readonly ParamSlot[];
  /** Number of parameters. */
  readonly size: number;
}

/** Gradient buffer tail: [loss sum, sample count, correct count]. */
export const STATS_LENGTH = 3;
export const LOSS_SUM = 0;
export const SAMPLE_COUNT = 1;
export const CORRECT_COUNT = 2;

/** Widths of every layer boundary: [inputs, hidden..., outputs]. */
export function layerWidths(arch: Architecture): number[] {
  return [arch.inputs, ...arch.hidden.map((h) => h.units), arch.outputs];
}

export function validateArchitecture(arch: Architecture): void {
  const bad = (what: string) => {
    throw new ModelError('MODEL_SPEC_INVALID', what);
  };
  if (!Number.isInteger(arch.inputs) || arch.inputs < 1) bad(`inputs must be a positive integer, got ${arch.inputs}`);
  if (!Number.isInteger(arch.outputs) || arch.outputs < 1) bad(`outputs must be a positive integer, got ${arch.outputs}`);
  arch.hidden.forEach((h, i) => {
    if (!Number.isInteger(h.units) || h.units < 1) bad(`hidden[${i}].units must be a positive integer, got ${h.units}`);
    if (!ACTIVATIONS.includes(h.activation)) bad(`hidden[${i}].activation must be one of ${ACTIVATIONS.join(', ')}`);
    if (!(h.dropout >= 0 && h.dropout < 1)) bad(`hidden[${i}].dropout must be in [0, 1), got ${h.dropout}`);
  });
}

export function paramLayout(arch: Architecture): ParamLayout {
  const widths = layerWidths(arch);
  const slots: ParamSlot[] = [];
  let offset = 0;
  for (let l = 0; l + 1 < widths.length; l++) {
    const fanIn = widths[l]!;
    const fanOut = widths[l + 1]!;
    slots.push({ layer: l, kind: 'kernel', shape: [fanIn, fanOut], offset, size: fanIn * fanOut });
    offset += fanIn * fanOut;
    slots.push({ layer: l, kind: 'bias', shape: [fanOut], offset, size: fanOut });
    offset += fanOut;
  }
  return { slots, size: offset };
}

/** Multiply-adds of one forward pass for one sample; a training step costs about 3x. */
export function forwardMacs(arch: Architecture): number {
  const widths = layerWidths(arch);
  let macs = 0;
  for (let l = 0; l + 1 < widths.length; l++) macs += widths[l]! * widths[l + 1]!;
  return macs;
}
