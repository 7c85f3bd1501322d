import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type Action, DEFAULT_LIVELOCK_WINDOW_MS, DEFAULT_MAX_FAILED_GENERATIONS, decide, faultKey, initialMembership, type MembershipEvent, type MembershipState, type Policy, type Progress, type RecordKind } from './membership.js';

const POLICY: Policy = { minWorkers: 2, maxWorkers: 3, heartbeatTimeoutMs: 5_000, stopTimeoutMs: 3_000 };
const addr = (n: number) => ({ host: `w${n}`, port: 7000 + n });
const at = (step: number, epochs = 0): Progress => ({ step, epochs });

type Effect = Exclude<Action, { type: 'record' }>;
type Recorded = readonly [RecordKind, string];

/** The actions that do something (sending, closing, forming), in order: what decide returns but its records. */
function effects(actions: readonly Action[]): Effect[] {
  return actions.filter((a): a is Effect => a.type !== 'record');
}

/** What decide said to record, in order, as [kind, message]. */
function recorded(actions: readonly Action[]): Recorded[] {
  return actions.flatMap((a) => (a.type === 'record' ? [[a.kind, a.message] as const] : []));
}

/**
 * Feeds events at the given times; returns the final state, every action but the
 * records (in order), and the records (in order); `last` is the records of the last event.
 */
function run(events: [number, MembershipEvent][], policy = POLICY, from = initialMembership(policy)) {
  let state: MembershipState = from;
  const all: Action[] = [];
  let last: Recorded[] = [];
  for (const [now, event] of events) {
    const d = decide(state, event, now, policy);
    state = d.state;
    all.push(...d.actions);
    last = recorded(d.actions);
  }
  return { state, actions: effects(all), records: recorded(all), last };
}

const join = (n: number, held: Progress | null = null): MembershipEvent => ({ type: 'join', id: `w${n}`, address: addr(n), held });
const beat = (n: number, held: Progress | null): MembershipEvent => ({ type: 'heartbeat', id: `w${n}`, held });
const stopped = (n: number, generation: number, held: Progress | null, reason = 'told to stop'): MembershipEvent => ({
  type: 'stopped',
  id: `w${n}`,
  generation,
  held,
  reason,
});
/** Generation 2 with three members: w3 joined after generation 1 of w1 and w2 formed. */
const THREE: [number, MembershipEvent][] = [[0, join(1)], [0, join(2)], [0, join(3)], [0, stopped(1, 1, null)], [0, stopped(2, 1, null)]];
const ranks = (...ns: number[]) => ns.map((n, rank) => ({ id: `w${n}`, rank, address: addr(n) }));

test('waits below minWorkers, saying why; forms generation 1 from the coordinator state when enough have joined', () => {
  const one = run([[0, join(1)]]);
  assert.equal(one.state.phase, 'waiting');
  assert.deepEqual(one.actions, [{ type: 'wait', reason: 'waiting for workers: 1 of minWorkers 2' }]);
  const two = run([[0, join(1)], [10, join(2)]]);
  assert.equal(two.state.phase, 'training');
  assert.deepEqual(two.actions.at(-1), { type: 'form', generation: 1, ranks: ranks(1, 2), source: { kind: 'coordinator' } });
});

test('a join mid-run stops the ring, collects every state, then forms the next generation from the most advanced', () => {
  const base: [number, MembershipEvent][] = [[0, join(1)], [0, join(2)], [100, beat(1, at(40))], [200, join(3)]];
  const mid = run(base);
  assert.equal(mid.state.phase, 'stopping');
  assert.deepEqual(mid.actions.at(-1), { type: 'stop-ring', generation: 1, ids: ['w1', 'w2'], reason: 'w3 joined' });
  // w2 finished one more step than w1 before the ring stopped: its state goes to everyone.
  const { state, actions } = run([...base, [210, stopped(1, 1, at(41))], [220, stopped(2, 1, at(42))]]);
  assert.equal(state.phase, 'training');
  assert.equal(state.generation, 2);
  assert.deepEqual(actions.at(-1), { type: 'form', generation: 2, ranks: ranks(1, 2, 3), source: { kind: 'member', id: 'w2' } });
});

test('a ring that fails by itself ends the generation at the first report; ties go to the lowest rank', () => {
  const { state, actions } = run([[0, join(1)], [0, join(2)], [60, stopped(1, 1, at(7), 'RING_PEER_LOST')], [61, stopped(2, 1, at(7))]]);
  assert.equal(state.phase, 'training');
  assert.deepEqual(actions.at(-2), { type: 'stop-ring', generation: 1, ids: ['w2'], reason: 'generation 1 failed at w1: RING_PEER_LOST' });
  assert.deepEqual(actions.at(-1), { type: 'form', generation: 2, ranks: ranks(1, 2), source: { kind: 'member', id: 'w1' } });
});

test('a lost member: dropped, the others stop and regroup without it', () => {
  const { state, actions } = run([...THREE, [50, { type: 'lost', id: 'w3', reason: 'socket closed' }], [60, stopped(1, 2, at(7))], [61, stopped(2, 2, at(8))]]);
  assert.equal(state.phase, 'training');
  assert.deepEqual(actions.filter((a) => a.type === 'drop'), [{ type: 'drop', id: 'w3', reason: 'socket closed' }]);
  assert.deepEqual(actions.at(-1), { type: 'form', generation: 3, ranks: ranks(1, 2), source: { kind: 'member', id: 'w2' } });
});

test('a member that never reports its state is lost after stopTimeoutMs', () => {
  const { state, actions } = run([...THREE, [1_000, { type: 'leave', id: 'w3' }], [1_100, stopped(1, 2, at(5))], [1_200, beat(2, at(5))], [4_101, { type: 'tick' }]]);
  assert.equal(state.phase, 'waiting');
  assert.ok(actions.some((a) => a.type === 'drop' && a.id === 'w2'));
  assert.deepEqual(actions.at(-1), { type: 'wait', reason: 'waiting for workers: 1 of minWorkers 2' });
});

test('a silent member is lost at the heartbeat deadline; the survivors regroup when enough remain', () => {
  const events: [number, MembershipEvent][] = [...THREE, [4_000, beat(1, at(3))], [4_000, beat(2, at(3))], [5_001, { type: 'tick' }]];
  const { state, actions } = run(events);
  assert.equal(state.phase, 'stopping');
  assert.deepEqual(actions.slice(-2), [
    { type: 'drop', id: 'w3', reason: 'silent past 5000 ms: w3' },
    { type: 'stop-ring', generation: 2, ids: ['w1', 'w2'], reason: 'silent past 5000 ms: w3' },
  ]);
});

test('the coordinator state wins only when strictly ahead (a resumed checkpoint and fresh workers)', () => {
  const from = initialMembership(POLICY, at(120, 3));
  const fresh = run([[0, join(1)], [0, join(2)]], POLICY, from);
  assert.deepEqual(fresh.actions.at(-1), { type: 'form', generation: 1, ranks: ranks(1, 2), source: { kind: 'coordinator' } });
  const rejoining = run([[0, join(1, at(120, 3))], [0, join(2, at(130, 3))]], POLICY, from);
  assert.deepEqual(rejoining.actions.at(-1), { type: 'form', generation: 1, ranks: ranks(1, 2), source: { kind: 'member', id: 'w2' } });
});

test('beyond maxWorkers a worker is rejected with a code; after the job, JOB_DONE', () => {
  const { actions, state } = run([[0, join(1)], [0, join(2)], [0, join(3)], [0, join(4)]]);
  assert.deepEqual(actions.at(-1), { type: 'reject', id: 'w4', code: 'WORKER_LIMIT', reason: 'the job already has maxWorkers 3' });
  const done = decide({ ...state, phase: 'done', reason: 'completed' }, join(5), 0, POLICY);
  assert.deepEqual(effects(done.actions), [{ type: 'reject', id: 'w5', code: 'JOB_DONE', reason: 'the job has finished' }]);
});

test('pause stops the ring and holds; resume forms the next generation; stop saves the most advanced state', () => {
  const started: [number, MembershipEvent][] = [[0, join(1)], [0, join(2)]];
  const paused = run([...started, [10, { type: 'pause' }], [20, stopped(1, 1, at(9))], [20, stopped(2, 1, at(9))]]);
  assert.equal(paused.state.phase, 'paused');
  const resumed = run([...started, [10, { type: 'pause' }], [20, stopped(1, 1, at(9))], [20, stopped(2, 1, at(9))], [30, { type: 'resume' }]]);
  assert.deepEqual(resumed.actions.at(-1), { type: 'form', generation: 2, ranks: ranks(1, 2), source: { kind: 'member', id: 'w1' } });
  const stoppedJob = run([...started, [10, { type: 'stop', reason: 'SIGTERM' }], [20, stopped(1, 1, at(9))], [20, stopped(2, 1, at(10))]]);
  assert.equal(stoppedJob.state.phase, 'done');
  assert.deepEqual(stoppedJob.actions.at(-1), { type: 'save-and-finish', source: { kind: 'member', id: 'w2' }, reason: 'SIGTERM' });
});

test('a stale report of an older generation changes nothing but the held state', () => {
  const { state, actions } = run([[0, join(1)], [0, join(2)], [5, stopped(1, 0, at(1))]]);
  assert.equal(state.phase, 'training');
  assert.equal(actions.filter((a) => a.type === 'stop-ring').length, 0);
});

test('after a coordinator restart, generations continue above the newest a worker has seen', () => {
  const { actions } = run([[0, { type: 'join', id: 'w1', address: addr(1), held: null, seenGeneration: 7 }], [0, join(2)]]);
  assert.deepEqual(actions.at(-1), { type: 'form', generation: 8, ranks: ranks(1, 2), source: { kind: 'coordinator' } });
});

test('startWorkers holds the first generation until that many have joined; afterwards minWorkers applies', () => {
  const policy = { ...POLICY, minWorkers: 1, startWorkers: 3 };
  const two = run([[0, join(1)], [0, join(2)]], policy);
  assert.deepEqual(two.actions.at(-1), { type: 'wait', reason: 'waiting for workers: 2 of 3 to start' });
  const shrunk = run([[0, join(1)], [0, join(2)], [0, join(3)], [5, { type: 'leave', id: 'w3' }], [6, stopped(1, 1, at(2))], [6, stopped(2, 1, at(2))]], policy);
  assert.deepEqual(shrunk.actions.at(-1), { type: 'form', generation: 2, ranks: ranks(1, 2), source: { kind: 'member', id: 'w1' } });
});

test('a worker restarted under its id (ringtrain local): before the first generation it counts once, and completes the start', () => {
  const policy = { ...POLICY, minWorkers: 1, startWorkers: 3 };
  // Restarted before its old connection was found closed: one member, not two.
  const early = run([[0, join(1)], [0, join(2)], [1, join(2)]], policy);
  assert.deepEqual(early.actions.at(-1), { type: 'wait', reason: 'waiting for workers: 2 of 3 to start' });
  // Lost first, then back: it joins as a newcomer and the first generation forms with all three.
  const lost = run([[0, join(1)], [0, join(2)], [1, { type: 'lost', id: 'w2', reason: 'connection closed' }], [2, join(3)], [3, join(2)]], policy);
  assert.deepEqual(lost.actions.at(-2), { type: 'wait', reason: 'waiting for workers: 2 of 3 to start' });
  assert.deepEqual(lost.actions.at(-1), { type: 'form', generation: 1, ranks: ranks(1, 3, 2), source: { kind: 'coordinator' } });
});

test('a member named unreachable is probed; if the coordinator cannot reach it either, it is excluded and the others go on', () => {
  // Generation 2 of w1, w2, w3 never forms: w2 could not connect to w3's address.
  const failed: [number, MembershipEvent][] = [
    ...THREE,
    [1000, { type: 'stopped', id: 'w2', generation: 2, held: null, reason: 'could not connect to rank 2', unreachable: 'w3' }],
  ];
  const reported = run(failed);
  assert.deepEqual(reported.actions.at(-1), { type: 'probe', id: 'w3', address: addr(3), reporter: 'w2' });
  assert.equal(reported.state.phase, 'stopping', 'the failed generation still ends as any other');
  const stop = (n: number): [number, MembershipEvent] => [1100, stopped(n, 2, null)];
  const probed = (reachable: boolean, address = addr(3)): [number, MembershipEvent] => [
    1200,
    { type: 'probed', id: 'w3', address, reporter: 'w2', reachable, detail: reachable ? 'connected' : 'ECONNREFUSED' },
  ];
  // Reachable from the coordinator: the reporter's side may be at fault; nobody is excluded.
  const reachable = run([...failed, stop(1), stop(3), probed(true)]);
  assert.deepEqual(reachable.actions.at(-1), { type: 'form', generation: 3, ranks: ranks(1, 2, 3), source: { kind: 'coordinator' } });
  // Unreachable: excluded (refused, dropped), and the next generation forms without it.
  const excluded = run([...failed, stop(1), stop(3), probed(false)]);
  const reason = 'its ring address w3:7003 cannot be reached (ECONNREFUSED)';
  assert.deepEqual(excluded.actions.slice(-3), [
    { type: 'reject', id: 'w3', code: 'PEER_UNREACHABLE', reason },
    { type: 'drop', id: 'w3', reason: `excluded: ${reason}` },
    { type: 'stop-ring', generation: 3, ids: ['w1', 'w2'], reason: `w3 excluded: ${reason}` },
  ]);
  const next = run([...failed, stop(1), stop(3), probed(false), [1300, stopped(1, 3, null)], [1300, stopped(2, 3, null)]]);
  assert.deepEqual(next.actions.at(-1), { type: 'form', generation: 4, ranks: ranks(1, 2), source: { kind: 'coordinator' } });
  // Joining again within the cool-off is refused; after it, admitted.
  const again = run([...failed, stop(1), stop(3), probed(false), [1200 + 59_000, join(3)]]);
  assert.deepEqual(again.actions.at(-1), { type: 'reject', id: 'w3', code: 'PEER_UNREACHABLE', reason: 'excluded for another 1 s: its ring address could not be reached' });
  const later = run([...failed, stop(1), stop(3), probed(false), [1200 + 60_000, join(3)]]);
  assert.ok(later.state.members.some((m) => m.id === 'w3'));
  assert.deepEqual(later.state.excluded, {});
  // A probe of an address the member no longer has (it re-registered) changes nothing.
  const moved = run([...failed, stop(1), stop(3), probed(false, { host: 'elsewhere', port: 1 })]);
  assert.ok(moved.state.members.some((m) => m.id === 'w3'));
});

test('a source whose state does not verify at a member is excluded; the next generation takes the most advanced of the others', () => {
  // w3 joins claiming to be far ahead: generation 3 takes its state.
  const claimed: [number, MembershipEvent][] = [...THREE.slice(0, 2), [0, stopped(1, 1, at(40))], [0, stopped(2, 1, at(40))], [10, join(3, at(90))]];
  const joined = run([...claimed, [20, stopped(1, 2, at(40))], [20, stopped(2, 2, at(40))]]);
  assert.deepEqual(joined.actions.at(-1), { type: 'form', generation: 3, ranks: ranks(1, 2, 3), source: { kind: 'member', id: 'w3' } });
  // w1 finds w3's broadcast state invalid and says so.
  const bad: MembershipEvent = { type: 'stopped', id: 'w1', generation: 3, held: at(40), reason: 'state snapshot: params[0] is NaN', invalidSource: 'w3' };
  const reported = run([...claimed, [20, stopped(1, 2, at(40))], [20, stopped(2, 2, at(40))], [30, bad]]);
  const reason = 'it claimed step 90 but the state it sent did not verify at w1 (state snapshot: params[0] is NaN)';
  assert.deepEqual(reported.actions.slice(-3), [
    { type: 'stop-ring', generation: 3, ids: ['w2', 'w3'], reason: 'generation 3 failed at w1: state snapshot: params[0] is NaN' },
    { type: 'reject', id: 'w3', code: 'SOURCE_INVALID', reason },
    { type: 'drop', id: 'w3', reason: `excluded: ${reason}` },
  ]);
  assert.equal(reported.state.excluded.w3?.code, 'SOURCE_INVALID');
  // w2 reports too; generation 4 forms without w3, from w1's state (tied with w2's: the lowest rank).
  const next = run([...claimed, [20, stopped(1, 2, at(40))], [20, stopped(2, 2, at(40))], [30, bad], [31, stopped(2, 3, at(40))]]);
  assert.deepEqual(next.actions.at(-1), { type: 'form', generation: 4, ranks: ranks(1, 2), source: { kind: 'member', id: 'w1' } });
  // Back within the exclusion: refused, saying why.
  const again = run([...claimed, [20, stopped(1, 2, at(40))], [20, stopped(2, 2, at(40))], [30, bad], [30 + 10_000, join(3, at(90))]]);
  assert.deepEqual(again.actions.at(-1), { type: 'reject', id: 'w3', code: 'SOURCE_INVALID', reason: 'excluded for another 50 s: the state it sent did not verify' });
});

test('a member naming itself an invalid source only corrects its claim; nobody is excluded', () => {
  const { state, actions } = run([
    [0, join(1, at(30))],
    [0, join(2)],
    [5, { type: 'stopped', id: 'w1', generation: 1, held: null, reason: 'state snapshot: params[1] is NaN', invalidSource: 'w1' }],
  ]);
  assert.equal(actions.filter((a) => a.type === 'reject' || a.type === 'drop').length, 0);
  assert.deepEqual(state.excluded, {});
  assert.equal(state.members.find((m) => m.id === 'w1')?.held, null);
});

// ---- what is recorded: decided here, recorded by the executor as it is -------------------------

test('a refused worker is recorded as refused only, never as joined: beyond maxWorkers, after the job, while excluded', () => {
  const full = run([[0, join(1)], [0, join(2)], [0, join(3)], [0, join(4)]]);
  assert.deepEqual(full.last, [['refused', 'w4 refused: WORKER_LIMIT the job already has maxWorkers 3']]);
  assert.ok(!full.records.some(([kind, message]) => kind === 'join' && message.startsWith('w4 ')));
  const done = decide({ ...full.state, phase: 'done', reason: 'completed' }, join(5), 0, POLICY);
  assert.deepEqual(recorded(done.actions), [['refused', 'w5 refused: JOB_DONE the job has finished']]);
  const bad: MembershipEvent = { type: 'stopped', id: 'w1', generation: 3, held: at(40), reason: 'state snapshot: params[0] is NaN', invalidSource: 'w3' };
  const claimed: [number, MembershipEvent][] = [[0, join(1)], [0, join(2)], [0, stopped(1, 1, at(40))], [0, stopped(2, 1, at(40))], [10, join(3, at(90))]];
  const again = run([...claimed, [20, stopped(1, 2, at(40))], [20, stopped(2, 2, at(40))], [30, bad], [40, join(3, at(90))]]);
  assert.deepEqual(again.last, [['refused', 'w3 refused: SOURCE_INVALID excluded for another 60 s: the state it sent did not verify']]);
});

test('a join mid-run is recorded as the join, the generation stopping, then the next generation', () => {
  const { records } = run([[0, join(1)], [0, join(2)], [200, join(3)], [210, stopped(1, 1, at(41))], [220, stopped(2, 1, at(42))]]);
  assert.deepEqual(records, [
    ['join', 'w1 joined from w1:7001'],
    ['waiting', 'waiting for workers: 1 of minWorkers 2'],
    ['join', 'w2 joined from w2:7002'],
    ['generation', 'generation 1: w1, w2 (state from the coordinator)'],
    ['join', 'w3 joined from w3:7003'],
    ['stopping', 'generation 1 stopping: w3 joined'],
    ['generation', 'generation 2: w1, w2, w3 (state from w2)'],
  ]);
});

test('a generation larger than the exact reduction\'s micro-batches names the members that idle', () => {
  const two = { ...POLICY, microBatches: 2 };
  const { records } = run([[0, join(1)], [0, join(2)], [200, join(3)], [210, stopped(1, 1, at(41))], [220, stopped(2, 1, at(42))]], two);
  assert.deepEqual(records.filter(([kind]) => kind === 'generation'), [
    ['generation', 'generation 1: w1, w2 (state from the coordinator)'],
    ['generation', "generation 2: w1, w2, w3 (state from w2); w3 idle: the job's steps have 2 micro-batches (training.microBatch), one worker each at most"],
  ]);
});

test('leaves and losses are recorded for members only; a loss found by a deadline is recorded as lost', () => {
  const left = run([...THREE, [10, { type: 'leave', id: 'w3' }]]);
  assert.deepEqual(left.last, [['leave', 'w3 left'], ['stopping', 'generation 2 stopping: w3 left']]);
  const closed = run([...THREE, [10, { type: 'lost', id: 'w3', reason: 'connection closed' }]]);
  assert.deepEqual(closed.last, [['lost', 'w3 lost: connection closed'], ['stopping', 'generation 2 stopping: w3 lost: connection closed']]);
  // A worker that was never admitted (refused for the worker limit) leaves or closes: nothing happened to the job.
  const outsider = run([...THREE, [10, join(4)], [11, { type: 'leave', id: 'w4' }], [12, { type: 'lost', id: 'w4', reason: 'connection closed' }]]);
  assert.deepEqual(outsider.last, []);
  assert.deepEqual(outsider.records.filter(([, m]) => m.startsWith('w4 ')), [['refused', 'w4 refused: WORKER_LIMIT the job already has maxWorkers 3']]);
  const silent = run([...THREE, [4_000, beat(1, at(3))], [4_000, beat(2, at(3))], [5_001, { type: 'tick' }]]);
  assert.deepEqual(silent.last, [['lost', 'w3 lost: silent past 5000 ms'], ['stopping', 'generation 2 stopping: silent past 5000 ms: w3']]);
  // After the job, a worker that falls silent is dropped, and nothing is recorded.
  const over = run([[5_001, { type: 'tick' }]], POLICY, { ...run(THREE).state, phase: 'done', reason: 'completed' });
  assert.deepEqual([over.actions.map((a) => a.type), over.last], [['drop', 'drop', 'drop'], []]);
});

test('an exclusion is recorded once, as excluded, saying who could not connect; the regroup after it as usual', () => {
  const failed: [number, MembershipEvent][] = [
    ...THREE,
    [1000, { type: 'stopped', id: 'w2', generation: 2, held: null, reason: 'could not connect to rank 2', unreachable: 'w3' }],
    [1100, stopped(1, 2, null)],
    [1100, stopped(3, 2, null)],
  ];
  const probed: MembershipEvent = { type: 'probed', id: 'w3', address: addr(3), reporter: 'w2', reachable: false, detail: 'ECONNREFUSED' };
  const excluded = run([...failed, [1200, probed]]);
  assert.deepEqual(excluded.last, [
    ['excluded', 'w3 excluded: w2 could not connect to its ring address w3:7003, nor could the coordinator (ECONNREFUSED)'],
    ['stopping', 'generation 3 stopping: w3 excluded: its ring address w3:7003 cannot be reached (ECONNREFUSED)'],
  ]);
  // Reachable after all, or moved: nothing happened to record.
  assert.deepEqual(run([...failed, [1200, { ...probed, reachable: true }]]).last, []);
  assert.deepEqual(run([...failed, [1200, { ...probed, address: { host: 'elsewhere', port: 1 } }]]).last, []);
});

test('pause is recorded when it pauses or will, not when there is nothing to pause', () => {
  const training = run([[0, join(1)], [0, join(2)], [10, { type: 'pause' }]]);
  assert.deepEqual(training.last, [['paused', 'paused'], ['stopping', 'generation 1 stopping: paused']]);
  const waiting = run([[0, join(1)], [10, { type: 'pause' }]]);
  assert.deepEqual(waiting.last, [['paused', 'paused']]);
  const twice = run([[0, join(1)], [10, { type: 'pause' }], [20, { type: 'pause' }]]);
  assert.deepEqual(twice.last, []);
});

// ---- no livelock: generations that keep failing, with no checkpoint between, stop the job ------

/** The livelock scenarios count failures; the minimum window is tested on its own (livelockWindowMs 0 here). */
const ONE: Policy = { ...POLICY, minWorkers: 1, startWorkers: 2, livelockWindowMs: 0 };
/** The failure counts by reason, without when each began. */
const countsOf = (f: { counts: Readonly<Record<string, { count: number }>> }) => Object.fromEntries(Object.entries(f.counts).map(([k, v]) => [k, v.count]));
const num = (id: string) => Number(id.slice(1));

/**
 * The issue's loop, from a checkpoint at step 50: each time rank 0 sends its checkpoint
 * (10 steps on) its connection is closed, so it is lost; the survivor stops, trains alone,
 * and the lost one reconnects and joins again (a join: no failure), and the two train on
 * until rank 0's next checkpoint. `between` runs after each cycle's training (a checkpoint
 * that lands). Stops feeding once the job is over.
 */
function loop(cycles: number, policy: Policy, between: (step: number) => MembershipEvent[] = () => []) {
  let state = initialMembership(policy, at(50));
  const all: Action[] = [];
  let now = 0;
  const feed = (...events: MembershipEvent[]) => {
    for (const e of events) {
      if (state.phase === 'done') return;
      const d = decide(state, e, (now += 10), policy);
      state = d.state;
      all.push(...d.actions);
    }
  };
  feed(join(1), join(2));
  let step = 50;
  for (let i = 0; i < cycles && state.phase === 'training'; i++) {
    const [rank0, other] = state.phase === 'training' ? state.ring : [];
    step += 10;
    feed(beat(num(rank0!), at(step)), beat(num(other!), at(step)), ...between(step));
    feed({ type: 'lost', id: rank0!, reason: 'connection closed' });
    feed(stopped(num(other!), state.generation, at(step), `RING_PEER_LOST: rank 0 closed its connection`));
    feed(join(num(rank0!), at(step - 10)));
    feed(stopped(num(other!), state.generation, at(step + 2), 'RING_ABORTED: told to stop'));
  }
  return { state, actions: effects(all), records: recorded(all) };
}

test('the issue`s loop (rank 0 lost at each checkpoint, back at once): after maxFailedGenerations the job stops, saving the most advanced state, with GENERATION_LIVELOCK', () => {
  assert.equal(DEFAULT_MAX_FAILED_GENERATIONS, 5);
  const four = loop(4, ONE);
  assert.equal(four.state.phase, 'training', 'four failures: the job goes on');
  assert.deepEqual(countsOf(four.state.failures), { WORKER_LOST: 4 }, 'one failure a cycle: the survivor`s RING_PEER_LOST is the same generation`s, the rejoin ends none');
  const { state, actions, records } = loop(100, ONE);
  assert.equal(state.phase, 'done');
  // Nine generations formed: the first, then two after each failure (the survivor alone, both again) but the fifth, which ends it.
  assert.equal(records.filter(([kind]) => kind === 'generation').length, 9);
  const reason =
    'GENERATION_LIVELOCK: 5 generations failed with WORKER_LOST in 0 s (the last: w1 lost: connection closed) without a checkpoint past step 50; ' +
    "see the workers' logs; raise cluster.maxFailedGenerations (now 5; 0: no limit) to allow more";
  // The survivor reported step 100, ahead of the coordinator's 50: its state is saved as the stop checkpoint.
  assert.deepEqual(actions.at(-1), { type: 'save-and-finish', source: { kind: 'member', id: 'w2' }, reason, error: { code: 'GENERATION_LIVELOCK', message: reason.slice('GENERATION_LIVELOCK: '.length) } });
  assert.deepEqual(state.phase === 'done' && [state.reason, state.error?.code], [reason, 'GENERATION_LIVELOCK']);
  assert.deepEqual(records.filter(([kind]) => kind === 'error'), [['error', reason]]);
  // Nothing runs on: a join after it is refused.
  assert.deepEqual(effects(decide(state, join(3), 0, ONE).actions), [{ type: 'reject', id: 'w3', code: 'JOB_DONE', reason: 'the job has finished' }]);
});

test('a checkpoint between failures clears the count: a flaky worker that makes progress is never stopped; one at the same step is no progress', () => {
  const flaky = loop(30, ONE, (step) => [{ type: 'checkpointed', progress: at(step - 5) }]);
  assert.equal(flaky.state.phase, 'training');
  assert.deepEqual(countsOf(flaky.state.failures), { WORKER_LOST: 1 });
  assert.equal(flaky.actions.filter((a) => a.type === 'save-and-finish').length, 0);
  // The same checkpoint again (or an older one) is no durable progress.
  const stuck = loop(30, ONE, () => [{ type: 'checkpointed', progress: at(50) }]);
  assert.equal(stuck.state.phase, 'done');
  // A checkpoint that lands while the failing generation stops, after the count was reached, still saves the job.
  const saved = run(
    [[0, join(1)], [0, join(2)], [10, { type: 'lost', id: 'w1', reason: 'connection closed' }], [20, { type: 'checkpointed', progress: at(60) }], [30, stopped(2, 1, at(60), 'RING_PEER_LOST: x')]],
    { ...ONE, maxFailedGenerations: 1 },
  );
  assert.equal(saved.state.phase, 'training');
  assert.deepEqual(saved.actions.at(-1), { type: 'form', generation: 2, ranks: ranks(2), source: { kind: 'member', id: 'w2' } });
});

test('joins, leaves, pauses and told-to-stop reports never count; a member`s ring failure while told to stop is no failure either', () => {
  const events: [number, MembershipEvent][] = [[0, join(1)], [0, join(2)]];
  for (let i = 0; i < 20; i++) {
    const g = 1 + 3 * i;
    const k = 3 + i; // a new worker each time
    events.push(
      [10 * i + 1, join(k)],
      // Told to stop, w1 finds its peer gone first: RING_PEER_LOST, not RING_ABORTED. The join ended this generation, not a fault.
      [10 * i + 2, stopped(1, g, at(i), 'RING_PEER_LOST: peer closed')],
      [10 * i + 2, stopped(2, g, at(i), 'RING_ABORTED: told to stop')],
      [10 * i + 3, { type: 'leave', id: `w${k}` }],
      [10 * i + 4, stopped(1, g + 1, at(i), 'RING_ABORTED: told to stop')],
      [10 * i + 4, stopped(2, g + 1, at(i), 'RING_ABORTED: told to stop')],
      [10 * i + 5, { type: 'pause' }],
      [10 * i + 6, stopped(1, g + 2, at(i), 'RING_ABORTED: told to stop')],
      [10 * i + 6, stopped(2, g + 2, at(i), 'RING_ABORTED: told to stop')],
      [10 * i + 7, { type: 'resume' }],
    );
  }
  const { state } = run(events, { ...ONE, maxWorkers: 64, maxFailedGenerations: 1 });
  assert.equal(state.phase, 'training');
  assert.equal(state.generation, 61);
  assert.deepEqual(countsOf(state.failures), {});
});

test('a fault that passes within the window is no livelock: past maxFailedGenerations, the job stops only once the first failure is livelockWindowMs old', () => {
  assert.equal(DEFAULT_LIVELOCK_WINDOW_MS, 60_000);
  // A cycle of the loop takes 60 ms of its clock: ten are 0.6 s, under a window of 1 s.
  const policy = { ...ONE, livelockWindowMs: 1_000 };
  const early = loop(10, policy);
  assert.equal(early.state.phase, 'training');
  assert.deepEqual(countsOf(early.state.failures), { WORKER_LOST: 10 });
  const late = loop(100, policy);
  assert.equal(late.state.phase, 'done');
  assert.match(late.state.phase === 'done' ? late.state.reason : '', /^GENERATION_LIVELOCK: 1[6-9] generations failed with WORKER_LOST in 1 s /);
});

test('maxFailedGenerations 0 never stops the job', () => {
  const { state, actions } = loop(40, { ...ONE, maxFailedGenerations: 0 });
  assert.equal(state.phase, 'training');
  assert.deepEqual(countsOf(state.failures), { WORKER_LOST: 40 });
  assert.equal(actions.filter((a) => a.type === 'save-and-finish').length, 0);
});

test('a ring that fails the same way counts under its code, each reason on its own; a generation counts once', () => {
  const policy = { ...ONE, maxFailedGenerations: 3 };
  // w1's ring times out in every generation: the third stops the job, naming RING_TIMEOUT.
  const events: [number, MembershipEvent][] = [[0, join(1)], [0, join(2)]];
  for (let g = 1; g <= 3; g++) events.push([g * 10, stopped(1, g, at(50), 'RING_TIMEOUT: all-reduce of step 51 timed out')], [g * 10 + 1, stopped(2, g, at(50))]);
  const timeouts = run(events, policy);
  assert.equal(timeouts.state.phase, 'done');
  assert.match((timeouts.state.phase === 'done' && timeouts.state.reason) || '', /^GENERATION_LIVELOCK: 3 generations failed with RING_TIMEOUT in 0 s \(the last: w1: RING_TIMEOUT: all-reduce of step 51 timed out\) without a checkpoint past step 0;/);
  // Two timeouts and two losses: neither reason has reached 3.
  const mixed = run(
    [
      [0, join(1)],
      [0, join(2)],
      [10, stopped(1, 1, at(5), 'RING_TIMEOUT: x')],
      // A second fault of generation 1 as it ends counts nothing.
      [11, { type: 'lost', id: 'w2', reason: 'connection closed' }],
      [12, join(2)],
      [20, { type: 'lost', id: 'w1', reason: 'connection closed' }],
      [21, stopped(2, 2, at(5), 'RING_PEER_LOST: x')],
      [22, join(1)],
      [23, stopped(2, 3, at(5), 'RING_ABORTED: x')],
      [30, stopped(2, 4, at(5), 'RING_TIMEOUT: x')],
      [31, stopped(1, 4, at(5))],
      [40, { type: 'lost', id: 'w2', reason: 'connection closed' }],
      [41, stopped(1, 5, at(5), 'RING_PEER_LOST: x')],
    ],
    policy,
  );
  assert.deepEqual(mixed.state.phase === 'training' && mixed.state.ring, ['w1'], 'w1 trains on alone');
  assert.deepEqual(countsOf(mixed.state.failures), { RING_TIMEOUT: 2, WORKER_LOST: 2 });
  // Told to stop is no fault; a reason without a code is counted under GENERATION_FAILED.
  assert.deepEqual(['RING_ABORTED: told', 'GENERATION_CANCELLED: x', 'ROWS_TIMEOUT: rows', 'RING_PEER_LOST', 'state: bad'].map(faultKey), [null, null, 'ROWS_TIMEOUT', 'RING_PEER_LOST', 'GENERATION_FAILED']);
});

test('lost every way counts as WORKER_LOST: silent, no state report in time, back under its id mid-generation; exclusions under their code', () => {
  const policy = { ...ONE, maxFailedGenerations: 1 };
  const silent = run([...THREE, [4_000, beat(1, at(3))], [4_000, beat(2, at(3))], [5_001, { type: 'tick' }]], policy);
  assert.deepEqual(countsOf(silent.state.failures), { WORKER_LOST: 1 });
  assert.match(silent.state.failures.giveUp?.message ?? '', /\(the last: w3 lost: silent past 5000 ms\)/);
  // A leave stopped generation 2; w3, heard from but never reporting, is lost: its stop failed.
  const late = run([...THREE, [10, { type: 'leave', id: 'w1' }], [12, stopped(2, 2, at(3))], [3_100, beat(2, at(3))], [3_100, beat(3, at(3))], [3_100, { type: 'tick' }]], policy);
  assert.equal(late.state.phase, 'done');
  assert.match(late.state.phase === 'done' ? late.state.reason : '', /WORKER_LOST in \d+ s \(the last: w3 lost: no state report within 3000 ms\)/);
  // Back under its id before its old connection was found closed: the same failure as if it had been.
  const back = run([[0, join(1)], [0, join(2)], [10, join(2, at(4))], [11, stopped(1, 1, at(5))], [11, stopped(2, 1, at(4), 'GENERATION_CANCELLED: x')]], policy);
  assert.match(back.state.phase === 'done' ? back.state.reason : '', /WORKER_LOST in \d+ s \(the last: w2 lost: back under its id during generation 1\)/);
  assert.deepEqual(back.actions.at(-1), { type: 'save-and-finish', source: { kind: 'member', id: 'w1' }, reason: back.state.phase === 'done' ? back.state.reason : '', error: back.state.phase === 'done' ? back.state.error : undefined });
  // Excluded (its ring address unreachable) while in the generation: counted as PEER_UNREACHABLE.
  const probed: MembershipEvent = { type: 'probed', id: 'w3', address: addr(3), reporter: 'w2', reachable: false, detail: 'ECONNREFUSED' };
  const excluded = run([...THREE, [20, probed], [21, stopped(1, 2, at(3))], [21, stopped(2, 2, at(3))]], { ...policy, maxFailedGenerations: 2 });
  assert.deepEqual(countsOf(excluded.state.failures), { PEER_UNREACHABLE: 1 });
});

test('a stop asked for while a livelock is found stands: the job stops with its reason, no error', () => {
  const policy = { ...ONE, maxFailedGenerations: 1 };
  const { state, actions, records } = run(
    [[0, join(1)], [0, join(2)], [10, { type: 'lost', id: 'w1', reason: 'connection closed' }], [11, { type: 'stop', reason: 'SIGTERM' }], [12, stopped(2, 1, at(7), 'RING_PEER_LOST: x')]],
    policy,
  );
  assert.deepEqual(actions.at(-1), { type: 'save-and-finish', source: { kind: 'member', id: 'w2' }, reason: 'SIGTERM' });
  assert.equal(state.phase === 'done' && state.error, undefined);
  assert.equal(records.filter(([kind]) => kind === 'error').length, 0);
  // Paused meanwhile instead: the livelock wins over the pause.
  const paused = run([[0, join(1)], [0, join(2)], [10, { type: 'lost', id: 'w1', reason: 'connection closed' }], [11, { type: 'pause' }], [12, stopped(2, 1, at(7), 'RING_PEER_LOST: x')]], policy);
  assert.equal(paused.state.phase === 'done' && paused.state.error?.code, 'GENERATION_LIVELOCK');
});
