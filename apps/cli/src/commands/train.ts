/**
 * `ringtrain train`: one process, the whole job. Loads and validates the spec, prepares
 * the data, trains with progress, writes model/, metrics.json and job.yaml, and prints
 * the final metrics. Without --job it runs the built-in Iris example.
 */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Logger } from 'pino';
import { absoluteSource, prepareDataset } from '@ringtrain/data';
import { BACKEND_NAMES, type BackendName, Mlp } from '@ringtrain/model';
import {
  architectureFor,
  type Checkpoint,
  fineTuneStart,
  inheritedNormalizer,
  latestCheckpoint,
  type LineageEntry,
  loadInitialModel,
  loadJobSpec,
  modelMetadata,
  resolveInit,
  resolveLoss,
  resumeMismatches,
  summarize,
  train,
  TrainError,
  writeCheckpoint,
  writeRunOutput,
  type JobSpec,
  type RunSummary,
} from '@ringtrain/train';
import { useBackend } from '../backend.js';
import { UsageError } from '../errors.js';
import { Progress } from '../progress.js';

/** The repository's examples/ folder, found from this file. */
export const EXAMPLES_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../../../examples');

export interface TrainCommandResult {
  readonly outDir: string;
  readonly summary: RunSummary;
}

function fmt(v: number | null | undefined): string {
  return v === null || v === undefined ? '-' : v.toFixed(4);
}

export function summaryTable(s: RunSummary): string {
  const rows: [string, RunSummary['final']['train'] | null][] = [
    ['train', s.final.train],
    ['validation', s.final.validation],
    ['test', s.final.test],
  ];
  const lines = [`split        loss      accuracy`];
  for (const [name, m] of rows) if (m) lines.push(`${name.padEnd(12)} ${fmt(m.loss).padEnd(9)} ${fmt(m.accuracy)}`);
  return lines.join('\n');
}

export async function trainCommand(argv: string[], log: Logger, stop: () => boolean): Promise<TrainCommandResult> {
  const { values } = parseArgs({
    args: argv,
    options: {
      job: { type: 'string' },
      out: { type: 'string' },
      data: { type: 'string' },
      label: { type: 'string' },
      backend: { type: 'string' },
      resume: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.backend !== undefined && !BACKEND_NAMES.includes(values.backend as BackendName)) {
    throw new UsageError(`--backend must be one of ${BACKEND_NAMES.join(', ')}, got "${values.backend}"`);
  }
  const jobPath = resolve(values.job ?? resolve(EXAMPLES_DIR, 'iris.yaml'));
  const given = await loadJobSpec(jobPath);
  const outDir = resolve(values.out ?? `runs/${given.name}`);

  // --resume without --job continues with the checkpoint's own spec.
  let checkpoint: Checkpoint | null = null;
  if (values.resume) {
    checkpoint = await latestCheckpoint(outDir, (dir, err) => log.warn({ dir, code: err.code, reason: err.message }, 'skipping an invalid checkpoint'));
    if (!checkpoint) throw new TrainError('CHECKPOINT_NONE', `${outDir}: no valid checkpoint to resume from (looked in ${outDir}/checkpoints)`);
    log.info({ checkpoint: checkpoint.dir, step: checkpoint.snapshot.loop.globalStep, reason: checkpoint.reason }, 'resuming');
  }
  let spec: JobSpec = checkpoint && !values.job ? checkpoint.spec : given;
  // A relative path in the spec is relative to the spec; one given with --data, to the
  // cwd. Recorded absolute, so the run's job.yaml names the same data from anywhere.
  const specDir = checkpoint && !values.job ? process.cwd() : dirname(jobPath);
  const source = values.data ? absoluteSource(values.data) : absoluteSource(spec.data.source, specDir);
  spec = resolveInit({ ...spec, data: { ...spec.data, source } }, specDir);
  if (values.data || values.label) {
    // Other data: the spec's label column belongs to the spec's source.
    const { label: _label, ...rest } = spec.data;
    spec = { ...spec, data: { ...rest, ...(values.label ? { label: values.label } : {}) } };
  }
  if (values.backend) spec = { ...spec, training: { ...spec.training, backend: values.backend as BackendName } };
  if (checkpoint) {
    const problems = resumeMismatches(checkpoint.spec, spec);
    if (problems.length > 0) {
      throw new TrainError('RESUME_MISMATCH', `the spec no longer matches the checkpoint in ${checkpoint.dir}:\n  ${problems.join('\n  ')}`, problems);
    }
  }

  const backend = await useBackend(spec.training.backend, log);
  const init = spec.init && !checkpoint ? await loadInitialModel(spec) : null;
  try {
    const loadStart = performance.now();
    // A fine-tuning run normalizes with its source model's statistics (carried in its
    // checkpoints too); any other run fits them, and a resume compares them below.
    const inherited = checkpoint?.spec.init ? checkpoint.metadata.normalizer : init ? inheritedNormalizer(init) : null;
    const data = await prepareDataset({
      source: spec.data.source,
      ...(spec.data.label ? { label: spec.data.label } : {}),
      ...(spec.data.task ? { task: spec.data.task } : {}),
      ...(spec.data.classes ? { classes: spec.data.classes } : {}),
      ...(inherited ? { normalizer: inherited } : {}),
      split: spec.data.split,
      normalize: spec.data.normalize,
    });
    log.info(
      {
        source: data.source,
        train: data.train.rows,
        validation: data.validation.rows,
        test: data.test.rows,
        features: data.train.cols,
        task: data.task.kind,
        ms: Math.round(performance.now() - loadStart),
      },
      'data ready',
    );
    if (checkpoint) {
      const issues: string[] = [];
      if (data.train.rows !== checkpoint.snapshot.trainRows) {
        issues.push(`data: the training split has ${data.train.rows} rows, the checkpoint was trained on ${checkpoint.snapshot.trainRows}`);
      } else if (JSON.stringify(data.normalizer) !== JSON.stringify(checkpoint.metadata.normalizer)) {
        issues.push(`data: ${data.source} has other values than the data the checkpoint was trained on (its normalization statistics differ)`);
      }
      if (issues.length > 0) throw new TrainError('RESUME_MISMATCH', `cannot resume from ${checkpoint.dir}:\n  ${issues.join('\n  ')}`, issues);
    }

    const loss = resolveLoss(spec, data.task);
    let mlp: Mlp;
    let frozenLayers: ReadonlySet<number> = new Set();
    let lineage: readonly LineageEntry[] = [];
    if (checkpoint) {
      mlp = Mlp.fromParams(checkpoint.arch, checkpoint.snapshot.params);
      lineage = checkpoint.lineage;
      frozenLayers = checkpoint.frozenLayers;
    } else if (init) {
      const start = fineTuneStart(spec, init, data.train.cols, data.task);
      mlp = start.mlp;
      frozenLayers = start.frozenLayers;
      lineage = start.lineage;
      log.info({ from: spec.init!.from, frozen: [...frozenLayers], replaceHead: spec.init!.replaceHead }, 'fine-tuning');
    } else {
      mlp = Mlp.create(architectureFor(spec, data.train.cols, data.task), spec.training.seed);
    }
    log.info({ job: spec.name, parameters: mlp.layout.size, loss, epochs: spec.training.epochs, batchSize: spec.training.batchSize }, 'training');

    const metadata = {
      ...modelMetadata(data, loss),
      ...(spec.data.label ? { label: spec.data.label } : {}),
      ...(lineage.length ? { lineage } : {}),
    };
    const progress = new Progress(log);
    try {
      const result = await train({
        spec,
        data,
        mlp,
        loss,
        frozenLayers,
        ...(checkpoint ? { resume: checkpoint.snapshot } : {}),
        checkpoint: {
          everySteps: spec.checkpoint.everySteps,
          everyEpoch: spec.checkpoint.everyEpoch,
          save: async (snapshot, reason) => {
            const dir = await writeCheckpoint(outDir, snapshot, {
              spec,
              metadata,
              arch: mlp.arch,
              reason,
              lineage,
              frozenLayers: [...frozenLayers],
              keep: spec.checkpoint.keep,
              keepBest: spec.checkpoint.keepBest,
            });
            log.debug({ dir, reason, step: snapshot.loop.globalStep }, 'checkpoint written');
          },
        },
        onStep: (p) => progress.step(p),
        onEpoch: (r) => progress.epoch(r, spec.training.epochs),
        shouldStop: stop,
      });
      if (result.stoppedEarly) log.info({ bestEpoch: result.bestEpoch, epochs: result.history.length }, 'early stopping: best weights restored');
      if (result.interrupted) log.warn({ steps: result.steps }, 'interrupted: checkpoint saved; continue with --resume');
      const summary = summarize(spec, data, backend.name, loss, result);
      await writeRunOutput(outDir, spec, data, summary, result, metadata);
      log.info({ out: outDir, seconds: Number(result.seconds.toFixed(2)) }, 'model written');
      process.stdout.write(values.json ? `${JSON.stringify(summary)}\n` : `${summaryTable(summary)}\noutput: ${outDir}\n`);
      return { outDir, summary };
    } finally {
      mlp.dispose();
    }
  } finally {
    init?.base.dispose();
  }
}
