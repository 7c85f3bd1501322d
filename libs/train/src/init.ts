/**
 * Fine-tuning: a job whose `init` section starts from a trained model instead of from
 * random weights. The source may be a ringtrain run directory (its model/), a checkpoint
 * directory (verified against its manifest; its last weights), a model directory or a
 * model.json of any TensorFlow.js LayersModel made of Dense and Dropout layers (such as
 * one converted from Keras).
 *
 * With replaceHead, the output layer is new (Glorot-initialized from the job's seed)
 * and sized for this job's classes or target; the hidden layers keep their weights.
 * Without it, the model must already fit the task: same classes, in the same order.
 * Frozen layers (by index, 0 = first dense layer, or by name) keep their weights bit for
 * bit. When the source model carries normalization statistics they are reused, because
 * its layers learnt on inputs scaled that way.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { NormStats, Task } from '@ringtrain/data';
import { type Architecture, type ModelMetadata, paramLayout, type ParamSegment, readModelHead, takeParams, WEIGHTS_BIN } from '@ringtrain/model';
import { readCheckpointHead, type LineageEntry } from './checkpoint.js';
import { TrainError } from './errors.js';
import type { JobSpec } from './spec.js';
import { outputCount } from './job-model.js';

/**
 * The model a fine-tuning job starts from, read and checked but not loaded: where its
 * weights lie (file ranges in the layout order), so that a coordinator can stream them
 * and `train` read them, neither holding them twice.
 */
export interface InitialModel {
  readonly arch: Architecture;
  readonly layerNames: readonly string[];
  readonly metadata: ModelMetadata | null;
  readonly lineage: readonly LineageEntry[];
  readonly params: readonly ParamSegment[];
}

function invalid(what: string): TrainError {
  return new TrainError('INIT_INVALID', `init: ${what}`, [`init: ${what}`]);
}

/**
 * Reads init.from (already resolved to an absolute path): a checkpoint is verified
 * against its manifest (every value finite), a model's files against its manifest (every
 * value finite too); the weights themselves stay in the files.
 */
export async function loadInitialModel(spec: JobSpec): Promise<InitialModel> {
  const from = spec.init!.from;
  if (existsSync(join(from, 'manifest.json'))) {
    const head = await readCheckpointHead(from);
    return {
      arch: head.arch,
      layerNames: head.arch.hidden.map((_, i) => `dense_${i}`).concat('output'),
      metadata: head.metadata,
      lineage: [...head.lineage, { from, job: head.spec.name, step: head.header.loop.globalStep }],
      // A checkpoint's weights.bin is the parameters in the layout order.
      params: [{ kind: 'file', path: join(from, 'model', WEIGHTS_BIN), byteOffset: 0, count: head.header.params }],
    };
  }
  const modelPath = existsSync(join(from, 'model', 'model.json')) ? join(from, 'model') : from;
  if (!existsSync(modelPath.endsWith('.json') ? modelPath : join(modelPath, 'model.json'))) {
    throw invalid(`${from} is not a run, checkpoint or model directory, nor a model.json`);
  }
  const head = await readModelHead(modelPath);
  return { arch: head.arch, layerNames: head.layerNames, metadata: head.metadata, lineage: [{ from, job: null, step: null }], params: head.params };
}

export interface FineTuneStart {
  readonly arch: Architecture;
  /** The starting weights: the base model's, or its hidden layers and a new head from the seed. */
  readonly params: readonly ParamSegment[];
  readonly frozenLayers: ReadonlySet<number>;
  readonly lineage: readonly LineageEntry[];
}

/** The source model's normalization statistics, to prepare this job's data with; null if it has none. */
export function inheritedNormalizer(init: InitialModel): NormStats | null {
  return init.metadata?.normalizer ?? null;
}

/** Builds the model a fine-tuning job starts from, for data with `inputs` columns and `task`. */
export function fineTuneStart(spec: JobSpec, init: InitialModel, inputs: number, task: Task): FineTuneStart {
  const base = init.arch;
  const options = spec.init!;
  if (base.inputs !== inputs) throw invalid(`${options.from} takes ${base.inputs} inputs; the data has ${inputs} features`);
  const outputs = outputCount(task);
  const output = task.kind === 'classification' ? 'softmax' : 'linear';
  let arch = base;
  let params = init.params;
  if (options.replaceHead) {
    arch = { ...base, outputs, output };
    // The hidden layers come first in the layout, so they are a prefix of the parameters;
    // the head is what Mlp.create(arch, seed) would make, computed from the seed.
    const layout = paramLayout(arch);
    const hiddenSize = layout.slots.filter((s) => s.layer < base.hidden.length).reduce((n, s) => n + s.size, 0);
    params = [...takeParams(init.params, hiddenSize), { kind: 'initial', arch, seed: spec.training.seed, at: hiddenSize, count: layout.size - hiddenSize }];
  } else {
    if (base.outputs !== outputs || base.output !== output) {
      throw invalid(`${options.from} has ${base.outputs} ${base.output} outputs; this job needs ${outputs} ${output} (set replaceHead: true)`);
    }
    const theirs = init.metadata?.task;
    if (task.kind === 'classification' && theirs?.kind === 'classification' && theirs.classes.join('\u0000') !== task.classes.join('\u0000')) {
      throw invalid(`${options.from} predicts classes ${theirs.classes.join(', ')}; this job has ${task.classes.join(', ')} (set replaceHead: true)`);
    }
  }
  const layers = base.hidden.length + 1;
  const frozen = new Set<number>();
  for (const f of options.freeze) {
    const index = typeof f === 'number' ? f : init.layerNames.indexOf(f);
    if (index < 0 || index >= layers) {
      throw invalid(`freeze: no layer ${JSON.stringify(f)}; the layers are 0..${layers - 1} (${init.layerNames.join(', ')})`);
    }
    if (index === layers - 1 && options.replaceHead) {
      throw invalid('freeze: the output layer is being replaced; freezing it would leave it random');
    }
    frozen.add(index);
  }
  return { arch, params, frozenLayers: frozen, lineage: init.lineage };
}

/** init.from relative to the job file, recorded absolute. */
export function resolveInit(spec: JobSpec, baseDir: string): JobSpec {
  return spec.init ? { ...spec, init: { ...spec.init, from: resolve(baseDir, spec.init.from) } } : spec;
}
