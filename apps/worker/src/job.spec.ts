/**
 * Setting a job up: its memory plan, logged once, and a job that cannot fit refused
 * before anything is built; and a worker given such a job ends with exit code 2, the
 * error in its log with its code.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { selectBackend, WASM_HEAP_LIMIT } from '@ringtrain/model';
import { WorkerError } from './errors.js';
import { planOf, setUpJob } from './job.js';
import { TrainingWorker } from './worker.js';
import { FakeCoordinator, is, recordingLogger, TOKEN } from './worker.fixture.js';

const MiB = 2 ** 20;
let c: FakeCoordinator;

before(async () => {
  await selectBackend('cpu');
  c = await FakeCoordinator.start();
});

after(async () => {
  await c.close();
});

async function refused(promise: Promise<unknown>): Promise<WorkerError> {
  const err = await promise.then(
    () => assert.fail('the job was set up'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof WorkerError, String(err));
  assert.equal(err.code, 'MEMORY_PLAN_EXCEEDED');
  return err;
}

test('the memory plan is logged once, in MiB with the limits, and its total and limit ride on the job', async () => {
  const { log, lines } = recordingLogger();
  const { job } = await setUpJob(c.jobMessage(), 'cpu', undefined, log, 4096 * MiB);
  const plans = lines().filter((l) => l.msg === 'memory plan');
  assert.equal(plans.length, 1);
  const p = plans[0]!;
  const plan = planOf(c.jobMessage(), job.spec, 'cpu');
  assert.deepEqual([p.backend, p.limitMiB, p.limitSource, p.backendHeapLimitMiB, p.parameters], ['cpu', 4096, 'option', null, 67]);
  assert.equal(p.totalMiB, Math.round((10 * plan.total) / MiB) / 10);
  assert.deepEqual(Object.keys(p.itemsMiB as object), Object.keys(plan.items));
  assert.deepEqual(job.memory, { planned: plan.total, limit: 4096 * MiB });
});

test('a job over the process limit is refused at setup, naming the numbers', async () => {
  const m = c.jobMessage();
  const { job } = await setUpJob(m, 'cpu', undefined, recordingLogger().log, null);
  const planned = planOf(m, job.spec, 'cpu').total;
  const err = await refused(setUpJob(m, 'cpu', undefined, recordingLogger().log, 64 * MiB));
  assert.ok(err.message.includes(`would need ${Math.round((10 * planned) / MiB) / 10} MiB on this worker`), err.message);
  assert.ok(err.message.includes('but 64 MiB are available (--memory-limit (RINGTRAIN_MEMORY_LIMIT))'), err.message);
});

test('on wasm, a model whose tensors cannot fit the heap is refused before any of it is allocated', async () => {
  // 784-4000000-10, 3.2 billion parameters: an evaluation of the fixture's 96 training
  // rows holds 3 tensors of 4 million floats a row, 4.6 GB, over the heap's 4 GiB (its
  // weights go in blocks, which would fit). Allocating them would take 12.7 GB.
  const m = { ...c.jobMessage(), arch: { inputs: 784, hidden: [{ units: 4_000_000, activation: 'relu' as const, dropout: 0 }], outputs: 10, output: 'softmax' as const } };
  const t0 = performance.now();
  const err = await refused(setUpJob(m, 'wasm', undefined, recordingLogger().log, null));
  assert.ok(performance.now() - t0 < 1000);
  assert.ok(err.message.includes(`holds at most ${Math.round((10 * WASM_HEAP_LIMIT) / MiB) / 10} MiB (the wasm heap's hard limit)`), err.message);
});

test('a worker whose job cannot fit exits 2, its log naming MEMORY_PLAN_EXCEEDED', async () => {
  const { log, lines } = recordingLogger();
  const w = new TrainingWorker({ coordinator: c.url, token: TOKEN, id: 'w-small', bindHost: '127.0.0.1', advertiseHost: '127.0.0.1', backend: 'cpu', memoryLimit: MiB, log });
  const exit = w.run();
  const from = c.received.length;
  await c.waitFor('register', is('register'), from);
  c.sendJob();
  assert.equal(await exit, 2);
  const failed = lines().find((l) => l.msg === 'cannot run this job');
  assert.ok(failed, 'the failure is logged');
  const err = failed.err as { code?: string; message?: string };
  assert.equal(err.code, 'MEMORY_PLAN_EXCEEDED');
  assert.match(err.message ?? '', /but 1 MiB are available/);
});

test('once its job is set up, a worker`s heartbeats carry its memory: resident now, the plan`s total, the limit', async () => {
  const w = new TrainingWorker({ coordinator: c.url, token: TOKEN, id: 'w-beats', bindHost: '127.0.0.1', advertiseHost: '127.0.0.1', backend: 'cpu', memoryLimit: 4096 * MiB, log: recordingLogger().log });
  const exit = w.run();
  const from = c.received.length;
  await c.waitFor('register', is('register'), from);
  c.sendJob();
  const beat = await c.waitFor('heartbeat with memory', is('heartbeat', (m) => m.memory !== undefined), from);
  const { job } = await setUpJob(c.jobMessage(), 'cpu', undefined, recordingLogger().log, null);
  assert.equal(beat.memory!.planned, planOf(c.jobMessage(), job.spec, 'cpu').total);
  assert.equal(beat.memory!.limit, 4096 * MiB);
  assert.ok(beat.memory!.rss > 32 * MiB && beat.memory!.rss < 4096 * MiB, `rss ${beat.memory!.rss}`);
  w.leave();
  assert.equal(await exit, 3, 'left before the job was over');
});
