/**
 * Test helpers for the coordinator's HTTP face and its workers' channel: a real
 * JobRuntime and server on loopback (builtin:iris, two epochs, unless a test brings its
 * own job), plain HTTP requests, and raw worker connections that hold the token and
 * read the coordinator's messages one by one, each with a deadline.
 */
import { createHash } from 'node:crypto';
import { after, before, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Logger, pino } from 'pino';
import { type RawData, WebSocket } from 'ws';
import { selectBackend } from '@ringtrain/model';
import {
  bytesOf,
  type CoordinatorMessage,
  decodeCoordinatorMessage,
  encodeMessage,
  type EpochReport,
  PROTOCOL_VERSION,
  TRANSFER_CHUNK_BYTES,
  type TransferHead,
  type WorkerMessage,
} from '@ringtrain/protocol';
import { type OpenedJob, openJob, validateJobSpec } from '@ringtrain/train';
import { JobRuntime } from './runtime.js';
import { type CoordinatorServer, startServer } from './server.js';
import type { JobStatus } from './status.js';

export const TOKEN = 'test-token-0123456789';
export const DEADLINE_MS = 2_000;
export const log = pino({ level: 'silent' });

const dirs: string[] = [];
before(async () => {
  await selectBackend('cpu');
});
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

export interface Harness {
  readonly job: OpenedJob;
  readonly runtime: JobRuntime;
  readonly server: CoordinatorServer;
  readonly outDir: string;
}

export interface HarnessOptions {
  readonly logger?: Logger;
  /** The job spec (raw, validated here); default builtin:iris for two epochs. */
  readonly spec?: Record<string, unknown>;
  /** Called with the output directory before the runtime starts (to leave files there). */
  readonly prepare?: (outDir: string) => Promise<void>;
}

/** A fresh job, runtime and server on 127.0.0.1, all closed when the test ends. */
export async function coordinator(t: TestContext, o: HarnessOptions = {}): Promise<Harness> {
  const logger = o.logger ?? log;
  const spec = validateJobSpec(o.spec ?? { name: 'api-test', data: { source: 'builtin:iris' }, training: { epochs: 2 } });
  const job = await openJob(spec, null);
  const outDir = await mkdtemp(join(tmpdir(), 'ringtrain-server-'));
  dirs.push(outDir);
  await o.prepare?.(outDir);
  const runtime = new JobRuntime({ job, outDir, log: logger, backend: 'cpu', token: TOKEN });
  const server = await startServer({ runtime, token: TOKEN, host: '127.0.0.1', port: 0, log: logger });
  t.after(async () => {
    await runtime.close();
    await server.close();
  });
  return { job, runtime, server, outDir };
}

/** Rejects with a message naming `what` unless `p` settles within `ms`. */
export async function within<T>(p: Promise<T>, what: string, ms = DEADLINE_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `check` until it holds. */
export async function until(check: () => boolean, what: string, ms = DEADLINE_MS): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export async function request(h: Harness, path: string, init: RequestInit = {}): Promise<{ status: number; body: unknown; text: string }> {
  const res = await within(fetch(`${h.server.url}${path}`, init), `answer to ${init.method ?? 'GET'} ${path}`);
  const text = await res.text();
  const json = (res.headers.get('content-type') ?? '').startsWith('application/json');
  return { status: res.status, body: json ? JSON.parse(text) : null, text };
}

export const post = (h: Harness, path: string, token?: string) =>
  request(h, path, { method: 'POST', ...(token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } }) });
export const status = async (h: Harness) => (await request(h, '/api/status')).body as JobStatus;

export const wsUrl = (h: Harness, path: string) => `${h.server.url.replace(/^http/, 'ws')}${path}`;

/** Messages from a socket, in order, each awaited with a deadline. */
export function inbox(ws: WebSocket): { next(what: string): Promise<RawData> } {
  const queued: RawData[] = [];
  const waiting: ((m: RawData) => void)[] = [];
  ws.on('message', (data: RawData) => {
    const w = waiting.shift();
    if (w) w(data);
    else queued.push(data);
  });
  return {
    next: (what) => within(queued.length > 0 ? Promise.resolve(queued.shift()!) : new Promise<RawData>((r) => waiting.push(r)), what),
  };
}

export interface FakeWorker {
  readonly ws: WebSocket;
  /** The next message, which must be of `type` (acks and chunks are skipped unless asked for). */
  next<T extends CoordinatorMessage['type']>(type: T): Promise<Extract<CoordinatorMessage, { type: T }>>;
  /** Sends `m`, and its transfer's chunks when `m` was made by `withPayload` (or `done`). */
  send(m: WorkerMessage): void;
  /** The bytes of transfer `head` from the coordinator, each chunk acked. */
  receive(head: TransferHead): Promise<Uint8Array>;
}

/** The bytes each announcing message made here carries, sent as chunks after it. */
const payloads = new WeakMap<WorkerMessage, Uint8Array>();
let transferIds = 0;

/** A transfer head for `bytes`, for a message that `send` then follows with its chunks. */
export function withPayload<M extends WorkerMessage>(make: (head: TransferHead) => M, bytes: Uint8Array): M {
  const m = make({ id: ++transferIds, bytes: bytes.byteLength });
  payloads.set(m, bytes);
  return m;
}

/** The chunks of transfer `head` carrying `bytes`, as a well-behaved sender cuts them. */
export function chunksOf(head: TransferHead, bytes: Uint8Array): WorkerMessage[] {
  const out: WorkerMessage[] = [];
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  for (let at = 0; at < bytes.byteLength || (at === 0 && bytes.byteLength === 0); at += TRANSFER_CHUNK_BYTES) {
    const data = bytes.subarray(at, at + TRANSFER_CHUNK_BYTES);
    out.push({ type: 'chunk', id: head.id, offset: at, data, ...(at + data.byteLength === bytes.byteLength ? { sha256 } : {}) });
    if (bytes.byteLength === 0) break;
  }
  return out;
}

/** A worker's control connection, open, with its inbox of decoded coordinator messages. */
export async function worker(h: Harness): Promise<FakeWorker> {
  const ws = new WebSocket(wsUrl(h, '/worker'), { headers: { authorization: `Bearer ${TOKEN}` } });
  const box = inbox(ws);
  await within(new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject)), 'worker connection');
  const next = async <T extends CoordinatorMessage['type']>(type: T): Promise<Extract<CoordinatorMessage, { type: T }>> => {
    for (;;) {
      const m = decodeCoordinatorMessage(new Uint8Array((await box.next(`'${type}' message`)) as Buffer));
      // Acks of this worker's chunks, and the chunks of a state a test does not `receive`, are skipped.
      if ((m.type === 'ack' || m.type === 'chunk') && m.type !== type) continue;
      assert.equal(m.type, type);
      return m as Extract<CoordinatorMessage, { type: T }>;
    }
  };
  const send = (m: WorkerMessage): void => {
    ws.send(encodeMessage(m));
    const bytes = payloads.get(m);
    const head = bytes && 'type' in m ? transferHeadOf(m) : null;
    if (bytes && head) for (const c of chunksOf(head, bytes)) ws.send(encodeMessage(c));
  };
  return {
    ws,
    next,
    send,
    receive: async (head) => {
      const out = new Uint8Array(head.bytes);
      let at = 0;
      for (;;) {
        const c = await next('chunk');
        assert.equal(c.id, head.id);
        out.set(c.data, c.offset);
        at = c.offset + c.data.byteLength;
        send({ type: 'ack', id: head.id, offset: at });
        if (at === head.bytes) return out;
      }
    },
  };
}

export function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return within(new Promise((resolve) => ws.once('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() }))), 'close');
}

/** The HTTP status a /worker upgrade is refused with. */
export function refusedWith(h: Harness, headers: Record<string, string>): Promise<number> {
  const ws = new WebSocket(wsUrl(h, '/worker'), { headers });
  return within(
    new Promise((resolve, reject) => {
      ws.once('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        ws.terminate();
      });
      ws.once('open', () => reject(new Error('the upgrade was accepted')));
      ws.once('error', () => {});
    }),
    'refusal',
  );
}

export const register = (id = 'w1', more: Partial<Extract<WorkerMessage, { type: 'register' }>> = {}): Extract<WorkerMessage, { type: 'register' }> => ({
  type: 'register',
  protocol: PROTOCOL_VERSION,
  id,
  address: { host: '127.0.0.1', port: 9 },
  backend: 'cpu',
  held: null,
  generation: -1,
  ...more,
});

/** Steps per epoch of the default job (Iris: 120 training rows in batches of 32). */
export const P = 4;
export const epoch = (n: number): EpochReport => ({ epoch: n, train: { loss: 0.5, accuracy: 0.8 }, validation: null, learningRate: 0.01, seconds: 1, samplesPerSecond: 100 });
export const FINAL = { train: { loss: 0.5, accuracy: 0.8 }, validation: null, test: null };
/** The default job's confusion matrix as workers count it: its 15 test rows of 3 classes, counts[true][predicted]. */
export const CONFUSION_COUNTS = [5, 0, 0, 0, 4, 1, 0, 2, 3];
export const CONFUSION = { split: 'test' as const, rows: 15, counts: bytesOf(Uint32Array.from(CONFUSION_COUNTS)) };

/** A `done` for the whole job (2 epochs, 8 steps) with every weight `w` (its transfer follows it when sent). */
export function done(generation: number, w: number, result: Partial<Extract<WorkerMessage, { type: 'done' }>['result']> = {}): WorkerMessage {
  return withPayload(
    (params) => ({
      type: 'done',
      generation,
      result: { history: [epoch(1), epoch(2)], bestEpoch: 2, stoppedEarly: false, steps: 2 * P, final: FINAL, confusion: CONFUSION, ...result },
      params,
    }),
    bytesOf(new Float32Array(15).fill(w)),
  );
}

/** The transfer a message announces, if any. */
function transferHeadOf(m: WorkerMessage): TransferHead | null {
  switch (m.type) {
    case 'done':
      return m.params ?? null;
    case 'checkpoint':
    case 'state':
      return m.state;
    default:
      return null;
  }
}

/** Registers `id` (with `more`) and reads its `job`; the worker is then a member. */
export async function joined(h: Harness, id: string, more: Partial<Extract<WorkerMessage, { type: 'register' }>> = {}): Promise<FakeWorker> {
  const w = await worker(h);
  w.send(register(id, more));
  await w.next('job');
  return w;
}
