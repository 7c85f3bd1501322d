/**
 * A training step's summed gradient by the exact reduction (`training.reduction: exact`):
 * the same bits for any number of workers (exact-sum.ts has the numerics).
 *
 * The global batch is cut into micro-batches of `training.microBatch` rows, a function of
 * the step alone (libs/data's microBatchRange); each worker computes whole micro-batches,
 * one at a time, adds each one's gradient as integers on the step's scale, and the ring
 * sums the integers in float64. What goes round the ring (`wire`, float64):
 *
 *   [0, size)                       the integer gradient sums
 *   size + 0, size + 1              sample count, correct count (integers: exact)
 *   size + 2 + k                    micro-batch k's loss sum
 *   size + 2 + parts + k            micro-batch k's largest |gradient element|
 *
 * Each micro-batch slot has one worker that writes it and zeros from the others, so
 * after the sum every worker holds every micro-batch's loss sum and maximum exactly: the
 * step's loss is their sum in micro-batch order, and the largest maximum says whether
 * the step's scale held (if not, the step is computed again on the scale of that
 * maximum) and sets the next step's bound.
 */
import { batchIndices, batchRange, microBatchCount, microBatchRange, type PreparedDataset } from '@ringtrain/data';
import { computeGradients, CORRECT_COUNT, LOSS_SUM, type LossName, type Mlp, SAMPLE_COUNT } from '@ringtrain/model';
import { type BatchScratch, trainingBatch } from './batches.js';
import { ExactSum, HEADROOM_BITS } from './exact-sum.js';
import type { JobSpec } from './spec.js';

/** Micro-batches per step when the job does not say: so many workers can share a step. */
export const DEFAULT_MICRO_BATCHES = 16;

/** Rows per micro-batch: the job's, else the batch cut into DEFAULT_MICRO_BATCHES. */
export function microBatchRows(spec: JobSpec): number {
  return spec.training.microBatch ?? Math.max(1, Math.ceil(spec.training.batchSize / DEFAULT_MICRO_BATCHES));
}

/** Micro-batches in a full batch: the most a step has, and so the most workers that share one. */
export function microBatchesPerStep(spec: JobSpec): number {
  return microBatchCount(spec.training.batchSize, microBatchRows(spec));
}

/** The bound of a run's first step, before any step has measured its gradients: any will do, an overflow only computes the step again. */
export const FIRST_BOUND = 1;

export class ExactStep {
  /** What the ring sums (layout above). */
  readonly wire: Float64Array;
  readonly microBatch: number;
  /** Micro-batches in a full batch: the slots, and the sum's `parts`. */
  readonly parts: number;
  private readonly size: number;
  private readonly sum: ExactSum;
  /** One micro-batch's gradient and statistics, as computeGradients writes them. */
  private readonly grad: Float32Array;

  constructor(spec: JobSpec, mlp: Mlp, gradientLength: number) {
    this.size = mlp.layout.size;
    this.microBatch = microBatchRows(spec);
    this.parts = microBatchesPerStep(spec);
    this.wire = new Float64Array(this.size + 2 + 2 * this.parts);
    this.sum = new ExactSum(this.wire.subarray(0, this.size));
    this.grad = new Float32Array(gradientLength);
  }

  /**
   * Computes this worker's micro-batches of the step on the scale for `bound`, sums them
   * across the workers with `allReduce`, and writes the step's summed gradient and
   * statistics into `out` (computeGradients' layout). Resolves to the next step's bound.
   * `timing` receives the milliseconds spent computing and in the collective.
   */
  async run(
    s: {
      readonly spec: JobSpec;
      readonly data: PreparedDataset;
      readonly mlp: Mlp;
      readonly loss: LossName;
      readonly epoch: number;
      readonly step: number;
      readonly globalStep: number;
      readonly rank: number;
      readonly world: number;
      readonly scratch: BatchScratch;
    },
    bound: number,
    allReduce: (wire: Float64Array) => Promise<void>,
    out: Float32Array,
    timing: { computeMs: number; commMs: number },
  ): Promise<number> {
    const { spec, data, mlp } = s;
    const { batchSize, seed } = spec.training;
    const n = data.train.rows;
    const [bStart, bEnd] = batchRange(n, batchSize, s.step);
    const { first, end } = microBatchRange(bEnd - bStart, this.microBatch, s.rank, s.world);
    const indices = batchIndices({ n, batchSize, seed, epoch: s.epoch, step: s.step, rank: s.rank, world: s.world, microBatch: this.microBatch });
    const { size, parts, wire, grad } = this;
    for (let attempt = 0; ; attempt++) {
      const t0 = performance.now();
      wire.fill(0);
      this.sum.begin(bound, parts);
      for (let k = first; k < end; k++) {
        const at = (k - first) * this.microBatch;
        const batch = trainingBatch(data.train, indices.subarray(at, Math.min(indices.length, at + this.microBatch)), spec.data.augment, { seed, epoch: s.epoch }, s.scratch);
        await computeGradients(mlp, batch, { loss: s.loss, seed, step: s.globalStep }, grad);
        wire[size + 2 + parts + k] = this.sum.add(grad.subarray(0, size));
        wire[size + 2 + k] = grad[size + LOSS_SUM]!;
        wire[size] = wire[size]! + grad[size + SAMPLE_COUNT]!;
        wire[size + 1] = wire[size + 1]! + grad[size + CORRECT_COUNT]!;
      }
      const t1 = performance.now();
      await allReduce(wire);
      timing.computeMs += t1 - t0;
      timing.commMs += performance.now() - t1;
      let largest = 0;
      for (let k = 0; k < parts; k++) largest = Math.max(largest, wire[size + 2 + parts + k]!);
      if (this.sum.fits(largest)) {
        this.finish(out);
        // A step whose gradients are all zero says nothing about the next one's: keep the bound.
        return largest > 0 ? largest * 2 ** HEADROOM_BITS : bound;
      }
      // Some micro-batch had an element past the bound: every worker saw the same maxima,
      // so every worker computes the step again, on the scale of the largest one.
      if (attempt > 0) throw new Error(`the exact reduction overflowed twice at step ${s.globalStep}: largest element ${largest}, bound ${bound}`);
      bound = largest;
    }
  }

  /** The step's gradient (rounded to float32 once) and statistics into `out`. */
  private finish(out: Float32Array): void {
    const { size, parts, wire } = this;
    this.sum.readInto(out.subarray(0, size));
    let lossSum = 0;
    for (let k = 0; k < parts; k++) lossSum += wire[size + 2 + k]!;
    out[size + LOSS_SUM] = lossSum;
    out[size + SAMPLE_COUNT] = wire[size]!;
    out[size + CORRECT_COUNT] = wire[size + 1]!;
  }
}
