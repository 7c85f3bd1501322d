import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bytesOf, type CoordinatorMessage, uint32s, type WorkerMessage } from '@ringtrain/protocol';
import { WorkerError } from './errors.js';
import { RowStore } from './row-store.js';
import { FETCH_BYTES, RowFetcher, rowsPerRequest } from './rows.js';

const INFO = {
  source: 'synthetic:test',
  cols: 2,
  featureNames: ['a', 'b'],
  task: { kind: 'classification' as const, classes: ['x', 'y'] },
  rows: { train: 10, validation: 4, test: 0 },
};

type Fetch = Extract<WorkerMessage, { type: 'fetch' }>;
type Rows = Extract<CoordinatorMessage, { type: 'rows' }>;

/** A fetcher whose requests are collected, as a coordinator would receive them. */
function fetcher(connected = true) {
  const sent: Fetch[] = [];
  const rows = new RowFetcher((m) => {
    if (connected) sent.push(m);
    return connected;
  });
  return { rows, sent };
}

/** The chunk of the answer to `f` at `offset`, `count` rows long: row i has features [i, -i] and label i % 2. */
function chunk(f: Fetch, offset: number, count: number, split = f.split): Rows {
  const part = uint32s(f.indices, 'indices').slice(offset, offset + count);
  const features = Float32Array.from([...part].flatMap((i) => [i, -i]));
  const labels = Int32Array.from([...part].map((i) => i % 2));
  return { type: 'rows', id: f.id, split, offset, indices: bytesOf(part), features: bytesOf(features), labels: bytesOf(labels) };
}

const open = (deadlineMs = 5_000) => ({ signal: new AbortController().signal, deadlineMs });
const tick = () => new Promise((r) => setImmediate(r));
const code = (c: string) => (err: unknown) => err instanceof WorkerError && err.code === c;

test('asks for the missing rows only, and stores an answer chunk by chunk', async () => {
  const store = new RowStore(INFO);
  store.put('train', Uint32Array.from([3]), Float32Array.from([3, -3]), Int32Array.from([1]));
  const { rows, sent } = fetcher();
  const done = rows.ensure(store, 'train', [7, 3, 1, 7, 5], open());
  await tick();
  assert.equal(sent.length, 1);
  assert.deepEqual([...uint32s(sent[0]!.indices, 'indices')], [1, 5, 7]);
  rows.take(chunk(sent[0]!, 0, 2));
  assert.equal(store.held('train'), 3, 'each chunk is stored as it arrives');
  rows.take(chunk(sent[0]!, 2, 1));
  await done;
  assert.deepEqual([...store.dataset.train.features.subarray(14, 16)], [7, -7]);
  assert.equal(rows.pending, 0);
  await rows.ensure(store, 'train', [1, 3, 5, 7], open());
  assert.equal(sent.length, 1, 'nothing asked for what is held');
});

test('requests are at most FETCH_BYTES of features', () => {
  assert.equal(rowsPerRequest(32), FETCH_BYTES / 128);
  assert.equal(rowsPerRequest(FETCH_BYTES), 1);
});

test('one request per split at a time: the next waits for the last chunk of the one before', async () => {
  const store = new RowStore(INFO);
  const { rows, sent } = fetcher();
  const first = rows.ensure(store, 'train', [0, 1], open());
  const second = rows.ensure(store, 'train', [1, 2], open());
  const other = rows.ensure(store, 'validation', [0], open());
  await tick();
  assert.deepEqual(
    sent.map((f) => f.split),
    ['train', 'validation'],
  );
  rows.take(chunk(sent[0]!, 0, 2));
  await first;
  await tick();
  assert.deepEqual([...uint32s(sent[2]!.indices, 'indices')], [2], 'the second asks only for what the first did not bring');
  rows.take(chunk(sent[2]!, 0, 1));
  rows.take(chunk(sent[1]!, 0, 1));
  await Promise.all([second, other]);
});

test('ROWS_TIMEOUT when an answer is not whole within the deadline; a late chunk is dropped', async () => {
  const store = new RowStore(INFO);
  const { rows, sent } = fetcher();
  const t0 = performance.now();
  const late = rows.ensure(store, 'train', [0, 1, 2], open(40));
  await tick();
  rows.take(chunk(sent[0]!, 0, 1));
  await assert.rejects(late, (err: WorkerError) => err.code === 'ROWS_TIMEOUT' && /only 1 of 3 train rows arrived within its deadline of 40 ms/.test(err.message));
  assert.ok(performance.now() - t0 >= 39);
  rows.take(chunk(sent[0]!, 1, 2));
  assert.equal(store.held('train'), 1);
});

test('a need retries what failed ahead of it: the rows are asked for again, and arrive', async () => {
  const store = new RowStore(INFO);
  const { rows, sent } = fetcher();
  const ahead = rows.ensure(store, 'train', [4, 5], open(20));
  await assert.rejects(ahead, code('ROWS_TIMEOUT'));
  const needed = rows.ensure(store, 'train', [4, 5], open());
  await tick();
  assert.equal(sent.length, 2);
  rows.take(chunk(sent[1]!, 0, 2));
  await needed;
  assert.equal(store.held('train'), 2);
});

test('ROWS_INVALID for a chunk that is not the next rows asked for, or of another split; nothing of it is stored', async () => {
  const store = new RowStore(INFO);
  const { rows, sent } = fetcher();
  const skipped = rows.ensure(store, 'train', [0, 1, 2], open());
  await tick();
  rows.take(chunk(sent[0]!, 1, 2));
  await assert.rejects(skipped, (err: WorkerError) => err.code === 'ROWS_INVALID' && /rows for fetch 0: rows at 1; 0 of 3 are in/.test(err.message));
  const wrongSplit = rows.ensure(store, 'validation', [0], open());
  await tick();
  rows.take(chunk(sent[1]!, 0, 1, 'train'));
  await assert.rejects(wrongSplit, (err: WorkerError) => err.code === 'ROWS_INVALID' && /train rows for a validation request/.test(err.message));
  assert.equal(store.held('train') + store.held('validation'), 0);
});

test('ROWS_CANCELLED at once when the generation ends; the request runs on, and the next need waits for it', async () => {
  const store = new RowStore(INFO);
  const { rows, sent } = fetcher();
  const generation = new AbortController();
  const wait = rows.ensure(store, 'train', [0, 1], { signal: generation.signal, deadlineMs: 5_000 });
  await tick();
  generation.abort('stop');
  await assert.rejects(wait, (err: WorkerError) => err.code === 'ROWS_CANCELLED' && /the generation ended \(stop\) before its train rows arrived/.test(err.message));
  const next = rows.ensure(store, 'train', [0, 1, 2], open());
  await tick();
  assert.equal(sent.length, 1, 'no second request while the first is answered');
  rows.take(chunk(sent[0]!, 0, 2));
  await tick();
  assert.deepEqual([...uint32s(sent[1]!.indices, 'indices')], [2]);
  rows.take(chunk(sent[1]!, 0, 1));
  await next;
  // A generation that has already ended asks for nothing.
  await assert.rejects(rows.ensure(store, 'train', [9], { signal: AbortSignal.abort(), deadlineMs: 5_000 }), code('ROWS_CANCELLED'));
});

test('ROWS_CANCELLED for every request when the connection is lost, or when there is none', async () => {
  const store = new RowStore(INFO);
  const { rows } = fetcher();
  const wait = rows.ensure(store, 'train', [0], open());
  await tick();
  rows.cancelAll('coordinator connection lost: closed (1006)');
  await assert.rejects(wait, (err: WorkerError) => err.code === 'ROWS_CANCELLED' && /closed \(1006\)/.test(err.message));
  const offline = fetcher(false);
  await assert.rejects(offline.rows.ensure(store, 'train', [0], open()), code('ROWS_CANCELLED'));
  assert.equal(offline.rows.pending, 0);
});
