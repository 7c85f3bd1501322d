/**
 * The final model's confusion matrix, counted by the ring so that the coordinator never
 * needs the model (report.html shows it; `done` carries it). What it counts is libs/train's
 * confusion.ts plan: the test split (validation without test rows), all of it up to
 * CONFUSION_MAX_ROWS rows, else that many evenly spaced rows.
 *
 * Each rank evaluates its contiguous slice of a split (generation.ts's evaluator), and
 * the slices partition the split, so the counts of the slices add up to the split's:
 *
 * - A split within the bound is its own sample. Its evaluation already predicts every
 *   row, and evaluate() counts the matrix: the evaluator all-reduces the k x k counts
 *   with its loss, count and correct sums, and the last reduction is kept. The test
 *   split is evaluated only by the final evaluation; a validation split (the plan's when
 *   there are no test rows) every epoch too, and the final evaluation's comes last.
 * - A split past the bound is sampled: after training, each rank evaluates the sample's
 *   rows in its slice (`sampleIn`, rows it already holds from the final evaluation) and
 *   the counts are all-reduced: one forward pass over at most CONFUSION_MAX_ROWS rows,
 *   shared by the ring.
 *
 * Counts travel as float32 sums, exact up to 2^24: the matrix counts at most 10,000 rows.
 */
import { rankRange, type Table, takeRows } from '@ringtrain/data';
import { evaluateYielding, type LossName, type Mlp } from '@ringtrain/model';
import { bytesOf, type ConfusionCounts, type Split } from '@ringtrain/protocol';
import { type ConfusionPlan, evalData, sampleIn } from '@ringtrain/train';

/** What the sampled count needs of the generation: its ring's all-reduce and the rows a rank holds. */
export interface SampleContext {
  readonly rank: number;
  readonly world: number;
  /** The plan's split, as this worker holds it (rows outside what it fetched are zeros). */
  readonly table: Table;
  readonly loss: LossName;
  /** Makes sure the worker holds these rows of the split (they were fetched for the final evaluation). */
  readonly ensure: (split: Split, indices: readonly number[]) => Promise<void>;
  /** The ring's all-reduce (sums in place), tagged with the step. */
  readonly allReduce: (sums: Float32Array, step: number) => Promise<void>;
}

export class ConfusionCounter {
  /** The last all-reduced counts, k x k row-major; null before any. */
  private counted: Float32Array | null = null;

  constructor(readonly plan: ConfusionPlan | null) {}

  /** Whether the plan's split is sampled (past the bound): counted once after training, not by the evaluator. */
  get sampled(): boolean {
    return this.plan !== null && this.plan.rows < this.plan.splitRows;
  }

  /** How many counts the evaluation of `split` all-reduces beside its sums: k x k for the plan's split when it is its own sample, else none. */
  countsFor(split: Split): number {
    const p = this.plan;
    return p !== null && split === p.split && !this.sampled ? p.classes * p.classes : 0;
  }

  /** This rank's counts into `into` (k x k), from its evaluation's confusion matrix. */
  static flatten(matrix: readonly (readonly number[])[] | null, into: Float32Array | Float64Array): void {
    if (matrix === null) return;
    const k = matrix.length;
    matrix.forEach((row, i) => into.set(row, i * k));
  }

  /** The all-reduced counts of the plan's split (a view the caller no longer changes). */
  took(counts: Float32Array | Float64Array): void {
    this.counted = Float32Array.from(counts);
  }

  /** The sampled count, after training: each rank counts the sample's rows in its slice with the final model, and the ring adds them up. */
  async countSample(mlp: Mlp, step: number, c: SampleContext): Promise<void> {
    const p = this.plan;
    if (p === null || !this.sampled) return;
    const [a, b] = rankRange(p.splitRows, c.rank, c.world);
    const rows = sampleIn(p, a, b);
    await c.ensure(p.split, rows);
    const sums = new Float32Array(p.classes * p.classes);
    if (rows.length > 0) ConfusionCounter.flatten((await evaluateYielding(mlp, evalData(takeRows(c.table, rows)), c.loss)).confusion, sums);
    await c.allReduce(sums, step);
    this.took(sums);
  }

  /** What `done` carries: the plan's split, its rows and the counts; null for a job without a matrix, or before the counts are in. */
  message(): ConfusionCounts | null {
    const p = this.plan;
    if (p === null || this.counted === null) return null;
    return { split: p.split, rows: p.rows, counts: bytesOf(Uint32Array.from(this.counted)) };
  }
}
