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
import { type Architecture, loadModel, Mlp, type ModelMetadata } from '@ringtrain/model';
import { readCheckpoint, type LineageEntry } from './checkpoint.js';
import { TrainError } from './errors.js';
import type { JobSpec } from './spec.js';
import { outputCount } from './job-model.js';

export interface InitialModel {
  /** The loaded weights, before the head is replaced. Caller disposes. */
  readonly base: Mlp;
  readonly layerNames: readonly string[];
  readonly metadata: ModelMetadata | null;
  readonly lineage: readonly LineageEntry[];
}

function invalid(what: string): TrainError {
  return new TrainError('INIT_INVALID', `init: ${what}`, [`init: ${what}`]);
}

/** Loads init.from (already resolved to an absolute path). */
export async function loadInitialModel(spec: JobSpec): Promise<InitialModel> {
  const from = spec.init!.from;
  if (existsSync(join(from, 'manifest.json'))) {
    const ckpt = await readCheckpoint(from);
    const base = Mlp.adopt(ckpt.arch, ckpt.snapshot.params); // the checkpoint read here is nobody else's
    const names = ckpt.arch.hidden.map((_, i) => `dense_${i}`).concat('output');
    return {
      base,
      layerNames: names,
      metadata: ckpt.metadata,
      lineage: [...ckpt.lineage, { from, job: ckpt.spec.name, step: ckpt.snapshot.loop.globalStep }],
    };
  }
  const modelPath = existsSync(join(from, 'model', 'model.json')) ? join(from, 'model') : from;
  if (!existsSync(modelPath.endsWith('.json') ? modelPath : join(modelPath, 'model.json'))) {
    throw invalid(`${from} is not a run, checkpoint or model directory, nor a model.json`);
  }
  const loaded = await loadModel(modelPath);
  return { base: loaded.mlp, layerNames: loaded.layerNames, metadata: loaded.metadata, lineage: [{ from, job: null, step: null }] };
}

export interface FineTuneStart {
  readonly mlp: Mlp;
  readonly frozenLayers: ReadonlySet<number>;
  readonly lineage: readonly LineageEntry[];
}

/** The source model's normalization statistics, to prepare this job's data with; null if it has none. */
export function inheritedNormalizer(init: InitialModel): NormStats | null {
  return init.metadata?.normalizer ?? null;
}

/** Builds the model a fine-tuning job starts from, for data with `inputs` columns and `task`. */
export function fineTuneStart(spec: JobSpec, init: InitialModel, inputs: number, task: Task): FineTuneStart {
  const { base } = init;
  const options = spec.init!;
  if (base.arch.inputs !== inputs) throw invalid(`${options.from} takes ${base.arch.inputs} inputs; the data has ${inputs} features`);
  const outputs = outputCount(task);
  const output = task.kind === 'classification' ? 'softmax' : 'linear';
  let mlp: Mlp;
  if (options.replaceHead) {
    const arch: Architecture = { ...base.arch, outputs, output };
    mlp = Mlp.create(arch, spec.training.seed);
    // The hidden layers come first in the layout, so they are a prefix of the parameters.
    const hiddenSize = base.layout.slots.filter((s) => s.layer < base.arch.hidden.length).reduce((n, s) => n + s.size, 0);
    mlp.params.set(base.params.subarray(0, hiddenSize));
  } else {
    if (base.arch.outputs !== outputs || base.arch.output !== output) {
      throw invalid(`${options.from} has ${base.arch.outputs} ${base.arch.output} outputs; this job needs ${outputs} ${output} (set replaceHead: true)`);
    }
    const theirs = init.metadata?.task;
    if (task.kind === 'classification' && theirs?.kind === 'classification' && theirs.classes.join('\u0000') !== task.classes.join('\u0000')) {
      throw invalid(`${options.from} predicts classes ${theirs.classes.join(', ')}; this job has ${task.classes.join(', ')} (set replaceHead: true)`);
    }
    mlp = base; // the base model is this job's from here on: no copy of its weights
  }
  const layers = base.arch.hidden.length + 1;
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
  return { mlp, frozenLayers: frozen, lineage: init.lineage };
}

/** init.from relative to the job file, recorded absolute. */
export function resolveInit(spec: JobSpec, baseDir: string): JobSpec {
  return spec.init ? { ...spec, init: { ...spec.init, from: resolve(baseDir, spec.init.from) } } : spec;
}
