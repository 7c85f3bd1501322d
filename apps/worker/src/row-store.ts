/**
 * The rows a worker holds. The coordinator owns the dataset; a worker asks for the rows
 * its shard needs, epoch by epoch (and the next epoch's ahead of need), and keeps them:
 * each split is a full-size table whose rows fill in as they arrive, with a bitmap of
 * which are here, so libs/train's loop indexes it by global row like any table. It is
 * also where an answer is reassembled: the coordinator streams a request's rows in
 * chunks of at most 4 MiB, and each is put here as it arrives (rows.ts checks that a
 * chunk holds the next rows asked for), so no whole answer is ever held at once.
 */
import type { PreparedDataset, Table, Task } from '@ringtrain/data';
import type { DatasetInfo, Split } from '@ringtrain/protocol';
import { WorkerError } from './errors.js';

export class RowStore {
  readonly dataset: PreparedDataset;
  private readonly present: Record<Split, Uint8Array>;
  private readonly tables: Record<Split, Table>;

  constructor(info: DatasetInfo) {
    const task = info.task as Task;
    const table = (rows: number): Table => ({
      features: new Float32Array(rows * info.cols),
      rows,
      cols: info.cols,
      featureNames: info.featureNames,
      labels: task.kind === 'classification' ? new Int32Array(rows) : new Float32Array(rows),
      task,
      ...(info.imageShape ? { imageShape: info.imageShape } : {}),
    });
    this.tables = { train: table(info.rows.train), validation: table(info.rows.validation), test: table(info.rows.test) };
    this.present = {
      train: new Uint8Array(info.rows.train),
      validation: new Uint8Array(info.rows.validation),
      test: new Uint8Array(info.rows.test),
    };
    // The normalizer stays with the coordinator: rows arrive normalized.
    this.dataset = { ...this.tables, normalizer: { method: 'none', cols: info.cols }, task, source: info.source };
  }

  table(split: Split): Table {
    return this.tables[split];
  }

  /** Those of `indices` not held yet, each once, ascending. */
  missing(split: Split, indices: Iterable<number>): Uint32Array {
    const have = this.present[split];
    const want = new Set<number>();
    for (const i of indices) if (have[i] === 0) want.add(i);
    return Uint32Array.from([...want].sort((a, b) => a - b));
  }

  /** Stores rows sent by the coordinator; throws ROWS_INVALID on indices out of range or sizes that disagree, storing none. */
  put(split: Split, indices: Uint32Array, features: Float32Array, labels: Int32Array | Float32Array): void {
    const t = this.tables[split];
    if (features.length !== indices.length * t.cols || labels.length !== indices.length) {
      throw new WorkerError('ROWS_INVALID', `rows for ${split}: ${indices.length} indices, ${features.length} feature values, ${labels.length} labels (${t.cols} columns)`);
    }
    for (const i of indices) if (i >= t.rows) throw new WorkerError('ROWS_INVALID', `rows for ${split}: index ${i} is past its ${t.rows} rows`);
    for (let k = 0; k < indices.length; k++) {
      const i = indices[k]!;
      t.features.set(features.subarray(k * t.cols, (k + 1) * t.cols), i * t.cols);
      t.labels[i] = labels[k]!;
      this.present[split][i] = 1;
    }
  }

  /** Rows held, per split. */
  held(split: Split): number {
    let n = 0;
    for (const b of this.present[split]) n += b;
    return n;
  }
}

/**
 * Why a chunk of an answer is not the next one of a request for `asked` (`received` of
 * its rows in so far), or null: a chunk holds the rows at positions offset.. of the
 * request, in its order, and chunks come in order.
 */
export function chunkIssue(asked: Uint32Array, received: number, offset: number, indices: Uint32Array): string | null {
  if (offset !== received) return `rows at ${offset}; ${received} of ${asked.length} are in`;
  if (offset + indices.length > asked.length) return `${indices.length} rows at ${offset} overrun the ${asked.length} asked for`;
  for (let k = 0; k < indices.length; k++) if (indices[k] !== asked[offset + k]) return `row ${indices[k]} at ${offset + k}; ${asked[offset + k]} was asked for there`;
  return null;
}
