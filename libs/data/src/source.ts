/**
 * Sources are named by one string, so that a job file, a CLI flag and a checkpoint can
 * all say where the data came from:
 *   builtin:iris                  the 150-row Iris data shipped in libs/data/data
 *   csv:PATH                      a CSV file (see csv.ts), plain or gzip
 *   idx:DIR                       an MNIST-family directory with its own test split
 *   synthetic:k=v,...             a teacher network's data (see synthetic.ts)
 * A relative PATH or DIR resolves against options.baseDir (the job file's directory),
 * else the working directory.
 */
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCsv, type TaskKind } from './csv.js';
import { DataError } from './errors.js';
import { loadIdxDir } from './idx.js';
import { parseSyntheticSpec, type SyntheticSpec, syntheticTable } from './synthetic.js';
import type { LabelColumn, Table } from './types.js';

export type SourceRef =
  | { readonly kind: 'builtin'; readonly name: BuiltinName }
  | { readonly kind: 'csv'; readonly path: string }
  | { readonly kind: 'idx'; readonly dir: string }
  | { readonly kind: 'synthetic'; readonly spec: SyntheticSpec };

/** Files relative to this module, so they are found from src/ and dist/ alike, whatever the cwd. */
const BUILTINS = {
  iris: new URL('../data/iris.csv', import.meta.url),
} as const;
export type BuiltinName = keyof typeof BUILTINS;
export const BUILTIN_NAMES = Object.keys(BUILTINS) as readonly BuiltinName[];

export interface LoadOptions {
  /** Label column name (CSV and builtin sources). */
  readonly label?: string;
  /** Force classification or regression; see csv.ts and synthetic.ts. */
  readonly task?: TaskKind;
  /** Without task, CSV labels that are all integers are classes (csv.ts); the other sources ignore it. */
  readonly integerClasses?: boolean;
  /** Whether a csv: file's first row names the columns (csv.ts); an error for other sources. */
  readonly header?: boolean;
  /** Directory that relative paths resolve against; default: the working directory. */
  readonly baseDir?: string;
}

export interface LoadedSource {
  readonly train: Table;
  /** Present only when the source has its own test split (IDX). */
  readonly test?: Table;
  /** The label column of a CSV source (csv:, builtin:), and what its values are. */
  readonly labelColumn?: LabelColumn;
}

const KINDS = ['builtin', 'csv', 'idx', 'synthetic'] as const;

function invalid(source: string, what: string): DataError {
  return new DataError('DATA_SOURCE_INVALID', `source "${source}": ${what}`);
}

/** Checks a source string's syntax without touching the file system. */
export function parseSource(source: string): SourceRef {
  const colon = source.indexOf(':');
  const kind = colon < 0 ? '' : source.slice(0, colon);
  const rest = source.slice(colon + 1);
  switch (kind) {
    case 'builtin':
      if (!(BUILTIN_NAMES as readonly string[]).includes(rest)) throw invalid(source, `unknown builtin "${rest}"; known: ${BUILTIN_NAMES.join(', ')}`);
      return { kind, name: rest as BuiltinName };
    case 'csv':
      if (rest.trim() === '') throw invalid(source, 'expected csv:PATH');
      return { kind, path: rest };
    case 'idx':
      if (rest.trim() === '') throw invalid(source, 'expected idx:DIR');
      return { kind, dir: rest };
    case 'synthetic':
      return { kind, spec: parseSyntheticSpec(rest, source) };
    default:
      throw invalid(source, `expected one of ${KINDS.map((k) => `${k}:...`).join(', ')}`);
  }
}

/**
 * The same source with a relative csv or idx path made absolute against baseDir (else
 * the working directory): what a run records, so that its job.yaml still names the same
 * data when read from another directory.
 */
export function absoluteSource(source: string, baseDir: string = process.cwd()): string {
  const ref = parseSource(source);
  if (ref.kind === 'csv') return `csv:${resolve(baseDir, ref.path)}`;
  if (ref.kind === 'idx') return `idx:${resolve(baseDir, ref.dir)}`;
  return source;
}

/** The absolute path of a builtin data file. */
export function builtinPath(name: BuiltinName): string {
  return fileURLToPath(BUILTINS[name]);
}

/** Loads a source into memory: its training rows, and its own test rows when it has them. */
export async function loadSource(source: string, options: LoadOptions = {}): Promise<LoadedSource> {
  const ref = parseSource(source);
  const { label, task, integerClasses, header } = options;
  // Options may come from a JSON job file, so the types are not to be trusted here.
  if (task !== undefined && task !== 'classification' && task !== 'regression') {
    throw invalid(source, `task must be "classification" or "regression", got ${JSON.stringify(task)}`);
  }
  if (header !== undefined && typeof header !== 'boolean') throw invalid(source, `header must be true or false, got ${JSON.stringify(header)}`);
  if (header !== undefined && ref.kind !== 'csv') throw invalid(source, 'only a csv: source has a header option; drop it');
  const at = (p: string) => (isAbsolute(p) ? p : resolve(options.baseDir ?? process.cwd(), p));
  const csv = async (file: string): Promise<LoadedSource> => {
    const { table, labelColumn } = await loadCsv(file, { label, task, integerClasses, header });
    return { train: table, labelColumn };
  };
  switch (ref.kind) {
    case 'builtin':
      return csv(builtinPath(ref.name));
    case 'csv':
      return csv(at(ref.path));
    case 'idx':
      if (label !== undefined) throw invalid(source, 'IDX data has no label column; drop the label option');
      if (task === 'regression') throw invalid(source, 'IDX data is for classification only');
      return loadIdxDir(at(ref.dir));
    case 'synthetic': {
      if (label !== undefined) throw invalid(source, 'synthetic data has no label column; drop the label option');
      // The option behaves exactly like task=... in the source string.
      const spec = task === undefined ? ref.spec : parseSyntheticSpec(`${source.slice('synthetic:'.length)},task=${task}`, source);
      return { train: syntheticTable(spec) };
    }
  }
}
