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
  loadJobSpec,
  resolveLoss,
  summarize,
  train,
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
      backend: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.backend !== undefined && !BACKEND_NAMES.includes(values.backend as BackendName)) {
    throw new UsageError(`--backend must be one of ${BACKEND_NAMES.join(', ')}, got "${values.backend}"`);
  }
  const jobPath = resolve(values.job ?? resolve(EXAMPLES_DIR, 'iris.yaml'));
  let spec: JobSpec = await loadJobSpec(jobPath);
  // A relative path in the spec is relative to the spec; one given with --data, to the
  // cwd. Recorded absolute, so the run's job.yaml names the same data from anywhere.
  const source = values.data ? absoluteSource(values.data) : absoluteSource(spec.data.source, dirname(jobPath));
  spec = { ...spec, data: { ...spec.data, source } };
  if (values.backend) spec = { ...spec, training: { ...spec.training, backend: values.backend as BackendName } };
  const outDir = resolve(values.out ?? `runs/${spec.name}`);

  const backend = await useBackend(spec.training.backend, log);

  const loadStart = performance.now();
  const data = await prepareDataset({
    source: spec.data.source,
    ...(spec.data.label ? { label: spec.data.label } : {}),
    ...(spec.data.task ? { task: spec.data.task } : {}),
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

  const loss = resolveLoss(spec, data.task);
  const mlp = Mlp.create(architectureFor(spec, data.train.cols, data.task), spec.training.seed);
  log.info({ job: spec.name, parameters: mlp.layout.size, loss, epochs: spec.training.epochs, batchSize: spec.training.batchSize }, 'training');

  const progress = new Progress();
  try {
    const result = await train({
      spec,
      data,
      mlp,
      loss,
      onStep: (p) => progress.step(p),
      onEpoch: (r) => progress.epoch(r, spec.training.epochs),
      shouldStop: stop,
    });
    if (result.stoppedEarly) log.info({ bestEpoch: result.bestEpoch, epochs: result.history.length }, 'early stopping: best weights restored');
    if (result.interrupted) log.warn({ steps: result.steps }, 'interrupted: writing the model as it stands');
    const summary = summarize(spec, data, backend.name, loss, result);
    await writeRunOutput(outDir, spec, data, summary, result);
    log.info({ out: outDir, seconds: Number(result.seconds.toFixed(2)) }, 'model written');
    process.stdout.write(values.json ? `${JSON.stringify(summary)}\n` : `${summaryTable(summary)}\noutput: ${outDir}\n`);
    return { outDir, summary };
  } finally {
    mlp.dispose();
  }
}
