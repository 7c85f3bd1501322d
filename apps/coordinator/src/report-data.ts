/**
 * What a run's report.html shows, as one plain object that the page embeds as JSON and
 * draws (dashboard/report.js): the step losses (thinned), the epoch history, the
 * generations, the final metrics, a confusion matrix, the timings and the resolved spec.
 *
 * Its size is bounded whatever the run's length: at most `REPORT_MAX_STEPS` step
 * losses (every k-th, the last one included: `thinSteps`, as the dashboard's stream
 * thins a snapshot), each to 6 significant digits. The confusion matrix counts at most
 * `CONFUSION_MAX_ROWS` rows of the test split (evenly spaced when it has more, and the
 * matrix says how many it counted; libs/train's confusion.ts): `ringtrain train` counts
 * them here with its final model (`confusionOf`), the cluster's workers during their
 * final evaluation (the coordinator never holds the model; `done` carries the matrix).
 */
import { stepsPerEpoch, type PreparedDataset, type Table, takeRows, type Task } from '@ringtrain/data';
import { evaluateYielding, type LossName, type Mlp } from '@ringtrain/model';
import { CONFUSION_MAX_ROWS, confusionPlan, type EpochRecord, evalData, type JobSpec, jobSpecToYaml, type RunSummary, sampledRow } from '@ringtrain/train';
import { thinSteps } from './stream.js';

export const REPORT_MAX_STEPS = 3000;
export { CONFUSION_MAX_ROWS };

/** Where a generation (a ring) began: the dashboard's dashed lines. */
export interface GenerationMark {
  readonly generation: number;
  /** Steps done when it formed. */
  readonly step: number;
  readonly world: number;
}

export interface Confusion {
  /** The split it was counted on: the test split, or validation when there is no test split. */
  readonly split: 'test' | 'validation';
  readonly classes: readonly string[];
  /** counts[true class][predicted class]. */
  readonly matrix: readonly (readonly number[])[];
  /** Rows counted; fewer than `splitRows` when the split was sampled. */
  readonly rows: number;
  readonly splitRows: number;
}

export interface ReportData {
  readonly format: 1;
  readonly job: string;
  /** Interrupted: the curves so far, no final metrics and no confusion matrix. */
  readonly outcome: 'completed' | 'interrupted';
  readonly writtenAt: string;
  readonly source: string;
  readonly backend: string;
  readonly task: Task;
  readonly loss: LossName;
  readonly parameters: number;
  readonly rows: { readonly train: number; readonly validation: number; readonly test: number };
  readonly timings: {
    /** Wall time of the run (a resumed run counts from its resume). */
    readonly seconds: number;
    readonly samplesPerSecond: number;
    readonly steps: number;
    readonly plannedSteps: number;
    readonly epochs: number;
    readonly plannedEpochs: number;
    readonly stepsPerEpoch: number;
    readonly bestEpoch: number;
    readonly stoppedEarly: boolean;
    readonly earlyStopping: { readonly patience: number; readonly minDelta: number } | null;
  };
  /** Step losses at x = steps done (the dashboard's axis), thinned; `logged` is how many steps.jsonl has. */
  readonly steps: { readonly x: readonly number[]; readonly y: readonly number[]; readonly logged: number };
  readonly epochs: readonly EpochRecord[];
  readonly generations: readonly GenerationMark[];
  /** Null for an interrupted run. */
  readonly final: RunSummary['final'] | null;
  readonly confusion: Confusion | null;
  /** The resolved spec, as job.yaml has it. */
  readonly spec: string;
}

export interface ReportInput {
  readonly spec: JobSpec;
  readonly data: PreparedDataset;
  /** `final` null and `interrupted` true for a run stopped before its end. */
  readonly summary: RunSummary;
  /** [0-based step, loss], in step order (readStepLosses). */
  readonly steps: readonly (readonly [number, number])[];
  readonly generations?: readonly GenerationMark[];
  /** The final model, to count the confusion matrix with (`ringtrain train`); null for an interrupted run. */
  readonly model?: Mlp | null;
  /** The confusion matrix counted elsewhere (the cluster's workers); when given, `model` is not evaluated. */
  readonly confusion?: Confusion | null;
  readonly now?: Date;
}

const round = (v: number): number => (Number.isFinite(v) ? Number(v.toPrecision(6)) : v);

export async function reportData(input: ReportInput): Promise<ReportData> {
  const { spec, data, summary } = input;
  const perEpoch = stepsPerEpoch(data.train.rows, spec.training.batchSize);
  const thinned = thinSteps(input.steps, REPORT_MAX_STEPS, 1);
  const interrupted = summary.interrupted || summary.final === null;
  const early = spec.training.earlyStopping;
  const confusion = interrupted ? null : input.confusion !== undefined ? input.confusion : input.model ? await confusionOf(input.model, data, summary.loss) : null;
  return {
    format: 1,
    job: summary.job,
    outcome: interrupted ? 'interrupted' : 'completed',
    writtenAt: (input.now ?? new Date()).toISOString(),
    source: summary.source,
    backend: summary.backend,
    task: data.task,
    loss: summary.loss,
    parameters: summary.parameters,
    rows: { train: data.train.rows, validation: data.validation.rows, test: data.test.rows },
    timings: {
      seconds: summary.seconds,
      samplesPerSecond: summary.samplesPerSecond,
      steps: summary.steps,
      plannedSteps: perEpoch * spec.training.epochs,
      epochs: summary.history.length,
      plannedEpochs: spec.training.epochs,
      stepsPerEpoch: perEpoch,
      bestEpoch: summary.bestEpoch,
      stoppedEarly: summary.stoppedEarly,
      earlyStopping: early ? { patience: early.patience, minDelta: early.minDelta } : null,
    },
    steps: { x: thinned.map(([s]) => s + 1), y: thinned.map(([, l]) => round(l)), logged: input.steps.length },
    epochs: summary.history,
    generations: (input.generations ?? []).map((g) => ({ generation: g.generation, step: g.step, world: g.world })),
    final: interrupted ? null : summary.final,
    confusion,
    spec: jobSpecToYaml(spec),
  };
}

/** The evenly spaced rows of `table` when it has more than `max` (libs/train's sampledRow). */
export function sampleRows(table: Table, max: number): Table {
  if (table.rows <= max) return table;
  return takeRows(table, Array.from({ length: max }, (_, i) => sampledRow(i, table.rows, max)));
}

/**
 * The confusion matrix of `mlp` on the test split (the validation split when the job
 * has no test rows), through the same evaluate() as `ringtrain eval`; null for
 * regression or when both splits are empty. Asynchronous: on webgpu (`ringtrain train
 * --backend webgpu`) tensors are read back asynchronously.
 */
export async function confusionOf(mlp: Mlp, data: PreparedDataset, loss: LossName, maxRows = CONFUSION_MAX_ROWS): Promise<Confusion | null> {
  const plan = confusionPlan(data, maxRows);
  if (plan === null || data.task.kind !== 'classification') return null;
  const table = sampleRows(data[plan.split], maxRows);
  const { confusion } = await evaluateYielding(mlp, evalData(table), loss);
  if (confusion === null) return null;
  return { split: plan.split, classes: data.task.classes, matrix: confusion, rows: table.rows, splitRows: plan.splitRows };
}
