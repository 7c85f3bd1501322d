/**
 * `ringtrain eval`: loads a saved model and reports loss, accuracy and a confusion
 * matrix on a data source, normalized with the statistics saved in the model (never
 * refitted on the evaluation data). A source with its own test split (IDX) is
 * evaluated on that split; any other on all its rows.
 */
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { Logger } from 'pino';
import { applyNormalizer, loadSource, type Table } from '@ringtrain/data';
import { BACKEND_NAMES, type BackendName, evaluate, type EvalResult, loadModel, type ModelMetadata } from '@ringtrain/model';
import { evalData } from '@ringtrain/train';
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

async function defaultSource(modelDir: string): Promise<{ source: string; baseDir: string } | null> {
  try {
    const { loadJobSpec } = await import('@ringtrain/train');
    const jobPath = resolve(dirname(modelDir), 'job.yaml');
    const spec = await loadJobSpec(jobPath);
    return { source: spec.data.source, baseDir: dirname(jobPath) };
  } catch {
    return null;
  }
}

export async function evalCommand(argv: string[], log: Logger): Promise<EvalResult & { source: string; split: string }> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      data: { type: 'string' },
      label: { type: 'string' },
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

  const modelDir = resolve(values.model.endsWith('.json') ? dirname(values.model) : values.model);
  const { mlp, metadata } = await loadModel(modelDir);
  try {
    if (!metadata) throw new EvalError('EVAL_NO_METADATA', `${modelDir} has no ringtrain metadata (classes, normalization); it was not written by ringtrain`);
    const fallback = values.data ? null : await defaultSource(modelDir);
    const source = values.data ?? fallback?.source;
    if (!source) throw new UsageError('--data is required: no job.yaml next to the model names a source');
    const loaded = await loadSource(source, {
      ...(values.label ? { label: values.label } : {}),
      task: metadata.task.kind,
      baseDir: fallback?.baseDir ?? process.cwd(),
    });
    const split = loaded.test ? 'test' : 'all';
    const raw = loaded.test ?? loaded.train;
    if (raw.rows === 0) throw new EvalError('EVAL_NO_DATA', `${source} has no rows`);
    if (raw.cols !== mlp.arch.inputs) {
      throw new EvalError('EVAL_SHAPE_MISMATCH', `${source} has ${raw.cols} features; the model expects ${mlp.arch.inputs}`);
    }
    const table = applyNormalizer(metadata.normalizer, alignClasses(raw, metadata, source));
    const result = evaluate(mlp, evalData(table), metadata.loss);
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
  } finally {
    mlp.dispose();
  }
}
