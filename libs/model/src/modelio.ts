/**
 * Saving in the standard TensorFlow.js LayersModel format (model-read.ts reads it back): a directory with
 * model.json (topology, weights manifest, format "layers-model") and weights.bin. What
 * ringtrain adds (task, classes, normalization statistics, loss) rides in model.json's
 * userDefinedMetadata, which tf.loadLayersModel ignores, so the directory loads with
 * plain `tf.loadLayersModel('file://DIR/model.json')` under tfjs-node.
 *
 * model.json is written by hand from the architecture, not by building a tfjs model:
 * weights.bin is then just the flat parameter vector (architecture.ts's layout is the
 * LayersModel's weight order, kernel then bias per dense layer), so a model of any size
 * is saved without a second copy of its weights, and a writer that streams weights.bin
 * itself needs only layersModelJson() afterwards. The JSON is what tfjs-layers' own save
 * writes for the same model; the tests hold the two equal.
 *
 * Files are written to temporary names and renamed into place, weights first, so a
 * crash mid-save never leaves a model.json that points at half a weights file.
 */
import { createHash, randomBytes } from 'node:crypto';
import { type FileHandle, mkdir, open, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { normCols, parseNormStats, type NormStats, type Task } from '@ringtrain/data';
import { type Architecture, paramLayout, validateArchitecture } from './architecture.js';
import { ModelError } from './errors.js';
import { LOSS_NAMES, type LossName } from './loss.js';
import { Mlp } from './mlp.js';

/** One step of a fine-tuned model's ancestry: the model it started from. */
export interface LineageEntry {
  readonly from: string;
  readonly job: string | null;
  /** The source's global step, when it was a checkpoint. */
  readonly step: number | null;
}

/** What a ringtrain model carries besides its weights. */
export interface ModelMetadata {
  readonly formatVersion: 1;
  readonly task: Task;
  readonly loss: LossName;
  readonly normalizer: NormStats;
  readonly featureNames: readonly string[];
  readonly imageShape?: { readonly height: number; readonly width: number };
  /** The label column it was trained on (CSV sources), so eval picks the same one. */
  readonly label?: string;
  /** For a fine-tuned model: what it started from, oldest first. */
  readonly lineage?: readonly LineageEntry[];
}

function strings(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

/**
 * Checks ringtrain's metadata as read from a model.json: everything eval and resume use
 * must be there and fit the model, or the file is MODEL_FILE_INVALID.
 */
export function parseModelMetadata(raw: unknown, outputs: number, where: string): ModelMetadata {
  const bad = (what: string) => new ModelError('MODEL_FILE_INVALID', `${where}: ringtrain metadata ${what}`);
  if (typeof raw !== 'object' || raw === null) throw bad('is not an object');
  const m = raw as Record<string, unknown>;
  if (m['formatVersion'] !== 1) throw bad(`has format ${JSON.stringify(m['formatVersion'])}; this ringtrain reads format 1`);
  const task = m['task'] as Record<string, unknown> | undefined;
  if (task?.['kind'] === 'classification') {
    if (!strings(task['classes']) || task['classes'].length !== outputs) throw bad(`names ${JSON.stringify(task['classes'])} as classes for ${outputs} outputs`);
  } else if (task?.['kind'] === 'regression') {
    if (typeof task['target'] !== 'string' || outputs !== 1) throw bad('has a regression task that does not fit the model');
  } else {
    throw bad('has no valid task');
  }
  if (!LOSS_NAMES.includes(m['loss'] as LossName)) throw bad(`has loss ${JSON.stringify(m['loss'])}; expected ${LOSS_NAMES.join(' or ')}`);
  if (!strings(m['featureNames'])) throw bad('has no feature names');
  if (m['label'] !== undefined && typeof m['label'] !== 'string') throw bad('has a label that is not a string');
  let normalizer: NormStats;
  try {
    normalizer = parseNormStats(m['normalizer']);
  } catch (err) {
    throw bad(`has invalid normalization statistics (${(err as Error).message})`);
  }
  if (normCols(normalizer) !== m['featureNames'].length) throw bad('has statistics for another number of features');
  return { ...(m as unknown as ModelMetadata), normalizer };
}

export const MODEL_JSON = 'model.json';
export const WEIGHTS_BIN = 'weights.bin';

/**
 * Fixed names: left to tfjs, the model would be named from a process-wide counter
 * (sequential_1, sequential_2, ...), and two saves of one model would differ.
 */
const MODEL_NAME = 'sequential';
const denseName = (arch: Architecture, l: number) => (l < arch.hidden.length ? `dense_${l}` : 'output');

/** Builds a tf.LayersModel with the MLP's architecture and current weights. Caller disposes. */
export function toLayersModel(mlp: Mlp): tfl.LayersModel {
  const { arch } = mlp;
  const model = tfl.sequential({ name: MODEL_NAME });
  arch.hidden.forEach((h, l) => {
    model.add(
      tfl.layers.dense({ units: h.units, activation: h.activation, name: denseName(arch, l), ...(l === 0 ? { inputShape: [arch.inputs] } : {}) }),
    );
    if (h.dropout > 0) model.add(tfl.layers.dropout({ rate: h.dropout, name: `dropout_${l}` }));
  });
  model.add(
    tfl.layers.dense({
      units: arch.outputs,
      activation: arch.output,
      name: denseName(arch, arch.hidden.length),
      ...(arch.hidden.length === 0 ? { inputShape: [arch.inputs] } : {}),
    }),
  );
  const weights = mlp.slotTensors();
  model.setWeights(weights); // the layers copy the values into their own variables
  tf.dispose(weights);
  return model;
}

/**
 * The model.json that tfjs-layers writes for toLayersModel's model, key for key (so the
 * text is the same too), with ringtrain's metadata. Versions come from the installed
 * tfjs-layers, as tfjs writes them.
 */
export function layersModelJson(arch: Architecture, metadata: ModelMetadata): string {
  validateArchitecture(arch);
  const dense = (l: number, units: number, activation: string) => ({
    class_name: 'Dense',
    config: {
      units,
      activation,
      use_bias: true,
      // Dense's default (glorotNormal) as tfjs serializes it; loaders ignore it, the weights are given.
      kernel_initializer: { class_name: 'VarianceScaling', config: { scale: 1, mode: 'fan_avg', distribution: 'normal', seed: null } },
      bias_initializer: { class_name: 'Zeros', config: {} },
      kernel_regularizer: null,
      bias_regularizer: null,
      activity_regularizer: null,
      kernel_constraint: null,
      bias_constraint: null,
      name: denseName(arch, l),
      trainable: true,
      ...(l === 0 ? { batch_input_shape: [null, arch.inputs], dtype: 'float32' } : {}),
    },
  });
  const layers: object[] = arch.hidden.flatMap((h, l) => [
    dense(l, h.units, h.activation),
    ...(h.dropout > 0 ? [{ class_name: 'Dropout', config: { rate: h.dropout, noise_shape: null, seed: null, name: `dropout_${l}`, trainable: true } }] : []),
  ]);
  layers.push(dense(arch.hidden.length, arch.outputs, arch.output));
  const weights = paramLayout(arch).slots.map((s) => ({ name: `${denseName(arch, s.layer)}/${s.kind}`, shape: s.shape, dtype: 'float32' }));
  return JSON.stringify({
    // 'tensor_flow.js': tfjs snake-cases its backend name 'TensorFlow.js' with the other keys.
    modelTopology: { class_name: 'Sequential', config: { name: MODEL_NAME, layers }, keras_version: `tfjs-layers ${tfl.version_layers}`, backend: 'tensor_flow.js' },
    format: 'layers-model',
    generatedBy: `TensorFlow.js tfjs-layers v${tfl.version_layers}`,
    convertedBy: null,
    weightsManifest: [{ paths: [`./${WEIGHTS_BIN}`], weights }],
    userDefinedMetadata: { ringtrain: metadata },
  });
}

let temporaries = 0;

/**
 * Writes to a temporary name, flushes, then renames: readers see the old file or the
 * whole new one. Each call has a temporary name of its own (pid, a counter, random
 * bytes), so concurrent writes of one path never rename each other's file away; the
 * last rename wins. A failed write removes its temporary file.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  temporaries += 1;
  const tmp = `${path}.tmp-${process.pid}-${temporaries}-${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(tmp, data, { flush: true });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => {});
    throw err;
  }
}

/**
 * Writes a model directory from a flat parameter vector (the layout of architecture.ts).
 * weights.bin is written from a view of `params`, not a copy.
 */
export async function writeModelFiles(dir: string, arch: Architecture, params: Float32Array, metadata: ModelMetadata): Promise<void> {
  const json = layersModelJson(arch, metadata);
  const size = paramLayout(arch).size;
  if (params.length !== size) throw new ModelError('MODEL_SHAPE_MISMATCH', `expected ${size} parameters, got ${params.length}`);
  await mkdir(dir, { recursive: true });
  // Weights first: model.json only ever names a complete weights file.
  await writeFileAtomic(join(dir, WEIGHTS_BIN), new Uint8Array(params.buffer, params.byteOffset, params.byteLength));
  await writeFileAtomic(join(dir, MODEL_JSON), json);
}

/** Saves the MLP's flat master parameters (which its variables mirror). */
export async function saveModel(mlp: Mlp, dir: string, metadata: ModelMetadata): Promise<void> {
  await writeModelFiles(dir, mlp.arch, mlp.params, metadata);
}

/** fsyncs a directory, so that the renames into it survive a crash. */
export async function syncDir(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Writes a model directory whose weights arrive in pieces (a coordinator receiving a
 * worker's final weights): each piece is appended to a temporary weights file and
 * hashed as it goes, so nothing but the piece in hand is held, however large the model.
 * `finish` checks the size against the architecture, fsyncs the file, renames it into
 * place as weights.bin, writes model.json (layersModelJson, as writeModelFiles does;
 * weights first, so model.json only ever names a complete weights file) and fsyncs the
 * directory. The files are, byte for byte, what writeModelFiles writes for the same
 * parameters. A writer aborted, or one whose finish fails, leaves no temporary file.
 */
export class ModelFilesWriter {
  private written = 0;
  private readonly hash = createHash('sha256');
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    readonly dir: string,
    private readonly json: string,
    /** The weights' bytes: 4 a parameter. */
    readonly bytes: number,
    private readonly tmp: string,
    private readonly fh: FileHandle,
  ) {}

  /** Opens a writer of `arch`'s weights into `dir` (created if need be). */
  static async open(dir: string, arch: Architecture, metadata: ModelMetadata): Promise<ModelFilesWriter> {
    const json = layersModelJson(arch, metadata);
    await mkdir(dir, { recursive: true });
    temporaries += 1;
    const tmp = `${join(dir, WEIGHTS_BIN)}.tmp-${process.pid}-${temporaries}-${randomBytes(4).toString('hex')}`;
    const fh = await open(tmp, 'wx');
    return new ModelFilesWriter(dir, json, 4 * paramLayout(arch).size, tmp, fh);
  }

  /** Weights bytes taken so far. */
  get received(): number {
    return this.written;
  }

  /** Appends the next bytes of weights.bin (any length; float boundaries need not align); resolves once they are written. MODEL_SHAPE_MISMATCH past the model's size. */
  write(data: Uint8Array): Promise<void> {
    if (this.closed) return Promise.reject(new ModelError('MODEL_FILE_INVALID', `${this.dir}: weights written after the writer finished`));
    if (this.written + data.byteLength > this.bytes) {
      return Promise.reject(new ModelError('MODEL_SHAPE_MISMATCH', `${this.dir}: ${this.written + data.byteLength} bytes of weights; the model has ${this.bytes / 4} parameters`));
    }
    this.written += data.byteLength;
    this.hash.update(data);
    const done = this.queue.then(() => this.append(data));
    this.queue = done.catch(() => {});
    return done;
  }

  private async append(data: Uint8Array): Promise<void> {
    for (let at = 0; at < data.byteLength; ) at += (await this.fh.write(data, at, data.byteLength - at)).bytesWritten;
  }

  /** Every byte is written: weights.bin and model.json go into place. Resolves with weights.bin's SHA-256 and size. */
  async finish(): Promise<{ readonly sha256: string; readonly bytes: number }> {
    if (this.closed) throw new ModelError('MODEL_FILE_INVALID', `${this.dir}: the writer already finished`);
    this.closed = true;
    try {
      await this.queue;
      if (this.written !== this.bytes) throw new ModelError('MODEL_SHAPE_MISMATCH', `${this.dir}: ${this.written} bytes of weights; the model has ${this.bytes / 4} parameters`);
      await this.fh.sync();
      await this.fh.close();
      await rename(this.tmp, join(this.dir, WEIGHTS_BIN));
      await writeFileAtomic(join(this.dir, MODEL_JSON), this.json);
      await syncDir(this.dir);
      return { sha256: this.hash.digest('hex'), bytes: this.written };
    } catch (err) {
      await this.fh.close().catch(() => {});
      await rm(this.tmp, { force: true }).catch(() => {});
      throw err;
    }
  }

  /** Nothing more comes: the temporary file is removed, and the directory keeps what it had. */
  async abort(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue;
    await this.fh.close().catch(() => {});
    await rm(this.tmp, { force: true });
  }
}
