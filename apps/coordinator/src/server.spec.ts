/**
 * The coordinator's HTTP face against a real JobRuntime (builtin:iris, two epochs) over
 * loopback: probes, JSON views, Prometheus text, token-guarded control, the dashboard
 * stream, and the workers' channel fed raw frames, malformed and well-formed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import { bytesOf, encodeMessage, float32s, int32s, PROTOCOL_VERSION, uint32s, type WorkerMessage } from '@ringtrain/protocol';
import { decodeSnapshot, snapshotShape } from '@ringtrain/train';
import {
  closed,
  CONFUSION,
  coordinator,
  DEADLINE_MS,
  epoch,
  type Harness,
  inbox,
  post,
  refusedWith,
  register,
  request,
  status,
  TOKEN,
  until,
  withPayload,
  within,
  worker,
  wsUrl,
  P,
} from './server.fixture.js';
import type { JobStatus, MetricHistory } from './status.js';

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

  // With no worker there is no state to save: the job stops with no checkpoint. It is
  // `finishing` until its outputs (cluster.json, report.html) are written, then `stopped`.
  assert.deepEqual(await post(h, '/api/stop', TOKEN).then((r) => [r.status, r.body]), [200, { state: 'finishing' }]);
  const outcome = await within(h.runtime.outcome, 'outcome');
  // Its report.html is of the run so far: nothing yet, marked interrupted.
  assert.deepEqual(outcome, { kind: 'stopped', checkpoint: null, reason: 'stopped through the API', report: outcome.report });
  assert.match(outcome.report ?? '', /\/ringtrain-server-[^/]+\/report\.html$/);
  assert.equal((await status(h)).state, 'stopped');
});

test('a stop for good outranks a stop for a restart, in either order (the coordinator exits 4, not 3)', async (t) => {
  for (const order of [[true, false], [false, true]]) {
    const h = await coordinator(t);
    assert.equal(h.runtime.stoppedForGood, false);
    for (const release of order) h.runtime.stop(release ? 'stopped through the API' : 'coordinator shutting down (SIGTERM)', release);
    assert.equal(h.runtime.stoppedForGood, true, `stops ${JSON.stringify(order)}`);
    assert.equal((await within(h.runtime.outcome, 'outcome')).kind, 'stopped');
  }
  const h = await coordinator(t);
  h.runtime.stop('coordinator shutting down (SIGTERM)', false);
  assert.equal(h.runtime.stoppedForGood, false, 'a SIGTERM alone: a new process continues');
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

test('a worker of another control protocol version is told so (reject PROTOCOL_VERSION, naming both versions) and closed with 1008; it never joins', async (t) => {
  const h = await coordinator(t);
  for (const [theirs, said] of [
    [undefined, '1 (it carries none)'],
    [PROTOCOL_VERSION + 1, String(PROTOCOL_VERSION + 1)],
  ] as const) {
    const w = await worker(h);
    const close = closed(w.ws);
    const { protocol: _ours, ...old } = register('old');
    w.ws.send(encodeMessage({ ...old, ...(theirs === undefined ? {} : { protocol: theirs }) } as unknown as WorkerMessage));
    const reject = await w.next('reject');
    const expected = `register: the worker speaks control protocol ${said}, this coordinator ${PROTOCOL_VERSION}: run the same ringtrain version everywhere`;
    assert.deepEqual(reject, { type: 'reject', code: 'PROTOCOL_VERSION', reason: expected });
    assert.deepEqual(await close, { code: 1008, reason: `PROTOCOL_VERSION: ${expected}`.slice(0, 123) });
  }
  assert.deepEqual((await status(h)).workers, []);
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
  assert.ok(gen.state, 'the generation announces a state transfer');
  const start = decodeSnapshot(await w.receive(gen.state), snapshotShape(spec, mlp.layout.size));
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

  // Asking past the end is refused by the decoder (the job's bounds) and the connection closes.
  const close = closed(w.ws);
  w.ws.send(encodeMessage({ type: 'fetch', id: 8, split: 'train', indices: bytesOf(Uint32Array.from([0, data.train.rows])) }));
  assert.deepEqual(await close, { code: 1008, reason: `PROTOCOL_BAD_MESSAGE: worker message "fetch": indices.1: train row ${data.train.rows} is past its ${data.train.rows} rows` });
  await until(() => h.runtime.status().workers.length === 0, 'the worker gone from the status');
  const gone = await status(h);
  assert.equal(gone.state, 'waiting');
  assert.deepEqual(gone.ring, []);
  assert.ok(gone.events.some((e) => e.kind === 'lost' && e.message.startsWith('w1 lost')));
});

test('a state that does not fit the job is the worker\'s fault: a bad checkpoint or final weights close it with 1008, and the job is unharmed', async (t) => {
  const h = await coordinator(t);
  const result = { history: [], bestEpoch: 0, stoppedEarly: false, steps: 0, final: { train: { loss: 1, accuracy: null }, validation: null, test: null }, confusion: CONFUSION };
  const full = { ...result, history: [epoch(1), epoch(2)], bestEpoch: 2, steps: 2 * P };
  const nan = new Float32Array(h.job.mlp.layout.size);
  nan[3] = NaN;
  const cases: [string, (g: number) => WorkerMessage, RegExp][] = [
    ['checkpoint', (g) => withPayload((state) => ({ type: 'checkpoint', generation: g, reason: 'steps', state }), new Uint8Array(16)), /^PROTOCOL_BAD_MESSAGE: state snapshot: wrong magic/],
    ['done', (g) => withPayload((params) => ({ type: 'done', generation: g, result, params }), new Uint8Array(4)), /^PROTOCOL_BAD_MESSAGE: worker message "done": params\.bytes: 4 bytes; the model has \d+ parameters/],
    ['done without weights', (g) => ({ type: 'done', generation: g, result: full }), /^PROTOCOL_BAD_MESSAGE: done: rank 0 sends its final weights/],
    ['done with NaN', (g) => withPayload((params) => ({ type: 'done', generation: g, result: full, params }), bytesOf(nan)), /^PROTOCOL_BAD_MESSAGE: done: final weights params\[3\] is NaN/],
  ];
  for (const [name, make, reason] of cases) {
    const w = await worker(h);
    w.ws.send(encodeMessage(register()));
    await w.next('job');
    const gen = await w.next('generation');
    const close = closed(w.ws);
    w.send(make(gen.generation));
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

// ---- hostile input: nothing a client sends ends the process ------------------------------

/** Sends `bytes` on a raw TCP connection and resolves with everything the server wrote before it closed (or at the deadline, '' + what came). */
function raw(h: Harness, bytes: string | Buffer, ms = DEADLINE_MS): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(h.server.port, '127.0.0.1');
    let got = '';
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(got);
    };
    const timer = setTimeout(done, ms);
    socket.on('data', (d: Buffer) => (got += d.toString('latin1')));
    socket.on('close', done);
    socket.on('error', () => {});
    socket.write(bytes);
  });
}

const statusLine = (response: string) => response.split('\r\n', 1)[0] ?? '';
/** The JSON body of a response, whole or in one chunk (Node's own responses are chunked). */
const bodyOf = (response: string) => JSON.parse(response.slice(response.indexOf('{'), response.lastIndexOf('}') + 1)) as { code: string; message: string };
const WS_HEADERS = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';

test('odd request targets are routed or refused with 400 BAD_REQUEST, never thrown on', async (t) => {
  const h = await coordinator(t);
  const cases: [target: string, status: string, code: string | null][] = [
    // `new URL('//', base)` throws: this request used to end the coordinator.
    ['//', '404', 'NOT_FOUND'],
    ['//healthz', '404', 'NOT_FOUND'],
    ['http://x/healthz', '200', null],
    ['http://x', '200', null],
    ['/healthz?probe=1', '200', null],
    ['*', '400', 'BAD_REQUEST'],
    ['/%zz', '400', 'BAD_REQUEST'],
    ['ftp://x/healthz', '400', 'BAD_REQUEST'],
    ['x:443', '400', 'BAD_REQUEST'],
    [`/${'a'.repeat(9000)}`, '400', 'BAD_REQUEST'],
  ];
  for (const [target, status, code] of cases) {
    const res = await raw(h, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    assert.equal(statusLine(res).split(' ')[1], status, target.slice(0, 40));
    if (code) assert.equal(bodyOf(res).code, code, target.slice(0, 40));
  }
  assert.equal(statusLine(await raw(h, 'OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')), 'HTTP/1.1 400 Bad Request');
  assert.equal((await request(h, '/healthz')).status, 200);
});

test('requests Node cannot parse get 400 or 431 with a code, on the socket; CONNECT is closed', async (t) => {
  const h = await coordinator(t);
  const cases: [what: string, bytes: string | Buffer, status: string, code: string | null][] = [
    ['garbage bytes', Buffer.from([0x00, 0xff, 0x13, 0x37, 0x0d, 0x0a, 0x0d, 0x0a]), '400', 'BAD_REQUEST'],
    ['a control character in the target', 'GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n', '400', 'BAD_REQUEST'],
    ['a header without a colon', 'GET / HTTP/1.1\r\nHost x\r\n\r\n', '400', 'BAD_REQUEST'],
    ['a header over 16 KiB', `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`, '431', 'HEADERS_TOO_LARGE'],
    ['3,000 headers', `GET / HTTP/1.1\r\nHost: x\r\n${'X-Repeated-Header: value\r\n'.repeat(3000)}\r\n`, '431', 'HEADERS_TOO_LARGE'],
    // Node answers this one itself (requireHostHeader), with no body.
    ['no Host header', 'GET /healthz HTTP/1.1\r\n\r\n', '400', null],
    ['two Host headers', 'GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n', '200', null],
    ['an unknown HTTP version', 'GET / HTTP/9.9\r\nHost: x\r\n\r\n', '400', 'BAD_REQUEST'],
    ['two Content-Lengths that differ', 'POST /api/pause HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab', '400', 'BAD_REQUEST'],
    ['CONNECT', 'CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n', '', null],
  ];
  for (const [what, bytes, status, code] of cases) {
    const res = await raw(h, bytes);
    assert.equal(statusLine(res).split(' ')[1] ?? '', status, what);
    if (code) assert.equal(bodyOf(res).code, code, what);
  }
  assert.equal((await request(h, '/healthz')).status, 200);
});

test('upgrades with a bad target or bad headers are refused cleanly; a refused client that resets is no uncaught ECONNRESET', async (t) => {
  const h = await coordinator(t);
  const auth = `Authorization: Bearer ${TOKEN}\r\n`;
  const cases: [what: string, head: string, status: string, code: string][] = [
    ['a bad target', `GET /%zz HTTP/1.1\r\nHost: x\r\n${WS_HEADERS}\r\n`, '400', 'BAD_REQUEST'],
    ['a path with no WebSocket', `GET // HTTP/1.1\r\nHost: x\r\n${WS_HEADERS}\r\n`, '404', 'NOT_FOUND'],
    ['no token', `GET /worker HTTP/1.1\r\nHost: x\r\n${WS_HEADERS}\r\n`, '401', 'UNAUTHORIZED'],
    ['a bad Sec-WebSocket-Key', `GET /worker HTTP/1.1\r\nHost: x\r\n${auth}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n\r\n`, '400', 'BAD_REQUEST'],
    ['no Sec-WebSocket-Version', `GET /api/stream HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`, '400', 'BAD_REQUEST'],
    ['Upgrade: h2c', `GET /api/stream HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n`, '400', 'BAD_REQUEST'],
    ['POST', `POST /worker HTTP/1.1\r\nHost: x\r\n${auth}${WS_HEADERS}Content-Length: 0\r\n\r\n`, '405', 'BAD_REQUEST'],
  ];
  for (const [what, head, status, code] of cases) {
    const res = await raw(h, head);
    assert.equal(statusLine(res).split(' ')[1], status, what);
    assert.equal(bodyOf(res).code, code, what);
  }
  // The second crash: the refusal written to a socket the client has reset.
  // 200 upgrades without the token, each followed at once by a TCP reset (SO_LINGER 0).
  for (let i = 0; i < 200; i++) {
    await new Promise<void>((resolve) => {
      const socket = connect(h.server.port, '127.0.0.1', () => {
        socket.write(`GET /worker HTTP/1.1\r\nHost: x\r\n${WS_HEADERS}\r\n${'x'.repeat(64 * 1024)}`);
        socket.resetAndDestroy();
      });
      socket.on('error', () => {});
      socket.on('close', () => resolve());
    });
  }
  assert.equal((await request(h, '/healthz')).status, 200);
  assert.equal(await refusedWith(h, {}), 401);
});

test('refusals are counted in /metrics by reason, and each peer is logged once per interval, not once per refusal', async (t) => {
  const lines: { msg: string; reason?: string; count?: number; component?: string }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l) as (typeof lines)[number]);
      cb();
    },
  });
  const h = await coordinator(t, { logger: pino({ level: 'warn' }, sink) });
  for (let i = 0; i < 20; i++) assert.equal((await post(h, '/api/stop', 'wrong')).status, 401);
  for (let i = 0; i < 10; i++) assert.equal(await refusedWith(h, {}), 401);
  for (let i = 0; i < 15; i++) assert.equal(statusLine(await raw(h, 'GET * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).split(' ')[1], '400');
  for (let i = 0; i < 25; i++) {
    const { ws } = await worker(h);
    const close = closed(ws);
    ws.send(Uint8Array.from([0xc1]));
    assert.equal((await close).code, 1008);
  }
  const prom = (await request(h, '/metrics')).text;
  assertPrometheus(prom);
  assert.ok(prom.includes('# TYPE ringtrain_rejected_total counter\n'));
  for (const [reason, n] of [['unauthorized', 30], ['bad_request', 15], ['bad_message', 25], ['internal_error', 0]] as const) {
    assert.ok(prom.includes(`ringtrain_rejected_total{job_name="api-test",reason="${reason}"} ${n}\n`), `${reason} ${n}:\n${prom}`);
  }
  // 70 refusals from one address within the interval: one line, the first.
  const refusals = lines.filter((l) => l.component === 'rejections');
  assert.deepEqual(refusals.map((l) => [l.reason, l.msg]), [['unauthorized', 'control request without the job token refused']]);
  assert.equal((await status(h)).state, 'waiting', 'no refused stop got through');
});
