import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type Action, decide, initialMembership, type MembershipEvent, type MembershipState, type Policy } from './membership.js';

const POLICY: Policy = { minWorkers: 2, maxWorkers: 3, heartbeatTimeoutMs: 5_000 };
const addr = (n: number) => ({ host: `w${n}`, port: 7000 + n });

/** Feeds events at the given times; returns the final state and every action, in order. */
function run(events: [number, MembershipEvent][], policy = POLICY, from = initialMembership(policy)) {
  let state: MembershipState = from;
  const actions: Action[] = [];
  for (const [now, event] of events) {
    const d = decide(state, event, now, policy);
    state = d.state;
    actions.push(...d.actions);
  }
  return { state, actions };
}

const join = (n: number): MembershipEvent => ({ type: 'join', id: `w${n}`, address: addr(n) });
const beat = (n: number, step: number): MembershipEvent => ({ type: 'heartbeat', id: `w${n}`, step });

test('waits below minWorkers, saying why; forms generation 1 when enough have joined', () => {
  const one = run([[0, join(1)]]);
  assert.equal(one.state.phase, 'waiting');
  assert.deepEqual(one.actions, [{ type: 'wait', reason: 'waiting for workers: 1 of minWorkers 2' }]);
  const two = run([[0, join(1)], [10, join(2)]]);
  assert.equal(two.state.phase, 'training');
  assert.deepEqual(two.actions.at(-1), {
    type: 'form',
    generation: 1,
    ranks: [
      { id: 'w1', rank: 0, address: addr(1) },
      { id: 'w2', rank: 1, address: addr(2) },
    ],
    source: 'w1',
  });
});

test('a join mid-run ends the generation and forms the next with the newcomer; the most advanced member is the source', () => {
  const { actions, state } = run([[0, join(1)], [0, join(2)], [100, beat(1, 40)], [100, beat(2, 41)], [200, join(3)]]);
  assert.deepEqual(actions.slice(-2), [
    { type: 'end-generation', generation: 1, reason: 'w3 joined' },
    {
      type: 'form',
      generation: 2,
      ranks: [
        { id: 'w1', rank: 0, address: addr(1) },
        { id: 'w2', rank: 1, address: addr(2) },
        { id: 'w3', rank: 2, address: addr(3) },
      ],
      source: 'w2',
    },
  ]);
  assert.equal(state.generation, 2);
});

test('beyond maxWorkers a worker is rejected, with a code', () => {
  const { actions, state } = run([[0, join(1)], [0, join(2)], [0, join(3)], [0, join(4)]]);
  assert.deepEqual(actions.at(-1), { type: 'reject', id: 'w4', code: 'WORKER_LIMIT', reason: 'the job already has maxWorkers 3' });
  assert.equal(state.members.length, 3);
});

test('a lost or leaving member: the survivors form a new generation; ranks keep join order', () => {
  const lost = run([[0, join(1)], [0, join(2)], [0, join(3)], [50, { type: 'lost', id: 'w2', reason: 'RING_PEER_LOST' }]]);
  assert.deepEqual(lost.actions.slice(-2), [
    { type: 'end-generation', generation: 2, reason: 'w2 lost: RING_PEER_LOST' },
    {
      type: 'form',
      generation: 3,
      ranks: [
        { id: 'w1', rank: 0, address: addr(1) },
        { id: 'w3', rank: 1, address: addr(3) },
      ],
      source: 'w1',
    },
  ]);
  const left = run([[60, { type: 'leave', id: 'w1' }]], POLICY, lost.state);
  assert.equal(left.state.phase, 'waiting');
  assert.deepEqual(left.actions, [
    { type: 'end-generation', generation: 3, reason: 'w1 left' },
    { type: 'wait', reason: 'waiting for workers: 1 of minWorkers 2' },
  ]);
  // A worker coming back brings the job back.
  const back = run([[70, join(1)]], POLICY, left.state);
  assert.equal(back.state.phase, 'training');
  assert.equal(back.state.generation, 4);
});

test('heartbeats keep members; silence past the deadline is a loss (fake clock)', () => {
  const start = run([[0, join(1)], [0, join(2)], [0, join(3)]]);
  let s = run([[4_000, beat(1, 5)], [4_000, beat(3, 5)], [4_999, { type: 'tick' }]], POLICY, start.state);
  assert.deepEqual(s.actions, [], 'nobody is late yet');
  s = run([[5_001, { type: 'tick' }]], POLICY, s.state);
  assert.equal(s.actions[0]?.type, 'end-generation');
  assert.match((s.actions[0] as Extract<Action, { type: 'end-generation' }>).reason, /silent past 5000 ms: w2/);
  assert.deepEqual(
    (s.actions[1] as Extract<Action, { type: 'form' }>).ranks.map((r) => r.id),
    ['w1', 'w3'],
  );
});

test('a known worker joining again (it restarted) re-forms the ring; after finished, joins are refused', () => {
  const a = run([[0, join(1)], [0, join(2)], [10, join(2)]]);
  assert.deepEqual(a.actions.slice(-2).map((x) => x.type), ['end-generation', 'form']);
  assert.equal((a.actions.at(-2) as Extract<Action, { type: 'end-generation' }>).reason, 'w2 rejoined');
  assert.equal(a.state.members.length, 2);
  const done = run([[20, { type: 'finished' }], [30, join(3)]], POLICY, a.state);
  assert.equal(done.state.phase, 'done');
  assert.deepEqual(done.actions, [{ type: 'reject', id: 'w3', code: 'JOB_DONE', reason: 'the job has finished' }]);
});

test('a member outside the ring (waiting phase) leaving changes nothing but the count', () => {
  const w = run([[0, join(1)], [5, { type: 'leave', id: 'w1' }]]);
  assert.equal(w.state.phase, 'waiting');
  assert.equal(w.state.members.length, 0);
  assert.deepEqual(w.actions.at(-1), { type: 'wait', reason: 'waiting for workers: 0 of minWorkers 2' });
});
