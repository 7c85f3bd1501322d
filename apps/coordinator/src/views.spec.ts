import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { StepReport } from '@ringtrain/protocol';
import { validateJobSpec } from '@ringtrain/train';
import { initialMembership } from './membership.js';
import { jobStateOf, NEWEST_WEIGHT, RateEstimate, statusOf } from './views.js';

const steps = (from: number, to: number, samples = 32): StepReport[] => Array.from({ length: to - from + 1 }, (_, i) => ({ step: from + i, epoch: 1, loss: 1, samples }));

test('the rate follows step reports, smoothed: none before two reports, then the rate between them, then a weighted mean', () => {
  const r = new RateEstimate();
  r.observe(steps(0, 9), 1_000);
  assert.equal(r.value, null);
  r.observe(steps(10, 19), 2_000); // 10 steps of 32 in 1 s
  assert.equal(r.value, 320);
  r.observe(steps(20, 39), 3_000); // 20 steps of 32 in 1 s
  assert.equal(r.value, (1 - NEWEST_WEIGHT) * 320 + NEWEST_WEIGHT * 640);
  // Replays (a step not past the last) and empty heartbeats change nothing.
  r.observe(steps(30, 39), 4_000);
  r.observe([], 5_000);
  assert.equal(r.value, (1 - NEWEST_WEIGHT) * 320 + NEWEST_WEIGHT * 640);
});

test('the job state: each phase, and a job that is over says finishing until its outputs are written', () => {
  assert.deepEqual(
    (['waiting', 'training', 'stopping', 'paused'] as const).map((p) => jobStateOf(p, null)),
    ['waiting', 'running', 'recovering', 'paused'],
  );
  assert.equal(jobStateOf('done', null), 'finishing');
  assert.equal(jobStateOf('done', 'completed'), 'completed');
  assert.equal(jobStateOf('done', 'stopped'), 'stopped');
});

test('the status counts the steps of the newest ring\'s members only, ranks its workers first, and shows a rate only while running', () => {
  const spec = validateJobSpec({ name: 'views', data: { source: 'builtin:iris' }, training: { epochs: 2, batchSize: 32 } });
  const worker = (id: string, step: number | null) => ({ id, address: `${id}:1`, backend: 'cpu', step, timing: null, memory: null, lastSeen: 900 });
  const waiting = initialMembership({ minWorkers: 2, maxWorkers: 4, heartbeatTimeoutMs: 1, stopTimeoutMs: 1 });
  const input = {
    spec,
    trainRows: 120,
    membership: { ...waiting, phase: 'training', ring: ['b', 'a'], generation: 3 } as const,
    settled: null,
    baselineStep: 2,
    members: new Set(['a', 'b']),
    workers: [worker('liar', 7), worker('a', 5), worker('b', 4)],
    rate: 100,
    started: 0,
    now: 1_000,
    checkpoints: [],
    messages: {},
    events: [],
    model: null,
  };
  const s = statusOf(input);
  assert.equal(s.step, 5, 'the liar outside the ring claims 7');
  assert.deepEqual(s.workers.map((w) => [w.id, w.rank, w.lastHeartbeatMs]), [['b', 0, 100], ['a', 1, 100], ['liar', null, 100]]);
  assert.equal(s.epoch, 2);
  assert.equal(s.samplesPerSecond, 100);
  assert.equal(s.etaSeconds, ((8 - 5) * 32) / 100);
  assert.equal(s.reason, 'training with 2 workers');
  const paused = statusOf({ ...input, membership: { ...waiting, phase: 'paused', reason: 'paused' } });
  assert.deepEqual([paused.state, paused.samplesPerSecond, paused.etaSeconds, paused.ring], ['paused', null, null, []]);
});

test('the status shows each worker`s memory as its last heartbeat said, null before it said', () => {
  const spec = validateJobSpec({ name: 'views', data: { source: 'builtin:iris' } });
  const memory = { rss: 180 * 2 ** 20, planned: 250 * 2 ** 20, limit: 2 ** 32 };
  const s = statusOf({
    spec,
    trainRows: 120,
    membership: { ...initialMembership({ minWorkers: 1, maxWorkers: 4, heartbeatTimeoutMs: 1, stopTimeoutMs: 1 }), phase: 'training', ring: ['a'], generation: 1 },
    settled: null,
    baselineStep: 0,
    members: new Set(['a']),
    workers: [
      { id: 'a', address: 'a:1', backend: 'wasm', step: 3, timing: null, memory, lastSeen: 900 },
      { id: 'old', address: 'old:1', backend: 'cpu', step: null, timing: null, memory: null, lastSeen: 900 },
    ],
    rate: null,
    started: 0,
    now: 1_000,
    checkpoints: [],
    messages: {},
    events: [],
    model: null,
  });
  assert.deepEqual(
    s.workers.map((w) => [w.id, w.memory]),
    [['a', memory], ['old', null]],
  );
});

test('a job that stopped itself carries its code in the status; one that completed or was told to stop carries none', () => {
  const spec = validateJobSpec({ name: 'views', data: { source: 'builtin:iris' } });
  const base = initialMembership({ minWorkers: 1, maxWorkers: 4, heartbeatTimeoutMs: 1, stopTimeoutMs: 1 });
  const input = { spec, trainRows: 120, settled: 'stopped', baselineStep: 50, members: new Set<string>(), workers: [], rate: null, started: 0, now: 1_000, checkpoints: [], messages: {}, events: [], model: null } as const;
  const message = '5 generations failed with WORKER_LOST (the last: a lost: connection closed) without a checkpoint past step 50; ...';
  const reason = `GENERATION_LIVELOCK: ${message}`;
  const livelock = statusOf({ ...input, membership: { ...base, phase: 'done', reason, error: { code: 'GENERATION_LIVELOCK', message } } });
  assert.deepEqual([livelock.state, livelock.reason, livelock.error], ['stopped', reason, { code: 'GENERATION_LIVELOCK', message }]);
  assert.equal(statusOf({ ...input, membership: { ...base, phase: 'done', reason: 'SIGTERM' } }).error, null);
  assert.equal(statusOf({ ...input, settled: null, membership: { ...base, phase: 'training', ring: ['a'] } }).error, null);
});
