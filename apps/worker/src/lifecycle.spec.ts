import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type Action,
  decide,
  type GenerationOrder,
  initialWorker,
  type JobOrder,
  MAX_BACKOFF_MS,
  MIN_BACKOFF_MS,
  REPLAY_STEPS,
  STOPPED_REPLAY_STEPS,
  type WorkerEvent,
  type WorkerState,
} from './lifecycle.js';

/** Feeds events at the given times; returns the final state and every action, in order. */
function run(events: [number, WorkerEvent][], from: WorkerState = initialWorker()) {
  let state = from;
  const actions: Action[] = [];
  for (const [now, event] of events) {
    const d = decide(state, event, now);
    state = d.state;
    actions.push(...d.actions);
  }
  return { state, actions };
}

/** What happens after `before`: the state and the actions of `events` alone. */
function after(before: [number, WorkerEvent][], events: [number, WorkerEvent][]) {
  return run(events, run(before).state);
}

const types = (actions: readonly Action[]) => actions.map((a) => a.type).filter((t) => t !== 'log');
const job = (jobId = 'job-a', heartbeatMs = 250): JobOrder => ({ type: 'job', jobId, heartbeatMs });
const gen = (generation: number): GenerationOrder => ({ type: 'generation', generation });
const stop = (generation: number, reason = 'w3 joined'): WorkerEvent => ({ type: 'stop', generation, reason });
/** A generation's end, written `CODE: reason` for short. */
const ended = (why: string, blame: { unreachable?: number; invalidSource?: number } = {}): WorkerEvent => {
  const [code, reason] = /^[A-Z_]+: /.test(why) ? [why.slice(0, why.indexOf(': ')), why.slice(why.indexOf(': ') + 2)] : ['GENERATION_RELEASED', why];
  return { type: 'generation-ended', code, reason, ...blame };
};
const lost = (message = 'closed (1006)', fatal = false): WorkerEvent => ({ type: 'disconnected', error: new Error(message), fatal });

/** Connected, the job set up, no generation yet. */
const READY: [number, WorkerEvent][] = [[0, { type: 'start' }], [10, { type: 'connected' }], [20, job()], [30, { type: 'job-ready', jobId: 'job-a', heartbeatMs: 250 }]];
/** READY, then generation 1 formed and synced, one step committed. */
const TRAINING: [number, WorkerEvent][] = [...READY, [40, gen(1)], [50, { type: 'ring-formed' }], [60, { type: 'synced' }], [70, { type: 'step' }]];

test('job received: connects, registers, sets the job up once; a reconnection with the same job keeps it', () => {
  const { state, actions } = run(READY);
  assert.deepEqual(types(actions), ['connect', 'register', 'setup-job']);
  assert.deepEqual(actions[1], { type: 'register', generation: -1 });
  assert.deepEqual(state.job, { id: 'job-a', heartbeatMs: 250 });
  assert.deepEqual(state.link, { kind: 'up', jobId: 'job-a' });
  const again = after(READY, [[100, lost()], [400, { type: 'retry' }], [410, { type: 'connected' }], [420, job()]]);
  assert.deepEqual(types(again.actions), ['cancel-fetches', 'schedule-retry', 'connect', 'register']);
  assert.equal(again.state.work.kind, 'idle');
});

test('generation formed: trains, reports steps by heartbeat, sends done after the last records; finished ends the worker', () => {
  const formed = after(READY, [[40, gen(1)], [50, { type: 'ring-formed' }], [60, { type: 'synced' }]]);
  assert.deepEqual(formed.actions, [
    { type: 'start-generation', order: gen(1) },
    { type: 'replay', count: REPLAY_STEPS, generation: 1, progress: 'live' },
  ]);
  const beats = after(TRAINING, [[200, { type: 'tick' }], [300, { type: 'tick' }], [549, { type: 'tick' }], [550, { type: 'tick' }]]);
  assert.deepEqual(beats.actions, [
    { type: 'send-heartbeat', generation: 1, progress: 'live' },
    { type: 'send-heartbeat', generation: 1, progress: 'live' },
  ]);
  const done = after(TRAINING, [[500, { type: 'trained' }], [600, { type: 'finished', reason: 'completed' }], [610, lost('closed (1000)')], [620, ended('released')]]);
  assert.deepEqual(types(done.actions), ['send-heartbeat', 'send-done', 'release-ring', 'close-channel', 'cancel-fetches', 'exit']);
  assert.deepEqual(done.actions.at(-1), { type: 'exit', code: 0, error: null });
  assert.ok(done.state.ended);
  // Nothing moves an ended worker.
  assert.deepEqual(decide(done.state, { type: 'tick' }, 10_000).actions, []);
});

test('a stop before the generation`s ring forms is applied once it forms; the report follows the last records', () => {
  const { actions, state } = after(READY, [[40, gen(1)], [45, stop(1)], [50, { type: 'ring-formed' }], [55, stop(1, 'again')], [60, ended('RING_ABORTED: w3 joined')]]);
  assert.deepEqual(actions, [
    { type: 'start-generation', order: gen(1) },
    { type: 'abort-ring', generation: 1, reason: 'w3 joined' },
    { type: 'send-heartbeat', generation: 1, progress: 'live' },
    { type: 'replay', count: STOPPED_REPLAY_STEPS, generation: 1, progress: 'live' },
    { type: 'report-stopped', generation: 1, code: 'RING_ABORTED', reason: 'w3 joined', progress: 'held' },
  ]);
  assert.equal(state.reportedUpTo, 1);
  assert.equal(state.work.kind, 'idle');
});

test('a stop during training aborts the ring; a ring that could not form names the rank it could not reach', () => {
  const stopped = after(TRAINING, [[100, stop(1)]]);
  assert.deepEqual(stopped.actions, [{ type: 'abort-ring', generation: 1, reason: 'w3 joined' }]);
  const unreachable = after(READY, [[40, gen(1)], [5_040, ended('RING_TIMEOUT: no connection to rank 1', { unreachable: 1 })]]);
  assert.deepEqual(unreachable.actions.at(-1), { type: 'report-stopped', generation: 1, code: 'RING_TIMEOUT', reason: 'no connection to rank 1', progress: 'held', unreachable: 1 });
});

test('a stop for a queued generation: skipped, and reported once, after the generation ahead of it', () => {
  // Generation 1 is stopping when 2 arrives, and 2 is stopped before it can start.
  const { actions, state } = after(TRAINING, [[100, stop(1)], [110, gen(2)], [120, stop(2)], [130, ended('RING_ABORTED: w3 joined')], [140, stop(2)]]);
  const reports = actions.filter((a) => a.type === 'report-stopped');
  assert.deepEqual(
    reports.map((a) => a.type === 'report-stopped' && [a.generation, a.code, a.reason]),
    [
      [1, 'RING_ABORTED', 'w3 joined'],
      [2, 'GENERATION_CANCELLED', 'stopped before it started'],
    ],
  );
  assert.ok(!actions.some((a) => a.type === 'start-generation'));
  assert.equal(state.work.kind, 'idle');
  // Behind a job's setup: the report waits for it, so that it carries the job's state.
  const behindSetup = run([[0, { type: 'start' }], [10, { type: 'connected' }], [20, job()], [30, gen(1)], [40, stop(1)]]);
  assert.ok(!behindSetup.actions.some((a) => a.type === 'report-stopped'));
  const ready = run([[50, { type: 'job-ready', jobId: 'job-a', heartbeatMs: 250 }]], behindSetup.state);
  assert.deepEqual(types(ready.actions), ['send-heartbeat', 'replay', 'report-stopped']);
});

test('a generation older than one already reported is reported, never started', () => {
  const { actions } = after(READY, [[40, gen(5)], [50, stop(5)], [60, ended('RING_ABORTED: w3 joined')], [70, gen(4)]]);
  assert.deepEqual(actions.at(-1), { type: 'report-stopped', generation: 4, code: 'GENERATION_STALE', reason: 'generation 4 is older than generation 5, already reported stopped', progress: 'held' });
  assert.equal(actions.filter((a) => a.type === 'start-generation').length, 1);
});

test('coordinator gone and back: the generation stops, the worker reconnects once it has, and registers what it saw', () => {
  const gone = after(TRAINING, [[100, lost('closed (1006)')]]);
  assert.deepEqual(types(gone.actions), ['cancel-fetches', 'abort-ring', 'schedule-retry']);
  assert.ok(gone.actions.some((a) => a.type === 'log' && a.level === 'warn' && a.msg === 'lost the coordinator; reconnecting'));
  // The backoff runs out before the generation has ended: the connection waits for it, and nothing is reported on no link.
  const back = run([[350, { type: 'retry' }], [400, ended('RING_ABORTED: coordinator connection lost')], [410, { type: 'connected' }], [420, job()], [430, gen(3)]], gone.state);
  assert.deepEqual(types(back.actions), ['connect', 'register', 'start-generation']);
  assert.deepEqual(back.actions[1], { type: 'register', generation: 1 });
});

test('reconnection backoff: doubles from the minimum to the maximum, and resets once a connection opens', () => {
  let s = run([[0, { type: 'start' }]]).state;
  const delays: number[] = [];
  for (let i = 0; i < 7; i++) {
    const d = run([[i, lost('connect ECONNREFUSED')], [i, { type: 'retry' }]], s);
    delays.push(...d.actions.flatMap((a) => (a.type === 'schedule-retry' ? [a.delayMs] : [])));
    assert.ok(d.actions.some((a) => a.type === 'log' && a.level === 'debug'));
    s = d.state;
  }
  assert.deepEqual(delays, [MIN_BACKOFF_MS, 500, 1000, 2000, 4000, MAX_BACKOFF_MS, MAX_BACKOFF_MS]);
  const reset = run([[10, { type: 'connected' }], [20, lost()]], s);
  assert.deepEqual(reset.actions.find((a) => a.type === 'schedule-retry'), { type: 'schedule-retry', delayMs: MIN_BACKOFF_MS });
});

test('leave on SIGTERM: the current step finishes, then goodbye and exit 3 (the job goes on without this worker)', () => {
  const leaving = after(TRAINING, [[100, { type: 'leave' }]]);
  assert.deepEqual(types(leaving.actions), []);
  const { actions, state } = run([[110, { type: 'step' }], [120, ended('RING_ABORTED: worker leaving')], [130, lost('closed (1000)')]], leaving.state);
  assert.deepEqual(actions.slice(0, 4), [
    { type: 'abort-ring', generation: 1, reason: 'worker leaving' },
    { type: 'send-heartbeat', generation: 1, progress: 'live' },
    { type: 'send-leave', progress: 'held' },
    { type: 'close-channel', reason: 'leaving' },
  ]);
  assert.deepEqual(actions.at(-1), { type: 'exit', code: 3, error: null });
  assert.equal(state.reportedUpTo, -1, 'a leave is not a stopped report');
  // Before its first step a generation stops at once; idle, the worker leaves at once; offline, it exits at once.
  const early = after([...READY, [40, gen(1)], [50, { type: 'ring-formed' }]], [[60, { type: 'leave' }]]);
  assert.deepEqual(types(early.actions), ['abort-ring']);
  assert.deepEqual(types(after(READY, [[40, { type: 'leave' }]]).actions), ['send-leave', 'close-channel']);
  assert.deepEqual(after([[0, { type: 'start' }], [5, lost('connect ECONNREFUSED')]], [[40, { type: 'leave' }]]).actions.at(-1), { type: 'exit', code: 3, error: null });
  // A generation that arrives while leaving is not started.
  const queued = after([...READY, [35, { type: 'leave' }]], [[40, gen(1)]]);
  assert.ok(!queued.actions.some((a) => a.type === 'start-generation'));
});

test('finished while training: the ring is aborted, and the worker exits once the generation and the link are over', () => {
  const finished = after(TRAINING, [[100, { type: 'finished', reason: 'job stopped: SIGTERM' }]]);
  assert.deepEqual(types(finished.actions), ['abort-ring', 'close-channel']);
  const link = run([[110, lost('closed (1000)')]], finished.state);
  assert.ok(!link.actions.some((a) => a.type === 'exit'), 'the generation is still ending');
  const over = run([[120, ended('RING_ABORTED: job finished')]], link.state);
  assert.deepEqual(over.actions, [{ type: 'exit', code: 0, error: null }]);
});

test('refused, a job that cannot run, or TLS that fails: the exit code says which', () => {
  const limit = after(READY, [[40, { type: 'reject', code: 'WORKER_LIMIT', reason: 'full' }], [50, lost()]]);
  assert.deepEqual(limit.actions.at(-1), { type: 'exit', code: 2, error: null });
  const done = after(READY, [[40, { type: 'reject', code: 'JOB_DONE', reason: 'over' }], [50, lost()]]);
  assert.deepEqual(done.actions.at(-1), { type: 'exit', code: 0, error: null });
  for (const code of ['PEER_UNREACHABLE', 'SOURCE_INVALID']) {
    const excluded = after(READY, [[40, { type: 'reject', code, reason: 'excluded' }], [50, lost()]]);
    assert.deepEqual(excluded.actions.at(-1), { type: 'exit', code: 6, error: null }, code);
  }
  const error = new Error('MODEL_BACKEND_UNAVAILABLE');
  const bad = run([[0, { type: 'start' }], [10, { type: 'connected' }], [20, job()], [30, { type: 'job-failed', error }], [40, lost()]]);
  assert.ok(bad.actions.some((a) => a.type === 'log' && a.level === 'error' && a.fields.err === error));
  assert.deepEqual(bad.actions.at(-1), { type: 'exit', code: 2, error: null });
  const tls = new Error('TLS_CERT_UNTRUSTED');
  assert.deepEqual(run([[0, { type: 'start' }], [10, { type: 'disconnected', error: tls, fatal: true }]]).actions.at(-1), { type: 'exit', code: 2, error: tls });
});

test('--coordinator-timeout: no coordinator for that long from the start, or since the link was lost, exits 5; an answer resets the clock', () => {
  const policy = { minBackoffMs: MIN_BACKOFF_MS, maxBackoffMs: MAX_BACKOFF_MS, coordinatorTimeoutMs: 60_000 };
  const feed = (events: [number, WorkerEvent][], from: WorkerState = initialWorker(policy)) => {
    let state = from;
    const actions: Action[] = [];
    for (const [now, e] of events) {
      const d = decide(state, e, now, policy);
      state = d.state;
      actions.push(...d.actions);
    }
    return { state, actions };
  };
  const never = feed([[0, { type: 'start' }], [5, lost('connect ECONNREFUSED')], [59_999, { type: 'tick' }]]);
  assert.ok(!never.actions.some((a) => a.type === 'exit'), 'not before the timeout');
  const gone = feed([[60_000, { type: 'tick' }]], never.state);
  assert.ok(gone.actions.some((a) => a.type === 'log' && a.level === 'error' && /no coordinator for 60 s/.test(a.msg)));
  assert.deepEqual(gone.actions.at(-1), { type: 'exit', code: 5, error: null });
  // Connected at 50 s and lost at 100 s: the clock starts again at 100 s.
  const back = feed([[0, { type: 'start' }], [50_000, { type: 'connected' }], [70_000, { type: 'tick' }], [100_000, lost()], [159_000, { type: 'tick' }]]);
  assert.ok(!back.actions.some((a) => a.type === 'exit'), 'the link was up until 100 s');
  const lostFor = feed([[160_000, { type: 'tick' }]], back.state);
  assert.deepEqual(lostFor.actions.at(-1), { type: 'exit', code: 5, error: null });
  // Without the option the worker waits for ever.
  assert.ok(!run([[0, { type: 'start' }], [5, lost('connect ECONNREFUSED')], [10_000_000, { type: 'tick' }]]).actions.some((a) => a.type === 'exit'));
});

test('progress is reported only for the coordinator`s own job, and nothing before its job message', () => {
  const before = run([[0, { type: 'start' }], [10, { type: 'connected' }], [1_000, { type: 'tick' }]]);
  assert.deepEqual(types(before.actions), ['connect', 'register']);
  // Another coordinator's job, still being set up: heartbeats, but without progress.
  const other = after(READY, [[100, lost()], [400, { type: 'retry' }], [410, { type: 'connected' }], [420, job('job-b')], [1_000, { type: 'tick' }], [1_010, { type: 'upload', generation: 2 }]]);
  assert.deepEqual(other.actions.slice(-2), [
    { type: 'send-heartbeat', generation: -1, progress: 'none' },
    { type: 'upload-state', generation: 2 },
  ]);
});
