/**
 * The executor (worker.ts) against a fake coordinator (worker.fixture.ts): a real
 * control channel, a real ring of one, real training of a small job, and the
 * coordinator's side played by the test: which messages it sends, which fetches it
 * answers, when it goes away.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { selectBackend } from '@ringtrain/model';
import { PROTOCOL_VERSION } from '@ringtrain/protocol';
import { TrainingWorker } from './worker.js';
import { EPOCHS, FakeCoordinator, is, recordingLogger, STEPS_PER_EPOCH, TOKEN } from './worker.fixture.js';

const STEPS = STEPS_PER_EPOCH * EPOCHS;
const quiet = pino({ level: 'silent' });
const coordinators: FakeCoordinator[] = [];

function worker(url: string, log = quiet, backoff = { minBackoffMs: 20, maxBackoffMs: 80 }): TrainingWorker {
  return new TrainingWorker({ coordinator: url, token: TOKEN, id: 'w1', bindHost: '127.0.0.1', advertiseHost: '127.0.0.1', backend: 'cpu', log, ...backoff });
}

/** A fake coordinator that has sent its job to the worker's first `register`. */
async function started(ringOpTimeoutMs?: number): Promise<{ c: FakeCoordinator; w: TrainingWorker; exit: Promise<number> }> {
  const c = await FakeCoordinator.start(ringOpTimeoutMs);
  coordinators.push(c);
  const w = worker(c.url);
  const exit = w.run();
  await c.waitFor('register', is('register'));
  c.sendJob();
  return { c, w, exit };
}

type Fetch = Parameters<FakeCoordinator['onFetch']>[0];

/**
 * Holds back the answer to the validation fetch (a world of one asks for each split once,
 * epoch 0 the whole of it): the loop waits in epoch 0's validation, after its steps.
 */
function withholdValidation(c: FakeCoordinator): { readonly fetch: () => Fetch | null } {
  let withheld: Fetch | null = null;
  c.onFetch = (f) => (f.split === 'validation' ? (withheld = f) : c.answer(f));
  return { fetch: () => withheld };
}

before(async () => {
  await selectBackend('cpu');
});

after(async () => {
  await Promise.all(coordinators.map((c) => c.close()));
});

test('a generation from the coordinator`s state: rows in chunks, steps by heartbeat, done; finished ends the worker with 0', async () => {
  const { c, exit } = await started();
  const register = c.received[0]!;
  assert.deepEqual(register.type === 'register' && [register.id, register.held, register.generation], ['w1', null, -1]);
  c.sendGeneration(1);
  const done = await c.waitFor('done', is('done'));
  assert.equal(done.result.steps, STEPS);
  assert.equal(done.result.history.length, EPOCHS);
  const reported = c.received.flatMap((m) => (m.type === 'heartbeat' ? m.steps.map((s) => s.step) : []));
  assert.deepEqual([...new Set(reported)].sort((a, b) => a - b), [...Array(STEPS).keys()], 'rank 0 reports every step');
  const doneAt = c.received.indexOf(done);
  assert.ok(c.received.slice(0, doneAt).some((m) => m.type === 'heartbeat' && m.steps.some((s) => s.step === STEPS - 1)), 'the last step is reported before done');
  assert.equal(c.received.filter((m) => m.type === 'fetch' && m.split === 'train').length, 1, 'a world of one asks for every row once');
  c.send({ type: 'finished', reason: 'completed' });
  assert.equal(await exit, 0);
});

test('a stop while rows are awaited: reported at once with the progress held; the next generation continues from it', async () => {
  const { c, exit } = await started();
  const held = withholdValidation(c);
  c.sendGeneration(1);
  await c.waitFor('the validation fetch', is('fetch', (m) => m.split === 'validation'));
  c.send({ type: 'stop', generation: 1, reason: 'w2 joined' });
  const stopped = await c.waitFor('stopped', is('stopped'));
  // Epoch 0's steps are committed; its validation, and so its record, is not.
  assert.deepEqual(stopped.progress, { step: STEPS_PER_EPOCH, epochs: 0 });
  assert.equal(stopped.code, 'ROWS_CANCELLED');
  assert.match(stopped.reason, /^the generation ended \(w2 joined\) before its validation rows arrived/);
  c.answer(held.fetch()!);
  c.onFetch = (f) => c.answer(f);
  c.sendGeneration(2, stopped.progress!);
  const done = await c.waitFor('done', is('done'));
  assert.equal(done.result.steps, STEPS);
  assert.equal(done.result.history.length, EPOCHS);
  c.send({ type: 'finished', reason: 'completed' });
  assert.equal(await exit, 0);
});

test('rows that do not come within the deadline end the generation with ROWS_TIMEOUT', async () => {
  const { c, exit } = await started(300);
  c.onFetch = () => {};
  const t0 = performance.now();
  c.sendGeneration(1);
  const stopped = await c.waitFor('stopped', is('stopped'));
  assert.equal(stopped.code, 'ROWS_TIMEOUT');
  assert.match(stopped.reason, /^fetch \d+: only 0 of \d+ train rows arrived within its deadline of 300 ms/);
  assert.ok(performance.now() - t0 >= 300);
  assert.deepEqual(stopped.progress, { step: 0, epochs: 0 });
  c.send({ type: 'finished', reason: 'stopped' });
  assert.equal(await exit, 0);
});

test('SIGTERM while rows are awaited: the step in progress finishes, then leave with its progress, and exit 3', async () => {
  const { c, w, exit } = await started();
  const held = withholdValidation(c);
  c.sendGeneration(1);
  await c.waitFor('the validation fetch', is('fetch', (m) => m.split === 'validation'));
  w.leave();
  await new Promise((r) => setTimeout(r, 50));
  assert.ok(!c.received.some((m) => m.type === 'leave'), 'no leave while the epoch waits for its rows');
  c.answer(held.fetch()!);
  const leave = await c.waitFor('leave', is('leave'));
  // Epoch 0 recorded once its validation rows came, and epoch 1's first step committed.
  assert.deepEqual(leave.progress, { step: STEPS_PER_EPOCH + 1, epochs: 1 });
  assert.equal(await exit, 3);
  assert.ok(!c.received.some((m) => m.type === 'stopped'), 'a leave is not a stopped report');
});

test('the coordinator gone mid-generation: the worker keeps its state and registers it again', async () => {
  const { c, exit } = await started();
  withholdValidation(c);
  c.sendGeneration(1);
  await c.waitFor('the validation fetch', is('fetch', (m) => m.split === 'validation'));
  const before = c.received.length;
  c.drop();
  const again = await c.waitFor('register again', is('register'), before);
  assert.deepEqual(again.held, { jobId: 'job-1', progress: { step: STEPS_PER_EPOCH, epochs: 0 } });
  assert.equal(again.generation, 1);
  assert.equal(c.connections, 2);
  c.send({ type: 'reject', code: 'WORKER_LIMIT', reason: 'the job already has maxWorkers 1' });
  assert.equal(await exit, 2);
});

test('a job of another control protocol version: the worker ends with PROTOCOL_VERSION naming both versions (the CLI exits 2), and does not reconnect', async () => {
  const c = await FakeCoordinator.start();
  coordinators.push(c);
  const exit = worker(c.url).run();
  const register = await c.waitFor('register', is('register'));
  assert.equal(register.type === 'register' && register.protocol, PROTOCOL_VERSION);
  c.sendRaw({ ...c.jobMessage(), protocol: PROTOCOL_VERSION + 1 });
  await assert.rejects(exit, { code: 'PROTOCOL_VERSION', message: new RegExp(`job: the coordinator speaks control protocol ${PROTOCOL_VERSION + 1}, this worker ${PROTOCOL_VERSION}`) });
  assert.equal(c.connections, 1, 'a version mismatch is not retried');
});

test('reconnects with backoff, doubling to the maximum; logs each failure with its code; SIGTERM while waiting exits 3', async () => {
  const attempts: number[] = [];
  const server = createServer((_req, res) => res.writeHead(503).end());
  server.on('upgrade', (_req, socket) => {
    attempts.push(performance.now());
    // The worker cuts the connection as soon as it has read the refusal: a reset here is expected, not an error of the test's.
    socket.on('error', () => {});
    socket.end('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { log, lines } = recordingLogger();
  const w = worker(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`, log, { minBackoffMs: 40, maxBackoffMs: 160 });
  const exit = w.run();
  while (attempts.length < 6) await new Promise((r) => setTimeout(r, 10));
  w.leave();
  assert.equal(await exit, 3);
  await new Promise((resolve) => server.close(resolve));
  const gaps = attempts.slice(1).map((t, i) => t - attempts[i]!);
  [40, 80, 160, 160, 160].forEach((least, i) => assert.ok(gaps[i]! >= least - 5, `gap ${i}: ${gaps[i]} ms, expected at least ${least}`));
  assert.ok(gaps[4]! < 160 + 400, `the backoff stops at the maximum: ${gaps[4]} ms`);
  const failures = lines().filter((l) => l.msg === 'coordinator not reachable');
  assert.ok(failures.length >= 5);
  assert.deepEqual((failures[0]!.err as { code: string }).code, 'CONTROL_REFUSED');
  assert.ok(typeof (failures[0]!.err as { stack?: string }).stack === 'string', 'logged with its stack');
});
