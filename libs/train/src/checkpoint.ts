/**
 * Checkpoints: everything that continues a run bit for bit, written so that a crash at
 * any moment leaves either the old set of checkpoints or the new one, never half of one.
 *
 *   DIR/checkpoints/step-000000123/
 *     model/model.json, model/weights.bin   the parameters, as a standard LayersModel
 *                                           (with ringtrain's metadata: task, normalizer)
 *     optimizer.bin                         optimizer slots, float32 little-endian
 *     best.bin                              early stopping's best weights (if any)
 *     state.json                            loop state, optimizer kind and iteration count,
 *                                           the resolved spec, lineage, validation loss
 *     manifest.json                         SHA-256 and size of every file above; written last
 *
 * Writing: into DIR/checkpoints/.tmp-..., every file fsynced, the directory fsynced,
 * renamed into place, the parent fsynced. Loading verifies the manifest before it reads
 * anything; a checkpoint that fails is reported and the one before it is tried, so
 * nothing unverified is ever loaded. Pruning keeps the newest `keep`, plus the one with
 * the lowest validation loss when `keepBest`.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type Architecture,
  type LineageEntry,
  Mlp,
  type ModelMetadata,
  type OptimizerState,
  paramLayout,
  saveModel,
  validateArchitecture,
} from '@ringtrain/model';
import { TrainError } from './errors.js';
import { verifySnapshot } from './snapshot-codec.js';
import { validateJobSpec, type JobSpec } from './spec.js';
import type { LoopState } from './loop.js';
import type { CheckpointReason, TrainSnapshot } from './trainer.js';

export const CHECKPOINTS_DIR = 'checkpoints';
const PREFIX = 'step-';
const FORMAT_VERSION = 1;

export type { LineageEntry };

interface StateFile {
  readonly formatVersion: number;
  readonly reason: CheckpointReason;
  readonly createdAt: string;
  readonly loop: LoopState;
  readonly optimizer: { readonly name: OptimizerState['name']; readonly iterations: number; readonly slots: number };
  readonly trainRows: number;
  readonly hasBest: boolean;
  /** At an epoch's end, that epoch's validation loss, for keep-best; else null. */
  readonly validationLoss: number | null;
  readonly spec: unknown;
  readonly lineage: readonly LineageEntry[];
  /** Dense layers kept fixed (fine-tuning), so that a resumed run keeps them fixed. */
  readonly frozenLayers: readonly number[];
  /** The model's shape; with it, weights.bin (in the layout order) is the parameters. */
  readonly arch: Architecture;
}

export interface Checkpoint {
  readonly dir: string;
  readonly reason: CheckpointReason;
  readonly snapshot: TrainSnapshot;
  readonly spec: JobSpec;
  readonly metadata: ModelMetadata;
  readonly arch: Architecture;
  readonly lineage: readonly LineageEntry[];
  readonly frozenLayers: ReadonlySet<number>;
}

export interface WriteCheckpointOptions {
  readonly spec: JobSpec;
  readonly metadata: ModelMetadata;
  readonly arch: Architecture;
  readonly reason: CheckpointReason;
  readonly lineage: readonly LineageEntry[];
  readonly frozenLayers?: readonly number[];
  readonly keep: number;
  readonly keepBest: boolean;
}

function stepDirName(step: number): string {
  return `${PREFIX}${String(step).padStart(9, '0')}`;
}

function bytesOf(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function floatsOf(b: Buffer, what: string): Float32Array {
  if (b.byteLength % 4 !== 0) throw new TrainError('CHECKPOINT_CORRUPT', `${what}: ${b.byteLength} bytes is not a whole number of float32`);
  // Copy: a Buffer may sit at an unaligned offset of a shared pool.
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

async function writeSynced(path: string, data: Uint8Array | string): Promise<void> {
  const fh = await open(path, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function syncDir(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function sha256(path: string): Promise<{ sha256: string; bytes: number }> {
  const data = await readFile(path);
  return { sha256: createHash('sha256').update(data).digest('hex'), bytes: data.byteLength };
}

/** Writes one checkpoint under root/checkpoints, then prunes; returns its directory. */
export async function writeCheckpoint(root: string, snap: TrainSnapshot, options: WriteCheckpointOptions): Promise<string> {
  const parent = join(root, CHECKPOINTS_DIR);
  await mkdir(parent, { recursive: true });
  const name = stepDirName(snap.loop.globalStep);
  const tmp = join(parent, `.tmp-${name}-${process.pid}-${Date.now()}`);
  await mkdir(tmp, { recursive: true });

  const mlp = Mlp.fromParams(options.arch, snap.params);
  try {
    await saveModel(mlp, join(tmp, 'model'), options.metadata);
  } finally {
    mlp.dispose();
  }
  await writeSynced(join(tmp, 'optimizer.bin'), bytesOf(snap.optimizer.slots));
  if (snap.bestParams) await writeSynced(join(tmp, 'best.bin'), bytesOf(snap.bestParams));
  const last = snap.loop.history.at(-1);
  const state: StateFile = {
    formatVersion: FORMAT_VERSION,
    reason: options.reason,
    createdAt: new Date().toISOString(),
    loop: snap.loop,
    optimizer: { name: snap.optimizer.name, iterations: snap.optimizer.iterations, slots: snap.optimizer.slots.length },
    trainRows: snap.trainRows,
    hasBest: snap.bestParams !== null,
    // Only a checkpoint taken at the end of an epoch holds that epoch's weights.
    validationLoss: snap.loop.stepInEpoch === 0 ? (last?.validation?.loss ?? null) : null,
    spec: options.spec,
    lineage: options.lineage,
    frozenLayers: options.frozenLayers ?? [],
    arch: options.arch,
  };
  await writeSynced(join(tmp, 'state.json'), `${JSON.stringify(state, null, 2)}\n`);

  const files = ['model/model.json', 'model/weights.bin', 'optimizer.bin', 'state.json', ...(snap.bestParams ? ['best.bin'] : [])];
  const manifest: Record<string, { sha256: string; bytes: number }> = {};
  for (const f of files) manifest[f] = await sha256(join(tmp, f));
  await syncDir(join(tmp, 'model'));
  await writeSynced(join(tmp, 'manifest.json'), `${JSON.stringify({ formatVersion: FORMAT_VERSION, files: manifest }, null, 2)}\n`);
  await syncDir(tmp);

  // A checkpoint of the same step may exist (a resumed run stopping where it started):
  // move it aside first, so that the name always holds a complete checkpoint.
  const target = join(parent, name);
  const aside = `${tmp}-replaced`;
  const existed = await stat(target).then(() => true, () => false);
  if (existed) await rename(target, aside);
  await rename(tmp, target);
  await syncDir(parent);
  if (existed) await rm(aside, { recursive: true, force: true });
  await prune(parent, options.keep, options.keepBest);
  return target;
}

async function listSteps(parent: string): Promise<string[]> {
  const names = await readdir(parent).catch(() => [] as string[]);
  return names.filter((n) => n.startsWith(PREFIX)).sort().reverse();
}

async function prune(parent: string, keep: number, keepBest: boolean): Promise<void> {
  const names = await listSteps(parent);
  const kept = new Set(names.slice(0, keep));
  if (keepBest) {
    let best: { name: string; loss: number } | null = null;
    for (const name of names) {
      const loss = await readFile(join(parent, name, 'state.json'), 'utf8')
        .then((t) => (JSON.parse(t) as StateFile).validationLoss)
        .catch(() => null);
      if (typeof loss === 'number' && (best === null || loss < best.loss)) best = { name, loss };
    }
    if (best) kept.add(best.name);
  }
  for (const name of names) if (!kept.has(name)) await rm(join(parent, name), { recursive: true, force: true });
  // Leftovers of writes that a crash interrupted.
  for (const name of await readdir(parent)) {
    if (name.startsWith('.tmp-') && !name.includes(`-${process.pid}-`)) await rm(join(parent, name), { recursive: true, force: true });
  }
}

function corrupt(dir: string, what: string): TrainError {
  return new TrainError('CHECKPOINT_CORRUPT', `${dir}: ${what}`);
}

/** Verifies every file against the manifest, then reads the checkpoint. */
export async function readCheckpoint(dir: string): Promise<Checkpoint> {
  let manifest: { formatVersion?: unknown; files?: Record<string, { sha256: string; bytes: number }> };
  try {
    manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'));
  } catch (err) {
    throw corrupt(dir, `manifest.json is missing or unreadable (${(err as Error).message})`);
  }
  if (manifest.formatVersion !== FORMAT_VERSION || typeof manifest.files !== 'object' || manifest.files === null) {
    throw corrupt(dir, `manifest.json is not a version ${FORMAT_VERSION} manifest`);
  }
  for (const f of ['model/model.json', 'model/weights.bin', 'optimizer.bin', 'state.json']) {
    if (!(f in manifest.files)) throw corrupt(dir, `the manifest does not list ${f}`);
  }
  for (const [file, want] of Object.entries(manifest.files)) {
    const got = await sha256(join(dir, file)).catch(() => null);
    if (got === null) throw corrupt(dir, `${file} is missing`);
    if (got.bytes !== want.bytes) throw corrupt(dir, `${file} has ${got.bytes} bytes, the manifest says ${want.bytes}`);
    if (got.sha256 !== want.sha256) throw corrupt(dir, `${file} does not match its SHA-256 in the manifest`);
  }
  const state = JSON.parse(await readFile(join(dir, 'state.json'), 'utf8')) as StateFile;
  if (state.formatVersion !== FORMAT_VERSION) throw corrupt(dir, `state.json has format ${state.formatVersion}`);
  if (state.hasBest && !('best.bin' in manifest.files)) throw corrupt(dir, 'state.json names best weights the manifest lacks');
  const spec = validateJobSpec(state.spec, join(dir, 'state.json'));
  try {
    validateArchitecture(state.arch);
  } catch (err) {
    throw corrupt(dir, `state.json: ${(err as Error).message}`);
  }
  // No TensorFlow.js needed: weights.bin holds the kernels and biases in the layout order
  // (saveModel writes them so), so it is the flat parameter vector itself.
  const size = paramLayout(state.arch).size;
  const params = floatsOf(await readFile(join(dir, 'model', 'weights.bin')), `${dir}/model/weights.bin`);
  if (params.length !== size) throw corrupt(dir, `model/weights.bin holds ${params.length} values; the architecture has ${size}`);
  const metadata = (JSON.parse(await readFile(join(dir, 'model', 'model.json'), 'utf8')) as { userDefinedMetadata?: { ringtrain?: ModelMetadata } })
    .userDefinedMetadata?.ringtrain;
  if (!metadata) throw corrupt(dir, 'model/model.json has no ringtrain metadata');
  const slots = floatsOf(await readFile(join(dir, 'optimizer.bin')), `${dir}/optimizer.bin`);
  if (slots.length !== state.optimizer.slots) throw corrupt(dir, `optimizer.bin holds ${slots.length} values, state.json says ${state.optimizer.slots}`);
  const bestParams = state.hasBest ? floatsOf(await readFile(join(dir, 'best.bin')), `${dir}/best.bin`) : null;
  if (bestParams && bestParams.length !== size) throw corrupt(dir, 'best.bin does not match the model size');
  const snapshot: TrainSnapshot = {
    loop: state.loop,
    params,
    optimizer: { name: state.optimizer.name, iterations: state.optimizer.iterations, slots },
    bestParams,
    trainRows: state.trainRows,
  };
  // What its numbers say, as for a state a worker sends: finite, and a loop the job could reach.
  try {
    verifySnapshot(snapshot, spec, state.trainRows);
  } catch (err) {
    throw corrupt(dir, (err as Error).message);
  }
  return { dir, reason: state.reason, spec, metadata, arch: state.arch, lineage: state.lineage, frozenLayers: new Set(state.frozenLayers), snapshot };
}

/**
 * The newest checkpoint under root/checkpoints that verifies; each one that does not is
 * passed to onInvalid (to be logged) and skipped. Null when there is none.
 */
export async function latestCheckpoint(root: string, onInvalid?: (dir: string, err: TrainError) => void): Promise<Checkpoint | null> {
  const parent = join(root, CHECKPOINTS_DIR);
  for (const name of await listSteps(parent)) {
    const dir = join(parent, name);
    try {
      return await readCheckpoint(dir);
    } catch (err) {
      // A bad file is a corrupt checkpoint; anything else (a bug, no disk) is not ours to hide.
      if (!(err instanceof TrainError || err instanceof SyntaxError)) throw err;
      onInvalid?.(dir, err instanceof TrainError ? err : corrupt(dir, err.message));
    }
  }
  return null;
}
