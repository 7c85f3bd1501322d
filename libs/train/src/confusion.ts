/**
 * Which rows a run's confusion matrix counts (report.html's), in one place for the two
 * that count it: `ringtrain train`, which evaluates its final model on them itself, and
 * the cluster's workers, which count them during their final evaluation and all-reduce
 * the matrix (the coordinator never holds the model).
 *
 * The split: test, or validation when the job has no test rows; none for regression.
 * The rows: all of the split up to CONFUSION_MAX_ROWS; past it, that many evenly spaced
 * rows, row floor(i * n / max) for i = 0 .. max - 1 (the first row always among them),
 * so that the matrix costs a bounded forward pass whatever the split's size. A worker
 * that evaluates the contiguous slice [a, b) of the split counts the sample's rows in
 * its slice (`sampleIn`): the slices partition the split, so the sum over the ranks is
 * the whole sample.
 */
import type { PreparedDataset } from '@ringtrain/data';

/** The most rows the confusion matrix counts: a forward pass of its cost is cheap next to a run. */
export const CONFUSION_MAX_ROWS = 10_000;

export type ConfusionSplit = 'test' | 'validation';

/** What a job's confusion matrix counts: its split, that split's rows, and how many of them (fewer when sampled). */
export interface ConfusionPlan {
  readonly split: ConfusionSplit;
  /** Classes: the matrix is classes x classes. */
  readonly classes: number;
  readonly splitRows: number;
  /** Rows counted: min(splitRows, max). */
  readonly rows: number;
}

/** The job's confusion matrix, or null when it has none (regression, or neither a test nor a validation row). */
export function confusionPlan(data: Pick<PreparedDataset, 'task' | 'validation' | 'test'>, max = CONFUSION_MAX_ROWS): ConfusionPlan | null {
  if (data.task.kind !== 'classification') return null;
  const split: ConfusionSplit | null = data.test.rows > 0 ? 'test' : data.validation.rows > 0 ? 'validation' : null;
  if (split === null) return null;
  const splitRows = data[split].rows;
  return { split, classes: data.task.classes.length, splitRows, rows: Math.min(splitRows, max) };
}

/** The i-th row of the sample of `rows` rows of a split of `splitRows`. */
export function sampledRow(i: number, splitRows: number, rows: number): number {
  return rows >= splitRows ? i : Math.floor((i * splitRows) / rows);
}

/** The sample's rows that lie in [a, b), ascending. */
export function sampleIn(plan: Pick<ConfusionPlan, 'splitRows' | 'rows'>, a: number, b: number): number[] {
  const { splitRows, rows } = plan;
  if (rows >= splitRows) return Array.from({ length: Math.max(0, b - a) }, (_, k) => a + k);
  const out: number[] = [];
  // The first i whose row is >= a: row(i) = floor(i n / m) >= a  <=>  i >= ceil(a m / n).
  for (let i = Math.ceil((a * rows) / splitRows); i < rows; i++) {
    const r = sampledRow(i, splitRows, rows);
    if (r >= b) break;
    if (r >= a) out.push(r);
  }
  return out;
}
