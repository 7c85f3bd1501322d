/**
 * A worker's memory plan: what it will hold while it trains a job, item by item, worked
 * out from the job before any of it is allocated, so that a job that cannot fit is
 * refused at once rather than dying mid-run (an OOM kill, or on wasm a tensor allocated
 * at address 0 once malloc fails: no error, just wrong numbers, then "memory access out
 * of bounds").
 *
 * Every buffer of the model is float32, 4 bytes a number. With P parameters, S optimizer
 * slot values (optimizerSlotCount) and B best weights (P with early stopping, else 0):
 *
 *   parameters       4P   the flat master copy optimizers write (Mlp.params)
 *   variables        4P   the backend's copy of it, one tf.Variable per kernel and bias;
 *                         0 on the cpu backend, which keeps the array upload() hands it,
 *                         so its variables are the staging copy (mlp.ts)
 *   staging          4P   Mlp.upload's reusable copy handed to tf.tensor (mlp.ts)
 *   gradients        4(P+3) the step's buffer: computeGradients writes it, the ring
 *                         all-reduce sums it in place (allreduce-ring.ts computes in the
 *                         frames it receives, never in a per-segment copy of the buffer),
 *                         applyGradients divides it in place
 *   gradientTensors  4P   the gradient tensors of computeGradients before their read-back
 *   transposes       4 x (kernels of every layer but the first): step.ts's backward pass
 *                         multiplies by tf.transpose(kernel) explicitly (the wasm backend
 *                         runs a transposed matMul 10-40x slower), a copy of each
 *   packedWeights    wasm only: its matMul hands the right operand to XNNPACK, which
 *                         packs a copy of it and keeps it until that tensor is disposed
 *                         (tfjs-backend-wasm src/cc/batch_mat_mul_impl.cc, xnn_matmul's
 *                         operator cache): every kernel (until upload() replaces it),
 *                         every transpose, and each layer's dZ (batch x units)
 *   optimizerSlots   4S   []: sgd, [velocity]: momentum, [m, v]: adam
 *   bestWeights      4B   early stopping's best weights
 *   heldState        4(P+S+B) the last committed state the worker keeps between
 *                         generations (apps/worker generation.ts, Holding.held)
 *   stateInTransit   4(P+S+B) one encoded state: the broadcast when a generation
 *                         starts, rank 0's checkpoints, an upload to the coordinator
 *   activations      the larger of a training step's and an evaluation batch's tensors,
 *                         ACTIVATION_FACTORS below
 *   rows             every row of every split: the row store is a full-size table per
 *                         split (4 B a feature, 4 B a label, 1 B of its bitmap)
 *   ring, base       given: the ring's own buffers and the process before the job
 *
 * The backend's heap holds variables, gradientTensors, transposes, packedWeights and
 * activations (all of a step's tensors live until its tf.tidy ends). On wasm that heap
 * has a hard limit, WASM_HEAP_LIMIT; the plan reports that part apart from the total.
 * Checked against tf.profile's peak bytes (memory-plan.spec.ts) and, for the 107M
 * model below on wasm, against the heap's size after a step: 2,035 MiB planned for 64
 * rows, the heap grown to 2,101 MiB (Emscripten grows it by up to 96 MiB more than
 * asked).
 */
import { type Activation, type Architecture, layerWidths, paramLayout, STATS_LENGTH } from './architecture.js';
import { optimizerSlotCount, type OptimizerSpec } from './optimizer.js';

/** Bytes of a float32. */
const F = 4;

/**
 * The most the wasm backend's heap can hold: @tensorflow/tfjs-backend-wasm 4.22.0 is an
 * Emscripten build whose heap grows up to `getHeapMax() { return 4294901760; }` (4 GiB
 * less one 64 KiB page; node_modules/@tensorflow/tfjs-backend-wasm/wasm-out/
 * tfjs-backend-wasm.js, and dist/tf-backend-wasm.node.js), within a WebAssembly.Memory
 * whose maximum is 65536 pages (the memory section of dist/tfjs-backend-wasm*.wasm;
 * `"maximum": 4294967296 / 65536` for the threaded build), wasm32's ceiling. Measured on
 * Node 20: 64 MiB tensors fill the heap to exactly 4294901760 bytes, and the next one
 * gets offset 0 from malloc, silently.
 */
export const WASM_HEAP_LIMIT = 4_294_901_760;

/** The heap limit of a backend, or null where its tensors live in ordinary process memory (cpu, tensorflow). */
export function backendHeapLimit(backend: string): number | null {
  return backend === 'wasm' ? WASM_HEAP_LIMIT : null;
}

/** Rows an evaluation runs at once: evaluate()'s default batch (evaluate.ts), which the trainer's evaluators use. */
export const EVALUATION_BATCH = 1024;

/**
 * Tensors of one row, in floats per unit, that a step keeps until its tf.tidy ends,
 * counted from step.ts (and activations.ts, loss.ts):
 *  - input: x, and transpose(x) for the first kernel's gradient: 2.
 *  - a hidden unit, relu: matMul, +bias (z), relu (a), transpose(a) for the next
 *    kernel's gradient, dH = dZ x transpose(kernel), step(z), dH * step: 7. tanh and
 *    sigmoid take 3 tensors for the derivative instead of 2: 8. linear: z is a, and
 *    the derivative is dH itself: 4. Dropout adds its mask and a product each way: 3.
 *  - an output unit: matMul, +bias (logits), the targets, then the loss: cross-entropy
 *    takes logSoftmax (shifted, exp, result), targets * logp, exp(logp) and the
 *    difference, 9 in all; mse through a softmax 13, the most of any loss: 13.
 *  - per row, whatever the widths: the row maxima and sums of logSoftmax, argMax, the
 *    labels, equal and its cast: 8.
 * Evaluation (evaluate.ts, forward.ts) keeps, per row of its batch: x (1), per hidden
 * unit matMul, +bias, activation (3), per output unit matMul, +bias, targets and the
 * loss's (at most 6): 9, and the same per-row 8.
 */
export const ACTIVATION_FACTORS = {
  input: 2,
  hidden: { relu: 7, tanh: 8, sigmoid: 8, linear: 4 } satisfies Record<Activation, number>,
  dropout: 3,
  output: 13,
  row: 8,
  evaluation: { input: 1, hidden: 3, output: 9, row: 8 },
} as const;

export interface MemoryPlanInput {
  readonly arch: Architecture;
  readonly optimizer: OptimizerSpec;
  /** Early stopping keeps the best weights. */
  readonly earlyStopping: boolean;
  /** Rows of each global batch this worker computes: ceil(batchSize / world) for the smallest world it may train in. */
  readonly batchRows: number;
  /** Rows of each split, and the features of a row. */
  readonly rows: { readonly train: number; readonly validation: number; readonly test: number };
  readonly cols: number;
  /** The backend in use: 'wasm', 'cpu' or 'tensorflow'. */
  readonly backend: string;
  /** Bytes the process holds before the job (Node, TensorFlow.js, the backend's runtime): measured by the app. */
  readonly baseBytes: number;
  /** Bytes of the ring's own buffers (send slots, scratch, frames queued early): the app knows its ring. */
  readonly ringBytes: number;
}

/** Bytes of each item (the table at the top of this file). */
export interface MemoryItems {
  readonly base: number;
  readonly parameters: number;
  readonly variables: number;
  readonly staging: number;
  readonly gradients: number;
  readonly gradientTensors: number;
  readonly transposes: number;
  readonly packedWeights: number;
  readonly optimizerSlots: number;
  readonly bestWeights: number;
  readonly heldState: number;
  readonly stateInTransit: number;
  readonly activations: number;
  readonly rows: number;
  readonly ring: number;
}

export interface MemoryPlan {
  /** Parameters of the model. */
  readonly parameterCount: number;
  readonly items: MemoryItems;
  /** Every item, in bytes. */
  readonly total: number;
  /** The part in the backend's heap: variables, gradient tensors, transposes, packed weights, activations. */
  readonly backendHeap: number;
  /** The backend's heap limit (WASM_HEAP_LIMIT on wasm), or null for none. */
  readonly backendHeapLimit: number | null;
}

/** Floats a training step keeps per row of its batch (ACTIVATION_FACTORS). */
export function stepFloatsPerRow(arch: Architecture): number {
  const f = ACTIVATION_FACTORS;
  let n = f.input * arch.inputs + f.output * arch.outputs + f.row;
  for (const h of arch.hidden) n += (f.hidden[h.activation] + (h.dropout > 0 ? f.dropout : 0)) * h.units;
  return n;
}

/** Floats an evaluation keeps per row of its batch (ACTIVATION_FACTORS.evaluation). */
export function evaluationFloatsPerRow(arch: Architecture): number {
  const e = ACTIVATION_FACTORS.evaluation;
  return e.input * arch.inputs + e.hidden * arch.hidden.reduce((a, h) => a + h.units, 0) + e.output * arch.outputs + e.row;
}

export function memoryPlan(input: MemoryPlanInput): MemoryPlan {
  const { arch, rows } = input;
  const layout = paramLayout(arch);
  const p = layout.size;
  const slots = optimizerSlotCount(input.optimizer, p);
  const best = input.earlyStopping ? p : 0;
  const widths = layerWidths(arch);
  let transposed = 0;
  for (let l = 1; l + 1 < widths.length; l++) transposed += widths[l]! * widths[l + 1]!;
  const kernels = transposed + widths[0]! * widths[1]!;
  const units = widths.slice(1).reduce((a, w) => a + w, 0);
  const wasm = input.backend === 'wasm';
  const largestSplit = Math.max(rows.train, rows.validation, rows.test);
  const evaluationRows = Math.min(EVALUATION_BATCH, largestSplit);
  const allRows = rows.train + rows.validation + rows.test;
  const items: MemoryItems = {
    base: input.baseBytes,
    parameters: F * p,
    variables: input.backend === 'cpu' ? 0 : F * p,
    staging: F * p,
    gradients: F * (p + STATS_LENGTH),
    gradientTensors: F * p,
    transposes: F * transposed,
    packedWeights: wasm ? F * (kernels + transposed + input.batchRows * units) : 0,
    optimizerSlots: F * slots,
    bestWeights: F * best,
    heldState: F * (p + slots + best),
    stateInTransit: F * (p + slots + best),
    activations: F * Math.max(input.batchRows * stepFloatsPerRow(arch), evaluationRows * evaluationFloatsPerRow(arch)),
    rows: allRows * (F * input.cols + 4 + 1),
    ring: input.ringBytes,
  };
  const total = Object.values(items).reduce((a, b) => a + b, 0);
  const backendHeap = items.variables + items.gradientTensors + items.transposes + items.packedWeights + items.activations;
  return { parameterCount: p, items, total, backendHeap, backendHeapLimit: backendHeapLimit(input.backend) };
}
