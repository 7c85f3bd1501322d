/**
 * What a finished run leaves in its output directory:
 *   model/        the LayersModel (model.json + weights.bin), with normalization
 *                 statistics and classes in its metadata
 *   metrics.json  per-epoch history and the final train/validation/test metrics
 *   job.yaml      the resolved spec, defaults filled in, exactly what ran
 * (The apps add steps.jsonl as they go, and report.html, the run's charts, at the end:
 * apps/coordinator/src/report.ts.) `ringtrain train` holds its final model and writes
 * all three with writeRunOutput; the coordinator never holds it (its weights stream into
 * model/ as they arrive: libs/model's ModelFilesWriter) and writes the rest with
 * writeRunRecords.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { PreparedDataset } from '@ringtrain/data';
import { type LossName, type ModelMetadata, saveModel, writeFileAtomic } from '@ringtrain/model';
import { jobSpecToYaml, type JobSpec } from './spec.js';
import type { TrainResult } from './trainer.js';

export interface RunSummary {
  readonly job: string;
  readonly source: string;
  readonly backend: string;
  readonly loss: LossName;
  readonly parameters: number;
  readonly epochs: number;
  readonly steps: number;
  readonly bestEpoch: number;
  readonly stoppedEarly: boolean;
  readonly interrupted: boolean;
  readonly seconds: number;
  readonly samplesPerSecond: number;
  readonly history: TrainResult['history'];
  readonly final: TrainResult['final'];
}

/** What a summary takes of a run without its model (the coordinator's): the model's parameter count instead. */
export type RunFacts = Omit<TrainResult, 'mlp'> & { readonly parameters: number };

export function summarize(spec: JobSpec, data: PreparedDataset, backend: string, loss: LossName, result: TrainResult | RunFacts): RunSummary {
  return {
    job: spec.name,
    source: data.source,
    backend,
    loss,
    parameters: 'mlp' in result ? result.mlp.layout.size : result.parameters,
    epochs: result.history.length,
    steps: result.steps,
    bestEpoch: result.bestEpoch,
    stoppedEarly: result.stoppedEarly,
    interrupted: result.interrupted,
    seconds: result.seconds,
    samplesPerSecond: result.samplesPerSecond,
    history: result.history,
    final: result.final,
  };
}

/** What a saved model records about the data it was trained on. */
export function modelMetadata(data: PreparedDataset, loss: LossName): ModelMetadata {
  return {
    formatVersion: 1,
    task: data.task,
    loss,
    normalizer: data.normalizer,
    featureNames: data.train.featureNames,
    ...(data.train.imageShape ? { imageShape: data.train.imageShape } : {}),
  };
}

export async function writeRunOutput(
  dir: string,
  spec: JobSpec,
  data: PreparedDataset,
  summary: RunSummary,
  result: TrainResult,
  metadata: ModelMetadata = modelMetadata(data, summary.loss),
): Promise<void> {
  await mkdir(dir, { recursive: true });
  await saveModel(result.mlp, join(dir, 'model'), metadata);
  await writeRunRecords(dir, spec, summary);
}

/** metrics.json and job.yaml: a run's output besides its model. */
export async function writeRunRecords(dir: string, spec: JobSpec, summary: RunSummary): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFileAtomic(join(dir, 'metrics.json'), `${JSON.stringify(summary, null, 2)}\n`);
  await writeFileAtomic(join(dir, 'job.yaml'), jobSpecToYaml(spec));
}
