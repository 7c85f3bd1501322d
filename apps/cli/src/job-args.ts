/**
 * From command-line options to a resolved job: the spec (default: the built-in Iris
 * example), its output directory, and the checkpoint to continue from. Shared by
 * `train`, `local` and `coordinator`, which differ only in when they resume.
 */
import { existsSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { absoluteSource } from '@ringtrain/data';
import { BACKEND_NAMES, type BackendName } from '@ringtrain/model';
import { type CheckpointHead, CHECKPOINTS_DIR, latestCheckpointHead, loadJobSpec, resolveInit, resumeMismatches, TrainError, type JobSpec } from '@ringtrain/train';
import { UsageError } from './errors.js';

/** The repository's examples/ folder, found from this file. */
export const EXAMPLES_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../../examples');

export interface JobArgs {
  readonly job?: string | undefined;
  readonly out?: string | undefined;
  readonly data?: string | undefined;
  readonly label?: string | undefined;
  /** false (--no-header): the CSV file has no header; replaces data.header. */
  readonly header?: false | undefined;
  readonly backend?: string | undefined;
  /** required: fail without a checkpoint (--resume); if-present: use one when there is one (the coordinator); never: start afresh. */
  readonly resume: 'required' | 'if-present' | 'never';
}

export interface ResolvedJob {
  readonly spec: JobSpec;
  readonly outDir: string;
  /** The newest valid checkpoint, verified but its state not loaded: `train` loads it, a coordinator streams it from the files. */
  readonly checkpoint: CheckpointHead | null;
}

export function checkBackend(backend: string | undefined): void {
  if (backend !== undefined && !BACKEND_NAMES.includes(backend as BackendName)) {
    throw new UsageError(`--backend must be one of ${BACKEND_NAMES.join(', ')}, got "${backend}"`);
  }
}

/**
 * A fresh run into a directory that holds checkpoints of an earlier run: its own
 * checkpoints would mix with them (and be pruned as the oldest). The earlier ones move
 * to checkpoints.previous/ (replacing an older set there), so a forgotten --resume
 * costs nothing that cannot be moved back.
 */
async function setAsidePreviousCheckpoints(outDir: string, log: Logger): Promise<void> {
  const dir = join(outDir, CHECKPOINTS_DIR);
  if (!existsSync(dir)) return;
  const aside = `${dir}.previous`;
  await rm(aside, { recursive: true, force: true });
  await rename(dir, aside);
  log.warn({ moved: dir, to: aside }, 'a fresh run: the checkpoints of an earlier run in --out were set aside (to continue that run instead, move them back and use --resume)');
}

/** The spec of --job (default the Iris example) as a run would use it, data source and init made absolute; reads nothing else and writes nothing (`ringtrain plan`). */
export async function specOnly(job: string | undefined, backend: string | undefined): Promise<JobSpec> {
  checkBackend(backend);
  const jobPath = resolve(job ?? resolve(EXAMPLES_DIR, 'iris.yaml'));
  const spec = await loadJobSpec(jobPath);
  const resolved = resolveInit({ ...spec, data: { ...spec.data, source: absoluteSource(spec.data.source, dirname(jobPath)) } }, dirname(jobPath));
  return backend ? { ...resolved, training: { ...resolved.training, backend: backend as BackendName } } : resolved;
}

export async function resolveJob(args: JobArgs, log: Logger): Promise<ResolvedJob> {
  checkBackend(args.backend);
  const jobPath = resolve(args.job ?? resolve(EXAMPLES_DIR, 'iris.yaml'));
  const given = await loadJobSpec(jobPath);
  const outDir = resolve(args.out ?? `runs/${given.name}`);

  // Resuming without --job continues with the checkpoint's own spec.
  let checkpoint: CheckpointHead | null = null;
  if (args.resume !== 'never') {
    checkpoint = await latestCheckpointHead(outDir, (dir, err) => log.warn({ dir, code: err.code, reason: err.message }, 'skipping an invalid checkpoint'));
    if (!checkpoint && args.resume === 'required') {
      throw new TrainError('CHECKPOINT_NONE', `${outDir}: no valid checkpoint to resume from (looked in ${outDir}/checkpoints)`);
    }
    if (checkpoint) log.info({ checkpoint: checkpoint.dir, step: checkpoint.header.loop.globalStep, reason: checkpoint.reason }, 'resuming');
  }
  let spec: JobSpec = checkpoint && !args.job ? checkpoint.spec : given;
  // A relative path in the spec is relative to the spec; one given with --data, to the
  // cwd. Recorded absolute, so the run's job.yaml names the same data from anywhere.
  const specDir = checkpoint && !args.job ? process.cwd() : dirname(jobPath);
  const source = args.data ? absoluteSource(args.data) : absoluteSource(spec.data.source, specDir);
  spec = resolveInit({ ...spec, data: { ...spec.data, source } }, specDir);
  if (args.data) {
    // Other data: the spec's label column and header setting belong to the spec's source.
    const { label: _label, header: _header, ...rest } = spec.data;
    spec = { ...spec, data: rest };
  }
  if (args.label) spec = { ...spec, data: { ...spec.data, label: args.label } };
  if (args.header === false) spec = { ...spec, data: { ...spec.data, header: false } };
  if (args.backend) spec = { ...spec, training: { ...spec.training, backend: args.backend as BackendName } };
  if (args.resume === 'never') await setAsidePreviousCheckpoints(outDir, log);
  if (checkpoint) {
    const problems = resumeMismatches(checkpoint.spec, spec);
    if (problems.length > 0) {
      throw new TrainError('RESUME_MISMATCH', `the spec no longer matches the checkpoint in ${checkpoint.dir}:\n  ${problems.join('\n  ')}`, problems);
    }
  }
  return { spec, outDir, checkpoint };
}
