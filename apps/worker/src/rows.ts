/**
 * Row fetching: a worker asks the coordinator for the rows its shard needs and keeps
 * them (row-store.ts). `ensure(split, indices)` asks for those not held yet, in requests
 * of at most FETCH_BYTES of features; the coordinator answers each in `rows` chunks
 * (at most 4 MiB, at positions offset.. of the request, in order), and each chunk is
 * checked (chunkIssue) and stored as it arrives, so no whole answer is ever held.
 *
 * One request per split is out at a time (the coordinator refuses a second with 1008):
 * calls queue per split, across generations, so a request still being answered for an
 * ended generation delays the next generation's, never overlaps it.
 *
 * Deadlines. Each request must be answered whole within its deadline (the caller's, the
 * job's: job.ts) or fails with ROWS_TIMEOUT. A caller's wait also ends at once, with
 * ROWS_CANCELLED, when its generation ends (its AbortSignal); the request itself runs
 * on, and what it brings is kept. A lost connection fails every request with
 * ROWS_CANCELLED (cancelAll), and a chunk that is not the next rows asked for fails its
 * request with ROWS_INVALID.
 *
 * Retries. A request is never asked again on the same connection by itself: after a
 * timeout the coordinator may still be answering it, and a second request for the split
 * would be refused. What is retried is the need: every `ensure` asks for whatever is
 * still missing, so rows fetched ahead of need whose request failed are asked for again
 * when they are needed, and a generation that ended with ROWS_* leaves the next one to
 * ask for what it lacks.
 */
import { bytesOf, type CoordinatorMessage, float32s, int32s, type Split, uint32s, type WorkerMessage } from '@ringtrain/protocol';
import { WorkerError } from './errors.js';
import { chunkIssue, type RowStore } from './row-store.js';

/** At most this many bytes of features per request (several chunks of an answer). */
export const FETCH_BYTES = 16 * 1024 * 1024;

type RowsMessage = Extract<CoordinatorMessage, { type: 'rows' }>;
type FetchMessage = Extract<WorkerMessage, { type: 'fetch' }>;

/** Rows per request for a table of `cols` features. */
export function rowsPerRequest(cols: number): number {
  return Math.max(1, Math.floor(FETCH_BYTES / (4 * Math.max(1, cols))));
}

export interface EnsureOptions {
  /** Aborted when the generation that needs the rows has ended. */
  readonly signal: AbortSignal;
  /** How long one request may take, from its sending to its last chunk. */
  readonly deadlineMs: number;
}

/** A request being answered: the rows asked for, in order, and how many have arrived. */
interface Request {
  readonly store: RowStore;
  readonly split: Split;
  readonly indices: Uint32Array;
  received: number;
  readonly settle: (err?: Error) => void;
}

export class RowFetcher {
  private nextId = 0;
  private readonly requests = new Map<number, Request>();
  private readonly queues: Record<Split, Promise<void>> = { train: Promise.resolve(), validation: Promise.resolve(), test: Promise.resolve() };

  /** `send` sends a request; false when there is no connection to send it on. */
  constructor(private readonly send: (m: FetchMessage) => boolean) {}

  /** Resolves once `indices` of `split` are all in `store`, asking for the missing ones. */
  ensure(store: RowStore, split: Split, indices: Iterable<number>, o: EnsureOptions): Promise<void> {
    const work = this.queues[split]
      .catch(() => {})
      .then(async () => {
        const missing = store.missing(split, indices);
        const per = rowsPerRequest(store.table(split).cols);
        for (let start = 0; start < missing.length; start += per) {
          if (o.signal.aborted) throw cancelled(split, o.signal);
          await this.request(store, split, missing.subarray(start, start + per), o.deadlineMs);
        }
      });
    this.queues[split] = work;
    return untilAborted(work, o.signal, () => cancelled(split, o.signal));
  }

  /** One chunk of an answer: stored if it is the next rows of its request; a chunk of a request given up on is dropped. */
  take(m: RowsMessage): void {
    const r = this.requests.get(m.id);
    if (!r) return;
    try {
      const indices = uint32s(m.indices, 'indices');
      const issue = m.split === r.split ? chunkIssue(r.indices, r.received, m.offset, indices) : `${m.split} rows for a ${r.split} request`;
      if (issue) throw new WorkerError('ROWS_INVALID', `rows for fetch ${m.id}: ${issue}`);
      const labels = r.store.table(r.split).task.kind === 'classification' ? int32s(m.labels, 'labels') : float32s(m.labels, 'labels');
      r.store.put(r.split, indices, float32s(m.features, 'features'), labels);
      r.received += indices.length;
    } catch (err) {
      r.settle(err as Error);
      return;
    }
    if (r.received === r.indices.length) r.settle();
  }

  /** The connection is gone: every request in flight fails with ROWS_CANCELLED. */
  cancelAll(reason: string): void {
    for (const r of [...this.requests.values()]) r.settle(new WorkerError('ROWS_CANCELLED', reason));
  }

  /** Requests waiting for their answer. */
  get pending(): number {
    return this.requests.size;
  }

  private request(store: RowStore, split: Split, indices: Uint32Array, deadlineMs: number): Promise<void> {
    const id = this.nextId++;
    const asked = Uint32Array.from(indices);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const r = this.requests.get(id);
        r?.settle(new WorkerError('ROWS_TIMEOUT', `fetch ${id}: only ${r.received} of ${asked.length} ${split} rows arrived within its deadline of ${deadlineMs} ms`));
      }, deadlineMs);
      const settle = (err?: Error): void => {
        clearTimeout(timer);
        this.requests.delete(id);
        if (err) reject(err);
        else resolve();
      };
      this.requests.set(id, { store, split, indices: asked, received: 0, settle });
      if (!this.send({ type: 'fetch', id, split, indices: bytesOf(asked) })) settle(new WorkerError('ROWS_CANCELLED', `no coordinator connection to ask for ${split} rows on`));
    });
  }
}

/** The generation ended (`signal`'s reason says why) before the rows it waited for came. */
function cancelled(split: Split, signal: AbortSignal): WorkerError {
  const why = typeof signal.reason === 'string' ? ` (${signal.reason})` : '';
  return new WorkerError('ROWS_CANCELLED', `the generation ended${why} before its ${split} rows arrived`);
}

/** `work`, or a rejection with `error()` as soon as `signal` aborts, whichever comes first. */
function untilAborted(work: Promise<void>, signal: AbortSignal, error: () => Error): Promise<void> {
  if (signal.aborted) {
    work.catch(() => {});
    return Promise.reject(error());
  }
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(error());
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
