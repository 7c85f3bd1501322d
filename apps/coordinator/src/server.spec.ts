/**
 * The coordinator's HTTP face against a real JobRuntime (builtin:iris, two epochs) over
 * loopback: probes, JSON views, Prometheus text, token-guarded control, the dashboard
 * stream, and the workers' channel fed raw frames, malformed and well-formed.
 */
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { type RawData, WebSocket } from 'ws';
import { selectBackend } from '@ringtrain/model';
import {
  bytesOf,
  type CoordinatorMessage,
  decodeCoordinatorMessage,
  encodeMessage,
  float32s,
  int32s,
  uint32s,
  type WorkerMessage,
} from '@ringtrain/protocol';
import { decodeSnapshot, type OpenedJob, openJob, snapshotShape, validateJobSpec } from '@ringtrain/train';
import { JobRuntime } from './runtime.js';
import { type CoordinatorServer, startServer } from './server.js';
import type { JobStatus, MetricHistory } from './status.js';

const TOKEN = 'test-token-0123456789';
const DEADLINE_MS = 2_000;
const log = pino({ level: 'silent' });

const dirs: string[] = [];
before(async () => {
  await selectBackend('cpu');
});
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

// ---- helpers -------------------------------------------------------------------------

interface Harness {
  readonly job: OpenedJob;
  readonly runtime: JobRuntime;
  readonly server: CoordinatorServer;
}

/** A fresh job, runtime and server on 127.0.0.1, all closed when the test ends. */
async function coordinator(t: TestContext): Promise<Harness> {
  const spec = validateJobSpec({ name: 'api-test', data: { source: 'builtin:iris' }, training: { epochs: 2 } });
  const job = await openJob(spec, null);
  const outDir = await mkdtemp(join(tmpdir(), 'ringtrain-server-'));
  dirs.push(outDir);
  const runtime = new JobRuntime({ job, outDir, log, backend: 'cpu' });
  const server = await startServer({ runtime, token: TOKEN, host: '127.0.0.1', port: 0, log });
  t.after(async () => {
    await runtime.close();
    await server.close();
    job.mlp.dispose();
  });
  return { job, runtime, server };
}

/** Rejects with a message naming `what` unless `p` settles within `ms`. */
async function within<T>(p: Promise<T>, what: string, ms = DEADLINE_MS): Promise<T> {
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
async function until(check: () => boolean, what: string, ms = DEADLINE_MS): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function request(h: Harness, path: string, init: RequestInit = {}): Promise<{ status: number; body: unknown; text: string }> {
  const res = await within(fetch(`${h.server.url}${path}`, init), `answer to ${init.method ?? 'GET'} ${path}`);
  const text = await res.text();
  const json = (res.headers.get('content-type') ?? '').startsWith('application/json');
  return { status: res.status, body: json ? JSON.parse(text) : null, text };
}

const post = (h: Harness, path: string, token?: string) =>
  request(h, path, { method: 'POST', ...(token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } }) });
const status = async (h: Harness) => (await request(h, '/api/status')).body as JobStatus;

const wsUrl = (h: Harness, path: string) => `${h.server.url.replace(/^http/, 'ws')}${path}`;

/** Messages from a socket, in order, each awaited with a deadline. */
function inbox(ws: WebSocket): { next(what: string): Promise<RawData> } {
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

/** A worker's control connection, open, with its inbox of decoded coordinator messages. */
async function worker(h: Harness): Promise<{ ws: WebSocket; next<T extends CoordinatorMessage['type']>(type: T): Promise<Extract<CoordinatorMessage, { type: T }>> }> {
  const ws = new WebSocket(wsUrl(h, '/worker'), { headers: { authorization: `Bearer ${TOKEN}` } });
  const box = inbox(ws);
  await within(new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject)), 'worker connection');
  return {
    ws,
    next: async (type) => {
      const m = decodeCoordinatorMessage(new Uint8Array((await box.next(`'${type}' message`)) as Buffer));
      assert.equal(m.type, type);
      return m as Extract<CoordinatorMessage, { type: typeof type }>;
    },
  };
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return within(new Promise((resolve) => ws.once('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() }))), 'close');
}

/** The HTTP status a /worker upgrade is refused with. */
function refusedWith(h: Harness, headers: Record<string, string>): Promise<number> {
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

const register = (id = 'w1'): Extract<WorkerMessage, { type: 'register' }> => ({ type: 'register', id, address: { host: '127.0.0.1', port: 9 }, backend: 'cpu', held: null, generation: -1 });

const PROMETHEUS_SAMPLE = /^[a-z_]+(\{[^}]*\})? -?[0-9.e+-]+$/;

function assertPrometheus(text: string): void {
  assert.ok(text.endsWith('\n'));
  for (const line of text.trimEnd().split('\n')) {
    if (line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
    assert.match(line, PROMETHEUS_SAMPLE);
  }
}

// ---- tests -----------------------------------------------------------------------------

test('probes, status and metrics of a job waiting for its first worker; unknown paths are 404', async (t) => {
  const h = await coordinator(t);
  assert.deepEqual(await request(h, '/healthz').then((r) => [r.status, r.body]), [200, { ok: true }]);
  assert.deepEqual(await request(h, '/readyz').then((r) => [r.status, r.body]), [200, { ready: true, state: 'waiting' }]);
  const s = await status(h);
  const { rows } = h.job.data.train;
  assert.equal(s.job, 'api-test');
  assert.equal(s.state, 'waiting');
  assert.match(s.reason, /0 of minWorkers 1/);
  assert.equal(s.generation, 0);
  assert.equal(s.step, 0);
  assert.equal(s.epochs, 2);
  assert.equal(s.stepsPerEpoch, Math.ceil(rows / h.job.spec.training.batchSize));
  assert.deepEqual(s.workers, []);
  assert.deepEqual(s.ring, []);
  assert.deepEqual(s.messages, {});
  const m = (await request(h, '/api/metrics')).body as MetricHistory;
  assert.deepEqual(m.steps, []);
  assert.deepEqual(m.epochs, []);
  assert.deepEqual(m.generations, []);
  const missing = await request(h, '/api/nothing');
  assert.equal(missing.status, 404);
  assert.equal((missing.body as { code: string }).code, 'NOT_FOUND');
});

test('/metrics is Prometheus text with the job state and step gauges', async (t) => {
  const h = await coordinator(t);
  const r = await request(h, '/metrics');
  assert.equal(r.status, 200);
  assert.ok(r.text.includes('ringtrain_job_state{job_name="api-test",state="waiting"} 1\n'));
  assert.ok(r.text.includes('ringtrain_job_state{job_name="api-test",state="running"} 0\n'));
  assert.ok(r.text.includes('# TYPE ringtrain_step gauge\n'));
  assert.ok(r.text.includes('ringtrain_step{job_name="api-test"} 0\n'));
  assert.ok(!r.text.includes('NaN'));
  assertPrometheus(r.text);
});

test('control needs POST and the token; pause, resume and stop change the job state', async (t) => {
  const h = await coordinator(t);
  for (const token of [undefined, 'wrong-token', '']) {
    const r = await post(h, '/api/pause', token);
    assert.equal(r.status, 401, `token ${token}`);
    assert.equal((r.body as { code: string }).code, 'UNAUTHORIZED');
  }
  const get = await request(h, '/api/pause');
  assert.equal(get.status, 405);
  assert.equal((get.body as { code: string }).code, 'METHOD_NOT_ALLOWED');
  assert.equal((await status(h)).state, 'waiting');

  assert.deepEqual(await post(h, '/api/pause', TOKEN).then((r) => [r.status, r.body]), [200, { state: 'paused' }]);
  assert.equal((await status(h)).state, 'paused');
  assert.deepEqual(await post(h, '/api/resume', TOKEN).then((r) => [r.status, r.body]), [200, { state: 'waiting' }]);
  const resumed = await status(h);
  assert.equal(resumed.state, 'waiting');
  assert.match(resumed.reason, /0 of minWorkers 1/);

  // With no worker there is no state to save: the job stops with no checkpoint.
  assert.deepEqual(await post(h, '/api/stop', TOKEN).then((r) => [r.status, r.body]), [200, { state: 'stopped' }]);
  const outcome = await within(h.runtime.outcome, 'outcome');
  // Its report.html is of the run so far: nothing yet, marked interrupted.
  assert.deepEqual(outcome, { kind: 'stopped', checkpoint: null, reason: 'stopped through the API', report: outcome.report });
  assert.match(outcome.report ?? '', /\/ringtrain-server-[^/]+\/report\.html$/);
  assert.equal((await status(h)).state, 'stopped');
});

test('a /worker upgrade without the right token is refused with 401 and never reaches the runtime', async (t) => {
  const h = await coordinator(t);
  assert.equal(await refusedWith(h, {}), 401);
  assert.equal(await refusedWith(h, { authorization: 'Bearer wrong-token' }), 401);
  assert.equal(await refusedWith(h, { authorization: TOKEN }), 401); // no "Bearer "
  assert.deepEqual(h.runtime.status().messages, {});
  assert.deepEqual(h.runtime.status().workers, []);
  assert.equal((await request(h, '/healthz')).status, 200);
});

test('a worker breaking the protocol is closed with 1008 PROTOCOL_BAD_MESSAGE; the server keeps serving', async (t) => {
  const h = await coordinator(t);
  const cases: [string, (ws: WebSocket) => void, RegExp][] = [
    ['a text frame', (ws) => ws.send('{"type":"register"}'), /^PROTOCOL_BAD_MESSAGE: text frame$/],
    // 0xc1 is the one byte msgpack never uses.
    ['bytes that are not msgpack', (ws) => ws.send(Uint8Array.from([0xc1, 0x07, 0x3f, 0x00, 0xff])), /^PROTOCOL_BAD_MESSAGE: worker message: not msgpack/],
    ['a map that is no message', (ws) => ws.send(encodeMessage({ type: 'bogus', id: 1 } as unknown as WorkerMessage)), /^PROTOCOL_BAD_MESSAGE: worker message "bogus": type: /],
    // The reason quotes the type; cut to fit a close frame's 123 bytes, it stays whole UTF-8.
    ['a map whose type is long and not ASCII', (ws) => ws.send(encodeMessage({ type: 'ü'.repeat(100) } as unknown as WorkerMessage)), /^PROTOCOL_BAD_MESSAGE: worker message "ü+$/],
    [
      'a register with a field wrong',
      (ws) => ws.send(encodeMessage({ ...register(), address: { host: '127.0.0.1', port: 0 } })),
      /^PROTOCOL_BAD_MESSAGE: worker message "register": address\.port: /,
    ],
    [
      'a heartbeat before register',
      (ws) => ws.send(encodeMessage({ type: 'heartbeat', generation: -1, progress: null, timing: { steps: 0, computeMs: 0, commMs: 0, waitMs: 0 }, steps: [], epochs: [] })),
      /^PROTOCOL_BAD_MESSAGE: register first$/,
    ],
  ];
  for (const [what, send, reason] of cases) {
    const { ws } = await worker(h);
    const close = closed(ws);
    send(ws);
    const c = await close;
    assert.equal(c.code, 1008, what);
    assert.match(c.reason, reason, what);
  }
  // Only the heartbeat was a valid message; nobody joined.
  assert.deepEqual(h.runtime.status().messages, { heartbeat: 1 });
  assert.deepEqual((await status(h)).workers, []);
  assert.equal((await status(h)).state, 'waiting');
  assert.deepEqual(await request(h, '/healthz').then((r) => [r.status, r.body]), [200, { ok: true }]);
});

test('a registered worker gets the job, forms generation 1 alone, and fetches rows; a bad fetch closes it with 1008 PROTOCOL_BAD_MESSAGE', async (t) => {
  const h = await coordinator(t);
  const { data, mlp, spec } = h.job;
  const w = await worker(h);
  w.ws.send(encodeMessage(register()));

  const job = await w.next('job');
  assert.deepEqual(job.dataset.rows, { train: data.train.rows, validation: data.validation.rows, test: data.test.rows });
  assert.equal(job.dataset.cols, data.train.cols);
  assert.equal(job.jobId, h.runtime.id);

  const gen = await w.next('generation');
  assert.deepEqual(
    { generation: gen.generation, rank: gen.rank, world: gen.world, source: gen.source, peers: gen.peers },
    { generation: 1, rank: 0, world: 1, source: 0, peers: [{ rank: 0, host: '127.0.0.1', port: 9 }] },
  );
  // A fresh job: rank 0 takes the coordinator's starting weights.
  assert.ok(gen.state instanceof Uint8Array);
  const start = decodeSnapshot(gen.state, snapshotShape(spec, mlp.layout.size));
  assert.equal(start.loop.globalStep, 0);
  assert.deepEqual(start.params, mlp.params);

  const s = await status(h);
  assert.equal(s.state, 'running');
  assert.equal(s.generation, 1);
  assert.deepEqual(s.ring, ['w1']);
  assert.equal(s.workers.length, 1);
  assert.deepEqual({ id: s.workers[0]!.id, rank: s.workers[0]!.rank, address: s.workers[0]!.address }, { id: 'w1', rank: 0, address: '127.0.0.1:9' });
  const prom = (await request(h, '/metrics')).text;
  assert.ok(prom.includes('ringtrain_job_state{job_name="api-test",state="running"} 1\n'));
  assert.ok(prom.includes('ringtrain_workers{job_name="api-test",set="ring"} 1\n'));
  assert.ok(prom.includes('ringtrain_worker_messages_total{job_name="api-test",type="register"} 1\n'));
  assertPrometheus(prom);

  w.ws.send(encodeMessage({ type: 'fetch', id: 7, split: 'train', indices: bytesOf(Uint32Array.from([0, 1])) }));
  const rows = await w.next('rows');
  const cols = data.train.cols;
  assert.equal(rows.id, 7);
  assert.equal(rows.split, 'train');
  assert.deepEqual(uint32s(rows.indices, 'indices'), Uint32Array.from([0, 1]));
  assert.deepEqual(float32s(rows.features, 'features'), data.train.features.slice(0, 2 * cols));
  assert.deepEqual(int32s(rows.labels, 'labels'), data.train.labels.slice(0, 2));

  // Asking past the end is not answered: the handler throws and the connection closes.
  const close = closed(w.ws);
  w.ws.send(encodeMessage({ type: 'fetch', id: 8, split: 'train', indices: bytesOf(Uint32Array.from([0, data.train.rows])) }));
  assert.deepEqual(await close, { code: 1008, reason: `PROTOCOL_BAD_MESSAGE: fetch: train row ${data.train.rows} is past its ${data.train.rows} rows` });
  await until(() => h.runtime.status().workers.length === 0, 'the worker gone from the status');
  const gone = await status(h);
  assert.equal(gone.state, 'waiting');
  assert.deepEqual(gone.ring, []);
  assert.ok(gone.events.some((e) => e.kind === 'lost' && e.message.startsWith('w1 lost')));
});

test('a state that does not fit the job is the worker\'s fault: a bad checkpoint or final weights close it with 1008, and the job is unharmed', async (t) => {
  const h = await coordinator(t);
  for (const [name, message, reason] of [
    ['checkpoint', { type: 'checkpoint', generation: 1, reason: 'steps', snapshot: new Uint8Array(16) }, /^PROTOCOL_BAD_MESSAGE: .*(snapshot|magic)/i],
    [
      'done',
      { type: 'done', generation: 1, result: { history: [], bestEpoch: 0, stoppedEarly: false, steps: 0, final: { train: { loss: 1, accuracy: null }, validation: null, test: null } }, params: new Uint8Array(4) },
      /^PROTOCOL_BAD_MESSAGE: done: 1 parameters; the model has \d+/,
    ],
  ] as const) {
    const w = await worker(h);
    w.ws.send(encodeMessage(register()));
    await w.next('job');
    const gen = await w.next('generation');
    const close = closed(w.ws);
    w.ws.send(encodeMessage({ ...message, generation: gen.generation } as never));
    const got = await close;
    assert.equal(got.code, 1008, name);
    assert.match(got.reason, reason, name);
    await until(() => h.runtime.status().workers.length === 0, `the worker gone after its bad ${name}`);
  }
  const s = await status(h);
  assert.equal(s.checkpoints.length, 0);
  assert.equal(s.model, null);
  assert.equal((await request(h, '/healthz')).status, 200);
});

test('/api/stream sends a snapshot, then an update after a state change', async (t) => {
  const h = await coordinator(t);
  const ws = new WebSocket(wsUrl(h, '/api/stream'));
  const box = inbox(ws);
  const read = async (what: string) => JSON.parse(String(await box.next(what))) as { type: string; status: JobStatus; steps: unknown[]; epochs: unknown[] };
  const first = await read('snapshot');
  assert.equal(first.type, 'snapshot');
  assert.equal(first.status.job, 'api-test');
  assert.equal(first.status.state, 'waiting');
  assert.deepEqual(first.steps, []);

  assert.equal((await post(h, '/api/pause', TOKEN)).status, 200);
  const update = await read('update after the pause');
  assert.equal(update.type, 'update');
  assert.equal(update.status.state, 'paused');
  ws.close();
});
