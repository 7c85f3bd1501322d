/**
 * `ringtrain train`: one process, the whole job. Loads and validates the spec, prepares
 * the data, trains with progress, writes model/, metrics.json and job.yaml, and prints
 * the final metrics. Without --job it runs the built-in Iris example.
 */
import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Logger } from 'pino';
import { absoluteSource } from '@ringtrain/data';
import { BACKEND_NAMES, type BackendName } from '@ringtrain/model';
import {
  type Checkpoint,
  latestCheckpoint,
  loadJobSpec,
  openJob,
  resolveInit,
  resumeMismatches,
  StepLog,
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
  const job = await openJob(spec, checkpoint);
  const { data, loss, mlp, frozenLayers, lineage, metadata } = job;
  {
    log.info(
      {
        source: data.source,
        train: data.train.rows,
        validation: data.validation.rows,
        test: data.test.rows,
        features: data.train.cols,
        task: data.task.kind,
        ms: Math.round(job.dataMs),
      },
      'data ready',
    );
    if (spec.init && !checkpoint) log.info({ from: spec.init.from, frozen: [...frozenLayers], replaceHead: spec.init.replaceHead }, 'fine-tuning');
    log.info({ job: spec.name, parameters: mlp.layout.size, loss, epochs: spec.training.epochs, batchSize: spec.training.batchSize }, 'training');
    const progress = new Progress(log);
    await mkdir(outDir, { recursive: true });
    const steps = new StepLog(outDir);
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
            steps.flush();
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
        onStep: (p) => {
          steps.add({ step: p.globalStep, epoch: p.epoch, loss: p.stepLoss, samples: p.stepSamples });
          progress.step(p);
        },
        onEpoch: (r) => {
          steps.flush();
          progress.epoch(r, spec.training.epochs);
        },
        shouldStop: stop,
      });
      steps.flush();
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
  }
}
