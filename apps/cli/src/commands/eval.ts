/**
 * `ringtrain eval`: loads a saved model and reports loss, accuracy and a confusion
 * matrix on a data source, normalized with the statistics saved in the model (never
 * refitted on the evaluation data). A source with its own test split (IDX) is
 * evaluated on that split; any other on all its rows.
 */
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { Logger } from 'pino';
import { applyNormalizer, loadSource, parseSource, prepareDataset, type Table } from '@ringtrain/data';
import { BACKEND_NAMES, type BackendName, evaluateYielding, type EvalResult, loadModel, type ModelMetadata } from '@ringtrain/model';
import { evalData, type JobSpec, loadJobSpec, TrainError } from '@ringtrain/train';
import { useBackend } from '../backend.js';
import { UsageError } from '../errors.js';

export class EvalError extends Error {
  constructor(
    readonly code: 'EVAL_NO_METADATA' | 'EVAL_SHAPE_MISMATCH' | 'EVAL_CLASS_UNKNOWN' | 'EVAL_NO_DATA',
    message: string,
  ) {
    super(message);
  }
}

/** Re-indexes the table's classes to the model's, by name; a class the model lacks is an error. */
function alignClasses(table: Table, meta: ModelMetadata, source: string): Table {
  if (table.task.kind !== meta.task.kind) {
    throw new EvalError('EVAL_SHAPE_MISMATCH', `${source} is ${table.task.kind} data but the model does ${meta.task.kind}`);
  }
  if (table.task.kind === 'regression' || meta.task.kind === 'regression') return table;
  const modelClasses = meta.task.classes;
  const map = table.task.classes.map((name) => {
    const i = modelClasses.indexOf(name);
    if (i < 0) throw new EvalError('EVAL_CLASS_UNKNOWN', `${source} has class "${name}", which the model does not know (${modelClasses.join(', ')})`);
    return i;
  });
  const labels = Int32Array.from(table.labels as Int32Array, (c) => map[c]!);
  return { ...table, labels, task: meta.task };
}

/** The run's own job.yaml, next to its model/ folder; null when there is none. */
async function runSpec(modelDir: string): Promise<JobSpec | null> {
  try {
    return await loadJobSpec(resolve(dirname(modelDir), 'job.yaml'));
  } catch (err) {
    if (err instanceof TrainError && err.code === 'SPEC_FILE_MISSING') return null;
    throw err;
  }
}

/** Rows to evaluate, raw (not yet normalized), with where they came from. */
async function evaluationRows(
  values: { data?: string | undefined; label?: string | undefined; 'no-header'?: boolean | undefined },
  modelDir: string,
  meta: ModelMetadata,
): Promise<{ table: Table; source: string; split: string; normalized: boolean }> {
  if (!values.data) {
    // The run's own held-out test rows: the same source, classes and split seed as at
    // training, normalized with the model's statistics.
    const spec = await runSpec(modelDir);
    if (!spec) throw new UsageError(`--data is required: there is no job.yaml next to ${modelDir} naming the run's data`);
    const data = await prepareDataset({
      source: spec.data.source,
      ...(spec.data.label ? { label: spec.data.label } : {}),
      ...(spec.data.header !== undefined ? { header: spec.data.header } : {}),
      task: meta.task.kind,
      ...(spec.data.classes ? { classes: spec.data.classes } : {}),
      normalizer: meta.normalizer,
      split: spec.data.split,
      normalize: spec.data.normalize,
    });
    return { table: data.test, source: spec.data.source, split: "test (the run's held-out rows)", normalized: true };
  }
  // A CSV source is read with the model's label column unless --label says otherwise.
  const kind = parseSource(values.data).kind;
  const label = values.label ?? (kind === 'csv' || kind === 'builtin' ? meta.label : undefined);
  const header = values['no-header'] ? { header: false } : {};
  const loaded = await loadSource(values.data, { ...(label ? { label } : {}), ...header, task: meta.task.kind, baseDir: process.cwd() });
  return loaded.test
    ? { table: loaded.test, source: values.data, split: 'test', normalized: false }
    : { table: loaded.train, source: values.data, split: 'all rows', normalized: false };
}

export async function evalCommand(argv: string[], log: Logger): Promise<EvalResult & { source: string; split: string }> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      data: { type: 'string' },
      label: { type: 'string' },
      'no-header': { type: 'boolean', default: false },
      backend: { type: 'string', default: 'auto' },
      json: { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (!values.model) throw new UsageError('--model is required (a run\'s model/ folder)');
  if (!BACKEND_NAMES.includes(values.backend as BackendName)) {
    throw new UsageError(`--backend must be one of ${BACKEND_NAMES.join(', ')}, got "${values.backend}"`);
  }
  await useBackend(values.backend as BackendName, log);

  const modelPath = resolve(values.model);
  const modelDir = modelPath.endsWith('.json') ? dirname(modelPath) : modelPath;
  const { mlp, metadata } = await loadModel(modelPath);
  if (!metadata) throw new EvalError('EVAL_NO_METADATA', `${modelDir} has no ringtrain metadata (classes, normalization); it was not written by ringtrain`);
  const rows = await evaluationRows(values, modelDir, metadata);
  const { source, split } = rows;
  const raw = rows.table;
  if (raw.rows === 0) throw new EvalError('EVAL_NO_DATA', `${source} has no rows to evaluate`);
  if (raw.cols !== mlp.arch.inputs) {
    throw new EvalError('EVAL_SHAPE_MISMATCH', `${source} has ${raw.cols} features; the model expects ${mlp.arch.inputs}`);
  }
  if (raw.featureNames.join('\u0000') !== metadata.featureNames.join('\u0000')) {
    throw new EvalError(
      'EVAL_SHAPE_MISMATCH',
      `${source} has the columns ${raw.featureNames.slice(0, 8).join(', ')}...; the model was trained on ${metadata.featureNames.slice(0, 8).join(', ')}...`,
    );
  }
  const aligned = alignClasses(raw, metadata, source);
  const table = rows.normalized ? aligned : applyNormalizer(metadata.normalizer, aligned);
  const result = await evaluateYielding(mlp, evalData(table), metadata.loss);
  const out = { source, split, ...result };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } else {
    const lines = [`source ${source} (${split}, ${result.count} rows)`, `loss     ${result.loss.toFixed(4)}`];
    if (result.accuracy !== null) lines.push(`accuracy ${result.accuracy.toFixed(4)}`);
    if (result.confusion && metadata.task.kind === 'classification') {
      const names = metadata.task.classes;
      const w = Math.max(6, ...names.map((n) => n.length), ...result.confusion.flat().map((v) => String(v).length)) + 1;
      lines.push('confusion (rows: true class, columns: predicted)');
      lines.push(''.padEnd(w) + names.map((n) => n.padStart(w)).join(''));
      result.confusion.forEach((row, i) => lines.push(names[i]!.padEnd(w) + row.map((v) => String(v).padStart(w)).join('')));
    }
    process.stdout.write(`${lines.join('\n')}\n`);
  }
  return out;
}
