/**
 * Opening a job: everything between a resolved spec and the first step, shared by
 * `ringtrain train` (one process) and the coordinator (which then hands the pieces to
 * its workers). Prepares the data (a fine-tuning run reuses its source model's
 * normalization statistics, a resume checks that the data is what the checkpoint was
 * trained on), resolves the loss, and builds the starting model: from the checkpoint,
 * from a fine-tuning source, or fresh from the seed. An explicit cross-entropy loss
 * without data.task makes integer CSV labels classes; the job says so (taskInference)
 * for the app to log, since the task then follows from more than the data.
 */
import { prepareDataset, type PreparedDataset } from '@ringtrain/data';
import { type Architecture, type LossName, Mlp, type ModelMetadata, paramLayout, type ParamSegment, readParamsSync } from '@ringtrain/model';
import { type Checkpoint, type CheckpointHead, type LineageEntry, readCheckpointWeightsSync, type WriteCheckpointOptions } from './checkpoint.js';
import type { CheckpointReason } from './trainer.js';
import { TrainError } from './errors.js';
import { fineTuneStart, inheritedNormalizer, loadInitialModel } from './init.js';
import { modelMetadata } from './output.js';
import type { JobSpec } from './spec.js';
import { architectureFor, integerLabelsAreClasses, resolveLoss, type TaskInference, taskInference } from './job-model.js';

export interface OpenedJob {
  readonly spec: JobSpec;
  readonly data: PreparedDataset;
  readonly loss: LossName;
  /** The model's architecture. */
  readonly arch: Architecture;
  /**
   * The starting weights, made or read on first use: the coordinator never asks for
   * them (it streams startParams, or its checkpoint's files), so it does not hold 4
   * bytes a parameter for nothing.
   */
  readonly mlp: Mlp;
  /**
   * Where the starting weights come from, for a job that does not resume: a fresh job's
   * from the seed, a fine-tuning job's from its base model's files (and a new head from
   * the seed). What a coordinator streams to its workers without holding them. Null when
   * continuing from a checkpoint (its files are the source).
   */
  readonly startParams: readonly ParamSegment[] | null;
  readonly frozenLayers: ReadonlySet<number>;
  readonly lineage: readonly LineageEntry[];
  /** What the saved model and checkpoints record about the data. */
  readonly metadata: ModelMetadata;
  /** Set when the task followed from the loss too (integer labels with cross-entropy): for the app to log. */
  readonly taskInference: TaskInference | null;
  /** Set when continuing from a checkpoint: with its state (train) or without (a coordinator, which streams it from the files). */
  readonly checkpoint: CheckpointHead | null;
  readonly dataMs: number;
}

/** Rejects a checkpoint whose data differs from `data` (RESUME_MISMATCH). */
function checkSameData(checkpoint: CheckpointHead, data: PreparedDataset): void {
  const issues: string[] = [];
  if (data.train.rows !== checkpoint.header.trainRows) {
    issues.push(`data: the training split has ${data.train.rows} rows, the checkpoint was trained on ${checkpoint.header.trainRows}`);
  } else if (JSON.stringify(data.normalizer) !== JSON.stringify(checkpoint.metadata.normalizer)) {
    issues.push(`data: ${data.source} has other values than the data the checkpoint was trained on (its normalization statistics differ)`);
  }
  if (issues.length > 0) throw new TrainError('RESUME_MISMATCH', `cannot resume from ${checkpoint.dir}:\n  ${issues.join('\n  ')}`, issues);
}

/** `spec` has absolute paths (absoluteSource, resolveInit); `checkpoint` was checked with resumeMismatches. */
export async function openJob(spec: JobSpec, checkpoint: Checkpoint | CheckpointHead | null): Promise<OpenedJob> {
  const init = spec.init && !checkpoint ? await loadInitialModel(spec) : null;
  const loadStart = performance.now();
  const inherited = checkpoint?.spec.init ? checkpoint.metadata.normalizer : init ? inheritedNormalizer(init) : null;
  const data = await prepareDataset({
    source: spec.data.source,
    ...(spec.data.label ? { label: spec.data.label } : {}),
    ...(spec.data.header !== undefined ? { header: spec.data.header } : {}),
    ...(spec.data.task ? { task: spec.data.task } : {}),
    ...(integerLabelsAreClasses(spec) ? { integerClasses: true } : {}),
    ...(spec.data.classes ? { classes: spec.data.classes } : {}),
    ...(inherited ? { normalizer: inherited } : {}),
    split: spec.data.split,
    normalize: spec.data.normalize,
  });
  const dataMs = performance.now() - loadStart;
  if (checkpoint) checkSameData(checkpoint, data);
  const loss = resolveLoss(spec, data.task, data.labelColumn);
  /** The starting weights, or how to make them when first asked for. */
  let mlp: Mlp | (() => Mlp);
  let arch: Architecture;
  let startParams: readonly ParamSegment[] | null = null;
  let frozenLayers: ReadonlySet<number> = new Set();
  let lineage: readonly LineageEntry[] = [];
  if (checkpoint) {
    // The same array: a resumed run adopts the snapshot's weights anyway (TrainOptions.resume).
    // Without the state in memory (a coordinator's), the weights are read only if asked for.
    const head = checkpoint;
    arch = head.arch;
    mlp = 'snapshot' in head ? Mlp.adopt(arch, head.snapshot.params) : () => Mlp.adopt(head.arch, readCheckpointWeightsSync(head));
    lineage = head.lineage;
    frozenLayers = head.frozenLayers;
  } else if (init) {
    const start = fineTuneStart(spec, init, data.train.cols, data.task);
    arch = start.arch;
    startParams = start.params;
    mlp = () => Mlp.adopt(start.arch, readParamsSync(start.params, paramLayout(start.arch).size));
    frozenLayers = start.frozenLayers;
    lineage = start.lineage;
  } else {
    const fresh = architectureFor(spec, data.train.cols, data.task);
    arch = fresh;
    startParams = [{ kind: 'initial', arch: fresh, seed: spec.training.seed, at: 0, count: paramLayout(fresh).size }];
    mlp = () => Mlp.create(fresh, spec.training.seed);
  }
  const metadata: ModelMetadata = {
    ...modelMetadata(data, loss),
    ...(spec.data.label ? { label: spec.data.label } : {}),
    ...(lineage.length ? { lineage } : {}),
  };
  const opened = { spec, data, loss, arch, startParams, frozenLayers, lineage, metadata, taskInference: taskInference(spec, data), checkpoint, dataMs };
  if (mlp instanceof Mlp) return { ...opened, mlp };
  const make = mlp;
  let made: Mlp | null = null;
  return {
    ...opened,
    get mlp(): Mlp {
      return (made ??= make());
    },
  };
}

/** How a job's checkpoints are written: its spec, model metadata, lineage and retention. */
export function checkpointOptions(job: OpenedJob, reason: CheckpointReason): WriteCheckpointOptions {
  const { spec, metadata, arch, lineage, frozenLayers } = job;
  return { spec, metadata, arch, reason, lineage, frozenLayers: [...frozenLayers], keep: spec.checkpoint.keep, keepBest: spec.checkpoint.keepBest };
}
