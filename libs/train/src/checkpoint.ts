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
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type Architecture,
  layersModelJson,
  type LineageEntry,
  MODEL_JSON,
  type ModelMetadata,
  type OptimizerState,
  paramLayout,
  syncDir,
  validateArchitecture,
  WEIGHTS_BIN,
} from '@ringtrain/model';
import { TrainError } from './errors.js';
import { finiteIssue, type SnapshotShape, type StateHeader, StateParser, statePrefix, type StateSection, type StateSink, stateSource, verifyLoopState } from './snapshot-codec.js';
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

/**
 * A verified checkpoint without its arrays: what a coordinator needs to continue a job,
 * whose state it streams from the files (checkpointStream) rather than holding it.
 */
export interface CheckpointHead {
  readonly dir: string;
  readonly reason: CheckpointReason;
  /** The state's header: the loop, the optimizer's name and iterations, the arrays' lengths. */
  readonly header: StateHeader;
  readonly spec: JobSpec;
  readonly metadata: ModelMetadata;
  readonly arch: Architecture;
  readonly lineage: readonly LineageEntry[];
  readonly frozenLayers: ReadonlySet<number>;
}

/** A checkpoint with its state in memory: what `train --resume` continues from. */
export interface Checkpoint extends CheckpointHead {
  readonly snapshot: TrainSnapshot;
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

/** The SHA-256 and size of a file, read in pieces: a checkpoint's files may be larger than the memory it is worth holding. */
/**
 * A file's SHA-256 and size, read in pieces of `pieceBytes`; for a float file (`floats`
 * names its values, as in "params[12] is NaN") also its first value that is not finite.
 * Exported for its tests.
 */
export async function fileDigest(path: string, floats: string | null = null, pieceBytes = READ_PIECE_BYTES): Promise<{ sha256: string; bytes: number; notFinite: string | null }> {
  const hash = createHash('sha256');
  let bytes = 0;
  let notFinite: string | null = null;
  // Pieces need not end on a float: the bytes of a split one wait for the next piece.
  const aligned = floats !== null ? new Float32Array(Math.ceil(pieceBytes / 4) + 1) : null;
  let carry = Buffer.alloc(0);
  for await (const piece of createReadStream(path, { highWaterMark: pieceBytes }) as AsyncIterable<Buffer>) {
    hash.update(piece);
    if (aligned && notFinite === null) {
      const joined = carry.byteLength > 0 ? Buffer.concat([carry, piece]) : piece;
      const whole = joined.byteLength - (joined.byteLength % 4);
      new Uint8Array(aligned.buffer, 0, whole).set(joined.subarray(0, whole));
      const values = aligned.subarray(0, whole / 4);
      const first = (bytes - carry.byteLength) / 4;
      for (let i = 0; i < values.length; i++) {
        if (!Number.isFinite(values[i]!)) {
          notFinite = `${floats}[${first + i}] is ${values[i]}`;
          break;
        }
      }
      carry = Buffer.from(joined.subarray(whole));
    }
    bytes += piece.byteLength;
  }
  return { sha256: hash.digest('hex'), bytes, notFinite };
}

function digestOf(text: string): { sha256: string; bytes: number } {
  const data = Buffer.from(text);
  return { sha256: createHash('sha256').update(data).digest('hex'), bytes: data.byteLength };
}

/** The size of the pieces files are read and written in: one transfer chunk, so a stream of any size holds one at a time. */
const READ_PIECE_BYTES = 4 * 1024 * 1024;

/** One of a checkpoint's float files, written as its section of the state stream arrives, hashed as it goes. */
interface FloatFile {
  readonly path: string;
  readonly name: string;
  fh: FileHandle | null;
  readonly hash: Hash;
  bytes: number;
}

const SECTION_FILES: Record<StateSection, string> = { params: `model/${WEIGHTS_BIN}`, slots: 'optimizer.bin', best: 'best.bin' };

/**
 * Writes one checkpoint from a state stream (snapshot-codec.ts), holding one piece at a
 * time: the parser hands each section's floats here, each piece is checked finite and
 * appended to its file while hashed, and `finish` writes model.json, state.json and the
 * manifest, fsyncs and renames the directory into place, then prunes. The header is
 * verified before any float is taken (its loop must be one the job can reach, and
 * `accept` may refuse it); a stream that fails leaves nothing behind (`abort`).
 */
export class CheckpointWriter implements StateSink {
  private readonly parser: StateParser;
  private readonly files = new Map<StateSection, FloatFile>();
  private pending: Promise<unknown> = Promise.resolve();
  private done = false;

  private constructor(
    private readonly root: string,
    private readonly tmp: string,
    private readonly o: CheckpointWriterOptions,
    total: number | null,
  ) {
    this.parser = new StateParser(o.shape, this, total);
  }

  /** A writer for a stream of `total` bytes (null: unknown) into root/checkpoints. */
  static async open(root: string, o: CheckpointWriterOptions, total: number | null): Promise<CheckpointWriter> {
    const parent = join(root, CHECKPOINTS_DIR);
    await mkdir(parent, { recursive: true });
    temporaries += 1;
    const tmp = join(parent, `.tmp-${process.pid}-${temporaries}-${Date.now()}`);
    await mkdir(join(tmp, 'model'), { recursive: true });
    return new CheckpointWriter(root, tmp, o, total);
  }

  /** Takes the next bytes of the stream; resolves once they are written. Rejects with SNAPSHOT_INVALID at the first that cannot be right. */
  async push(bytes: Uint8Array): Promise<void> {
    for (let at = 0; at < bytes.byteLength; at += READ_PIECE_BYTES) this.parser.push(bytes.subarray(at, Math.min(bytes.byteLength, at + READ_PIECE_BYTES)));
    await this.pending;
  }

  header(h: StateHeader): void {
    verifyLoopState(h, this.o.spec, this.o.trainRows);
    this.o.accept?.(h);
  }

  floats(section: StateSection, at: number, bytes: Uint8Array): void {
    // A view when aligned (the bytes are not changed until written: the stream's owner awaits push); else a copy.
    const values = bytes.byteOffset % 4 === 0 ? new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4) : new Float32Array(bytes.slice().buffer);
    const bad = finiteIssue(values, section === 'params' ? 'params' : section === 'slots' ? 'optimizer slots' : 'best weights');
    if (bad) throw new TrainError('SNAPSHOT_INVALID', `state snapshot: ${bad.replace(/\[(\d+)\]/, (_, i: string) => `[${at + Number(i)}]`)}`);
    const file = this.fileFor(section);
    const data = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    file.hash.update(data);
    file.bytes += data.byteLength;
    this.pending = this.pending.then(async () => {
      file.fh ??= await open(file.path, 'w');
      await file.fh.write(data);
    });
  }

  /** The stream is complete: the checkpoint goes into place; resolves with its directory and the stream's header. */
  async finish(): Promise<{ readonly dir: string; readonly header: StateHeader }> {
    const h = this.parser.end();
    await this.pending;
    const o = this.o;
    const manifest: Record<string, { sha256: string; bytes: number }> = {};
    for (const file of this.files.values()) {
      const fh = file.fh ?? (await open(file.path, 'w'));
      await fh.sync();
      await fh.close();
      file.fh = null;
      manifest[file.name] = { sha256: file.hash.digest('hex'), bytes: file.bytes };
    }
    const modelJson = layersModelJson(o.arch, o.metadata);
    await writeSynced(join(this.tmp, 'model', MODEL_JSON), modelJson);
    manifest[`model/${MODEL_JSON}`] = digestOf(modelJson);
    const last = h.loop.history.at(-1);
    const state: StateFile = {
      formatVersion: FORMAT_VERSION,
      reason: o.reason,
      createdAt: new Date().toISOString(),
      loop: h.loop,
      optimizer: { name: h.optimizer.name, iterations: h.optimizer.iterations, slots: h.slots },
      trainRows: h.trainRows,
      hasBest: h.best > 0,
      // Only a checkpoint taken at the end of an epoch holds that epoch's weights.
      validationLoss: h.loop.stepInEpoch === 0 ? (last?.validation?.loss ?? null) : null,
      spec: o.spec,
      lineage: o.lineage,
      frozenLayers: o.frozenLayers ?? [],
      arch: o.arch,
    };
    const stateJson = `${JSON.stringify(state, null, 2)}\n`;
    await writeSynced(join(this.tmp, 'state.json'), stateJson);
    manifest['state.json'] = digestOf(stateJson);
    await syncDir(join(this.tmp, 'model'));
    await writeSynced(join(this.tmp, 'manifest.json'), `${JSON.stringify({ formatVersion: FORMAT_VERSION, files: manifest }, null, 2)}\n`);
    await syncDir(this.tmp);
    this.done = true;
    return { dir: await place(this.root, this.tmp, h.loop.globalStep, o), header: h };
  }

  /** The stream failed: nothing of it stays. */
  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.pending.catch(() => {});
    for (const file of this.files.values()) await file.fh?.close().catch(() => {});
    await rm(this.tmp, { recursive: true, force: true });
  }

  private fileFor(section: StateSection): FloatFile {
    let file = this.files.get(section);
    if (!file) {
      const name = SECTION_FILES[section];
      file = { path: join(this.tmp, name), name, fh: null, hash: createHash('sha256'), bytes: 0 };
      this.files.set(section, file);
    }
    return file;
  }
}

export interface CheckpointWriterOptions extends WriteCheckpointOptions {
  /** What the stream must describe: this job's model and optimizer sizes. */
  readonly shape: SnapshotShape;
  /** The job's training rows: the loop state is checked against them. */
  readonly trainRows: number;
  /** A last word on the header before any float is taken (throw to refuse it). */
  readonly accept?: (h: StateHeader) => void;
}

let temporaries = 0;

/** Renames a complete temporary checkpoint directory into place as the checkpoint of `step`, then prunes. */
async function place(root: string, tmp: string, step: number, options: WriteCheckpointOptions): Promise<string> {
  const parent = join(root, CHECKPOINTS_DIR);
  // A checkpoint of the same step may exist (a resumed run stopping where it started):
  // move it aside first, so that the name always holds a complete checkpoint.
  const target = join(parent, stepDirName(step));
  const aside = `${tmp}-replaced`;
  const existed = await stat(target).then(() => true, () => false);
  if (existed) await rename(target, aside);
  await rename(tmp, target);
  await syncDir(parent);
  if (existed) await rm(aside, { recursive: true, force: true });
  await prune(parent, options.keep, options.keepBest);
  return target;
}

/** Writes one checkpoint of `snap` under root/checkpoints, then prunes; returns its directory. */
export async function writeCheckpoint(root: string, snap: TrainSnapshot, options: WriteCheckpointOptions): Promise<string> {
  const shape = { params: snap.params.length, slots: snap.optimizer.slots.length, optimizer: snap.optimizer.name };
  const source = stateSource(snap);
  const writer = await CheckpointWriter.open(root, { ...options, shape, trainRows: snap.trainRows }, source.bytes);
  try {
    for (const part of source.parts) await writer.push(part);
    return (await writer.finish()).dir;
  } catch (err) {
    await writer.abort();
    throw err;
  }
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

/** Verifies every file of `dir` against its manifest (reading each in pieces); returns the manifest's files and state.json. */
async function verifiedFiles(dir: string): Promise<{ files: Record<string, { sha256: string; bytes: number }>; state: StateFile }> {
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
  const floatNames: Record<string, string> = { [SECTION_FILES.params]: 'params', [SECTION_FILES.slots]: 'optimizer slots', [SECTION_FILES.best]: 'best weights' };
  for (const [file, want] of Object.entries(manifest.files)) {
    const got = await fileDigest(join(dir, file), floatNames[file] ?? null).catch(() => null);
    if (got === null) throw corrupt(dir, `${file} is missing`);
    if (got.bytes !== want.bytes) throw corrupt(dir, `${file} has ${got.bytes} bytes, the manifest says ${want.bytes}`);
    if (got.sha256 !== want.sha256) throw corrupt(dir, `${file} does not match its SHA-256 in the manifest`);
    // Checked as it is hashed, so that a head-only read (readCheckpointHead) vouches for every number too.
    if (got.notFinite !== null) throw corrupt(dir, `${file}: ${got.notFinite}`);
  }
  const state = JSON.parse(await readFile(join(dir, 'state.json'), 'utf8')) as StateFile;
  if (state.formatVersion !== FORMAT_VERSION) throw corrupt(dir, `state.json has format ${state.formatVersion}`);
  if (state.hasBest && !('best.bin' in manifest.files)) throw corrupt(dir, 'state.json names best weights the manifest lacks');
  return { files: manifest.files, state };
}

/**
 * Verifies checkpoint `dir` without loading its state: every file against the manifest
 * (each float checked finite as it is hashed), the spec, the architecture, the model's
 * metadata, the arrays' sizes and a loop state the job could reach. What a coordinator
 * resumes from: it streams the state from the files, so its memory does not grow with
 * the model.
 */
export async function readCheckpointHead(dir: string): Promise<CheckpointHead> {
  const { files, state } = await verifiedFiles(dir);
  const spec = validateJobSpec(state.spec, join(dir, 'state.json'));
  try {
    validateArchitecture(state.arch);
  } catch (err) {
    throw corrupt(dir, `state.json: ${(err as Error).message}`);
  }
  // No TensorFlow.js needed: weights.bin holds the kernels and biases in the layout order
  // (saveModel writes them so), so it is the flat parameter vector itself.
  const size = paramLayout(state.arch).size;
  const params = files[`model/${WEIGHTS_BIN}`]!.bytes / 4;
  if (params !== size) throw corrupt(dir, `model/weights.bin holds ${params} values; the architecture has ${size}`);
  if (files['optimizer.bin']!.bytes !== 4 * state.optimizer.slots) throw corrupt(dir, `optimizer.bin holds ${files['optimizer.bin']!.bytes / 4} values, state.json says ${state.optimizer.slots}`);
  const best = state.hasBest ? files['best.bin']!.bytes / 4 : 0;
  if (best !== 0 && best !== size) throw corrupt(dir, 'best.bin does not match the model size');
  const metadata = (JSON.parse(await readFile(join(dir, 'model', 'model.json'), 'utf8')) as { userDefinedMetadata?: { ringtrain?: ModelMetadata } })
    .userDefinedMetadata?.ringtrain;
  if (!metadata) throw corrupt(dir, 'model/model.json has no ringtrain metadata');
  // What its loop says, as for a state a worker sends: one the job could reach.
  try {
    verifyLoopState({ loop: state.loop, trainRows: state.trainRows }, spec, state.trainRows);
  } catch (err) {
    throw corrupt(dir, (err as Error).message);
  }
  const header: StateHeader = {
    loop: state.loop,
    optimizer: { name: state.optimizer.name, iterations: state.optimizer.iterations },
    trainRows: state.trainRows,
    params: size,
    slots: state.optimizer.slots,
    best,
  };
  return { dir, reason: state.reason, header, spec, metadata, arch: state.arch, lineage: state.lineage, frozenLayers: new Set(state.frozenLayers) };
}

/** The state of a verified checkpoint, read into memory. */
export async function loadCheckpointState(head: CheckpointHead): Promise<Checkpoint> {
  const { dir, header } = head;
  const read = async (file: string, length: number): Promise<Float32Array> => {
    const values = floatsOf(await readFile(join(dir, file)), `${dir}/${file}`);
    if (values.length !== length) throw corrupt(dir, `${file} holds ${values.length} values; it held ${length} when verified`);
    return values;
  };
  const snapshot: TrainSnapshot = {
    loop: header.loop,
    params: await read(`model/${WEIGHTS_BIN}`, header.params),
    optimizer: { name: header.optimizer.name, iterations: header.optimizer.iterations, slots: await read('optimizer.bin', header.slots) },
    bestParams: header.best > 0 ? await read('best.bin', header.best) : null,
    trainRows: header.trainRows,
  };
  return { ...head, snapshot };
}

/**
 * The weights of a verified checkpoint, read at once: for a model that is made only if
 * asked for (openJob's model of a resumed coordinator, which never asks).
 */
export function readCheckpointWeightsSync(head: CheckpointHead): Float32Array {
  const values = floatsOf(readFileSync(join(head.dir, 'model', WEIGHTS_BIN)), `${head.dir}/model/${WEIGHTS_BIN}`);
  if (values.length !== head.header.params) throw corrupt(head.dir, `model/${WEIGHTS_BIN} holds ${values.length} values; it held ${head.header.params} when verified`);
  return values;
}

/** Verifies every file against the manifest, then reads the checkpoint. */
export async function readCheckpoint(dir: string): Promise<Checkpoint> {
  return loadCheckpointState(await readCheckpointHead(dir));
}

/**
 * The newest checkpoint under root/checkpoints that verifies (read by `read`); each one
 * that does not is passed to onInvalid (to be logged) and skipped. Null when there is none.
 */
async function newestValid<T>(root: string, read: (dir: string) => Promise<T>, onInvalid?: (dir: string, err: TrainError) => void): Promise<T | null> {
  const parent = join(root, CHECKPOINTS_DIR);
  for (const name of await listSteps(parent)) {
    const dir = join(parent, name);
    try {
      return await read(dir);
    } catch (err) {
      // A bad file is a corrupt checkpoint; anything else (a bug, no disk) is not ours to hide.
      if (!(err instanceof TrainError || err instanceof SyntaxError)) throw err;
      onInvalid?.(dir, err instanceof TrainError ? err : corrupt(dir, err.message));
    }
  }
  return null;
}

/** The newest valid checkpoint under root/checkpoints, with its state; null when there is none. */
export function latestCheckpoint(root: string, onInvalid?: (dir: string, err: TrainError) => void): Promise<Checkpoint | null> {
  return newestValid(root, readCheckpoint, onInvalid);
}

/** The newest valid checkpoint under root/checkpoints, without its state (readCheckpointHead); null when there is none. */
export function latestCheckpointHead(root: string, onInvalid?: (dir: string, err: TrainError) => void): Promise<CheckpointHead | null> {
  return newestValid(root, readCheckpointHead, onInvalid);
}

/**
 * A verified checkpoint as a state stream (snapshot-codec.ts), read from its files a
 * piece at a time: what the coordinator sends a worker without holding the state. The
 * files are verified against the manifest first, and their sizes against state.json.
 * `header` is the stream's header (the loop state is checked against the job by the
 * receiver, as for any stream).
 */
export async function checkpointSource(dir: string): Promise<CheckpointStream> {
  return checkpointStream(dir, (await readCheckpointHead(dir)).header);
}

export interface CheckpointStream {
  readonly header: StateHeader;
  readonly bytes: number;
  readonly parts: AsyncIterable<Uint8Array>;
}

/**
 * The state stream of checkpoint `dir`, whose header is known (its writer returned it):
 * the files are opened only when the stream is read, and not verified again (the
 * receiver checks the stream's digest, its structure and every number).
 */
export function checkpointStream(dir: string, header: StateHeader): CheckpointStream {
  const prefix = statePrefix(header);
  const paths = [join(dir, 'model', WEIGHTS_BIN), join(dir, 'optimizer.bin'), ...(header.best > 0 ? [join(dir, 'best.bin')] : [])];
  async function* parts(): AsyncGenerator<Uint8Array> {
    yield prefix;
    for (const path of paths) yield* createReadStream(path, { highWaterMark: READ_PIECE_BYTES }) as AsyncIterable<Buffer>;
  }
  return { header, bytes: prefix.byteLength + 4 * (header.params + header.slots + header.best), parts: parts() };
}

/** Verifies checkpoint `dir`'s files against its manifest, reading them in pieces (what readCheckpoint does first, without loading the state). */
export async function verifyCheckpoint(dir: string): Promise<void> {
  await verifiedFiles(dir);
}
