/**
 * A worker's memory plan: what it will hold while it trains a job, item by item, worked
 * out from the job before any of it is allocated, so that a job that cannot fit is
 * refused at once rather than dying mid-run (an OOM kill, or on wasm a tensor allocated
 * at address 0 once malloc fails: no error, just wrong numbers, then "memory access out
 * of bounds").
 *
 * Every buffer of the model is float32, 4 bytes a number. With P parameters, S optimizer
 * slot values (optimizerSlotCount), B best weights (P with early stopping, else 0) and K
 * the largest layer's kernel:
 *
 *   parameters       4P   the flat parameters (Mlp.params), the only copy of the weights:
 *                         a layer's kernel becomes a tensor only while that layer
 *                         computes (mlp.ts)
 *   gradients        4(P+3) the step's buffer: computeGradients writes each layer's
 *                         gradient into it as soon as it is computed, the ring all-reduce
 *                         sums it in place (allreduce-ring.ts computes in the frames it
 *                         receives), applyGradients divides it in place. With the exact
 *                         reduction (libs/train's exact-step.ts) 16P more: a micro-batch's
 *                         gradient, 4(P+3), and the float64 integer sums the ring sums,
 *                         8P and two slots per micro-batch
 *   optimizerSlots   4S   []: sgd, [velocity]: momentum, [m, v]: adam
 *   bestWeights      4B   early stopping's best weights, overwritten in place (restored at
 *                         the end by adopting their array: the last weights stay as
 *                         they are for the 'end' checkpoint, and nothing is copied)
 *   stateInTransit   4(P+S+B) a state received at a generation's start while the worker
 *                         still holds its own: only when someone needs it (a joiner, or a
 *                         member behind the source); survivors that hold the source's
 *                         state keep it without a copy (apps/worker state-sync.ts). A
 *                         failed generation's state is the run's own arrays, not a copy.
 *   layerTensors     one block of one layer's kernel at a time (kernel-blocks.ts: at
 *                         most KERNEL_BLOCK_FLOATS, else the largest kernel K): the block
 *                         while it computes, and on wasm as much again for the copy
 *                         XNNPACK packs of a matMul's right operand
 *                         (tfjs-backend-wasm src/cc/batch_mat_mul_impl.cc keeps it until
 *                         that tensor is disposed); or a block of its gradient, read
 *                         straight from the heap on wasm (read-back.ts), through a copy
 *                         elsewhere. The cpu backend's whole kernel is the parameters'
 *                         own array.
 *   blockScratch     with a kernel in blocks, the reused array a block's columns are
 *                         copied into (forward.ts): one block, in ordinary memory
 *   activations      the larger of a training step's and an evaluation batch's tensors,
 *                         ACTIVATION_FACTORS below
 *   rows             every row of every split: the row store is a full-size table per
 *                         split (4 B a feature, 4 B a label, 1 B of its bitmap)
 *   ring, base       given: the ring's own buffers and the process before the job
 *
 * The backend's heap holds layerTensors and activations. On wasm that heap has a hard
 * limit, WASM_HEAP_LIMIT, and never shrinks; the plan reports that part apart from the
 * total. Checked against tf.profile's peak bytes (memory-plan.spec.ts) and, for the 107M
 * model on wasm, against the process's peak RSS (bench/large-model).
 */
import { type Activation, type Architecture, layerWidths, paramLayout, STATS_LENGTH } from './architecture.js';
import { KERNEL_BLOCK_FLOATS } from './kernel-blocks.js';
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
 * Tensors of one row, in floats per unit, counted from step.ts (and activations.ts,
 * loss.ts). `held` live from the forward pass to the step's end; `transient` only within
 * one of the tf.tidy blocks of the backward pass, so a step peaks at the held ones plus
 * its largest transient block.
 *  - held: x per input; per hidden unit z, a (z itself when linear) and its dZ, and with
 *    dropout the mask and the masked activation; per output unit logits, targets and
 *    dLogits; per row the loss and the correct count.
 *  - loss block: cross-entropy's logSoftmax (shifted, exp, result), targets * logp,
 *    exp(logp) and the difference: 9 per output unit; mse through a softmax 13, the most
 *    of any loss; and per row the maxima and sums of logSoftmax, argMax, the labels,
 *    equal and its cast: 8.
 *  - a layer's gradient block: transpose(h) per unit of its input, and on wasm the copy of
 *    dZ that XNNPACK packs, per unit of its output (its kernel-sized gradient is
 *    layerTensors).
 *  - a layer's dH block: transpose(dZ) and its packed copy per unit of its output; per
 *    unit of its input (units of the hidden layer below) dH^T, dH and the derivative
 *    (relu: step(z); tanh, sigmoid: 3 tensors; linear: dH is dZ, already held as such),
 *    and with dropout the masked dH; the product is that layer's dZ, held. A kernel in
 *    blocks adds the blocks of dH^T per input unit (`blocked`), and its forward pass
 *    the blocks of z and their concatenation per output unit, before z is held.
 * Evaluation (evaluate.ts, forward.ts) keeps, per row of its batch: x (1), per hidden
 * unit matMul, +bias, activation (3), per output unit matMul, +bias, targets and the
 * loss's (at most 6): 9, and the same per-row 8.
 */
export const ACTIVATION_FACTORS = {
  held: { input: 1, hidden: { relu: 3, tanh: 3, sigmoid: 3, linear: 2 } satisfies Record<Activation, number>, dropout: 2, output: 3, row: 2 },
  loss: { output: 13, row: 8 },
  gradient: { input: 1, output: 1 },
  dH: { output: 2, input: { relu: 3, tanh: 5, sigmoid: 5, linear: 1 } satisfies Record<Activation, number>, dropout: 1 },
  blocked: { dHInput: 1, forwardOutput: 2 },
  evaluation: { input: 1, hidden: 3, output: 9, row: 8 },
} as const;

export interface MemoryPlanInput {
  readonly arch: Architecture;
  readonly optimizer: OptimizerSpec;
  /** Early stopping keeps the best weights. */
  readonly earlyStopping: boolean;
  /**
   * Rows of each global batch this worker computes at once: ceil(batchSize / world) for
   * the smallest world it may train in, or a micro-batch with the exact reduction.
   */
  readonly batchRows: number;
  /** The exact reduction's micro-batches per step (exact-step.ts), when the job uses it. */
  readonly exactParts?: number;
  /** Rows of each split, and the features of a row. */
  readonly rows: { readonly train: number; readonly validation: number; readonly test: number };
  readonly cols: number;
  /**
   * The backend in use: 'wasm', 'cpu', 'tensorflow' or 'webgpu'. On a GPU (tfjs-node-gpu,
   * webgpu) the layer tensors and activations live in the GPU's memory, which the plan
   * does not check: counted here as host memory, it errs on the safe side.
   */
  readonly backend: string;
  /** Bytes the process holds before the job (Node, TensorFlow.js, the backend's runtime): measured by the app. */
  readonly baseBytes: number;
  /** Bytes of the ring's own buffers (received frames, scratch, frames queued early): the app knows its ring. */
  readonly ringBytes: number;
}

/** Bytes of each item (the table at the top of this file). */
export interface MemoryItems {
  readonly base: number;
  readonly parameters: number;
  readonly gradients: number;
  readonly optimizerSlots: number;
  readonly bestWeights: number;
  readonly stateInTransit: number;
  readonly layerTensors: number;
  readonly blockScratch: number;
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
  /** The part in the backend's heap: layerTensors and activations. */
  readonly backendHeap: number;
  /** The backend's heap limit (WASM_HEAP_LIMIT on wasm), or null for none. */
  readonly backendHeapLimit: number | null;
}

/** Floats a training step keeps per row of its batch at its peak (ACTIVATION_FACTORS). */
export function stepFloatsPerRow(arch: Architecture): number {
  const f = ACTIVATION_FACTORS;
  const widths = layerWidths(arch);
  let held = f.held.input * arch.inputs + f.held.output * arch.outputs + f.held.row;
  for (const h of arch.hidden) held += (f.held.hidden[h.activation] + (h.dropout > 0 ? f.held.dropout : 0)) * h.units;
  let transient = f.loss.output * arch.outputs + f.loss.row;
  for (let l = 0; l + 1 < widths.length; l++) {
    const blocked = widths[l]! * widths[l + 1]! > KERNEL_BLOCK_FLOATS;
    transient = Math.max(transient, f.gradient.input * widths[l]! + f.gradient.output * widths[l + 1]!);
    if (blocked) transient = Math.max(transient, f.blocked.forwardOutput * widths[l + 1]!);
    const below = arch.hidden[l - 1];
    if (below) {
      const perInput = f.dH.input[below.activation] + (below.dropout > 0 ? f.dH.dropout : 0) + (blocked ? f.blocked.dHInput : 0);
      transient = Math.max(transient, f.dH.output * widths[l + 1]! + perInput * below.units);
    }
  }
  return held + transient;
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
  let largestKernel = 0;
  for (let l = 0; l + 1 < widths.length; l++) largestKernel = Math.max(largestKernel, widths[l]! * widths[l + 1]!);
  const block = Math.min(largestKernel, KERNEL_BLOCK_FLOATS);
  // cpu: the gradient alone (its kernel tensor is the parameters' array); wasm: the kernel
  // and XNNPACK's packed copy; elsewhere the kernel or the gradient and its read-back copy.
  const layerCopies = input.backend === 'cpu' ? 1 : 2;
  const largestSplit = Math.max(rows.train, rows.validation, rows.test);
  const evaluationRows = Math.min(EVALUATION_BATCH, largestSplit);
  const allRows = rows.train + rows.validation + rows.test;
  const items: MemoryItems = {
    base: input.baseBytes,
    parameters: F * p,
    gradients: F * (p + STATS_LENGTH) + (input.exactParts === undefined ? 0 : F * (p + STATS_LENGTH) + 8 * (p + 2 + 2 * input.exactParts)),
    optimizerSlots: F * slots,
    bestWeights: F * best,
    stateInTransit: F * (p + slots + best),
    layerTensors: F * layerCopies * block,
    blockScratch: largestKernel > KERNEL_BLOCK_FLOATS ? F * block : 0,
    activations: F * Math.max(input.batchRows * stepFloatsPerRow(arch), evaluationRows * evaluationFloatsPerRow(arch)),
    rows: allRows * (F * input.cols + 4 + 1),
    ring: input.ringBytes,
  };
  const total = Object.values(items).reduce((a, b) => a + b, 0);
  const backendHeap = items.layerTensors + items.activations;
  return { parameterCount: p, items, total, backendHeap, backendHeapLimit: backendHeapLimit(input.backend) };
}
