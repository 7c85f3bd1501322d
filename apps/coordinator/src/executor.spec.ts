/**
 * The executor with its collaborators faked: it sends what membership decides, in order,
 * and its event list holds exactly the events the decisions returned, nothing inferred.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import type { CoordinatorMessage } from '@ringtrain/protocol';
import { INITIAL_LOOP, type TrainSnapshot } from '@ringtrain/train';
import { EventLog } from './events.js';
import { Executor } from './executor.js';
import { LatestWriter } from './latest-writer.js';
import { initialMembership, type Policy } from './membership.js';

const POLICY: Policy = { minWorkers: 1, maxWorkers: 2, heartbeatTimeoutMs: 5_000, stopTimeoutMs: 3_000 };
const START = { loop: INITIAL_LOOP, params: new Float32Array(1), optimizer: { iterations: 0, slots: new Float32Array(0) }, bestParams: null, trainRows: 1 } as unknown as TrainSnapshot;

function harness() {
  const sent: [string, CoordinatorMessage['type']][] = [];
  const dropped: string[] = [];
  const stops: (string | null)[] = [];
  let executor: Executor | undefined;
  const events = new EventLog(pino({ level: 'silent' }), () => executor!.membership.generation, () => {});
  executor = new Executor({
    policy: POLICY,
    initial: initialMembership(POLICY),
    connections: {
      send: (id, m) => void sent.push([id, m.type]),
      drop: (id) => void dropped.push(id),
      transfer: async (id, announce) => void sent.push([id, announce({ id: 1, bytes: 8 }).type]),
    },
    events,
    checkpoints: { baseline: { progress: { step: 0, epochs: 0 }, loop: START.loop }, source: () => ({ bytes: 8, parts: [new Uint8Array(8)] }) },
    history: { generationFormed: () => {} },
    generations: new LatestWriter(async () => {}, () => {}),
    probe: async () => ({ reachable: false, detail: 'ECONNREFUSED' }),
    stopJob: (source) => void stops.push(source),
    log: pino({ level: 'silent' }),
    changed: () => {},
  });
  const kinds = () => events.all().map((e) => `${e.kind}: ${e.message}`);
  return { executor, sent, dropped, stops, kinds };
}

const join = (id: string) => ({ type: 'join', id, address: { host: id, port: 7000 }, held: null }) as const;

test('a refused worker is told so and recorded as refused, and nothing else', () => {
  const h = harness();
  h.executor.apply(join('a'));
  h.executor.apply(join('b'));
  const before = h.kinds().length;
  h.executor.apply(join('c'));
  assert.deepEqual(h.kinds().slice(before), ['refused: c refused: WORKER_LIMIT the job already has maxWorkers 2']);
  assert.deepEqual(h.sent.at(-1), ['c', 'reject']);
});

test('the event list is exactly what the decisions recorded, in order; messages go out in the order decided', () => {
  const h = harness();
  h.executor.apply(join('a'));
  h.executor.apply(join('b'));
  h.executor.apply({ type: 'stopped', id: 'a', generation: 1, held: null, reason: 'told to stop' });
  h.executor.apply({ type: 'lost', id: 'b', reason: 'connection closed' });
  h.executor.apply({ type: 'stop', reason: 'SIGTERM' });
  assert.deepEqual(h.kinds(), [
    'join: a joined from a:7000',
    'generation: generation 1: a (state from the coordinator)',
    'join: b joined from b:7000',
    'stopping: generation 1 stopping: b joined',
    'generation: generation 2: a, b (state from the coordinator)',
    'lost: b lost: connection closed',
    'stopping: generation 2 stopping: b lost: connection closed',
  ]);
  assert.deepEqual(h.sent, [
    ['a', 'generation'],
    ['a', 'stop'],
    ['a', 'generation'],
    ['b', 'generation'],
    ['a', 'stop'],
  ]);
  assert.deepEqual(h.dropped, ['b']);
  assert.equal(h.executor.formed?.generation, 2);
  // Stopping while a generation stops: once a reports, the job ends with its state.
  h.executor.apply({ type: 'stopped', id: 'a', generation: 2, held: { step: 3, epochs: 0 }, reason: 'told to stop' });
  assert.deepEqual(h.stops, ['a']);
  assert.equal(h.executor.membership.phase, 'done');
});

test('an unreachable member is probed, and excluded on the probe\'s answer: one excluded event', async () => {
  const h = harness();
  h.executor.apply(join('a'));
  h.executor.apply(join('b'));
  h.executor.apply({ type: 'stopped', id: 'a', generation: 1, held: null, reason: 'told to stop' });
  h.executor.apply({ type: 'stopped', id: 'a', generation: 2, held: null, reason: 'could not connect to rank 1', unreachable: 'b' });
  await new Promise((r) => setImmediate(r));
  const excluded = h.kinds().filter((k) => k.startsWith('excluded') || k.startsWith('refused') || k.startsWith('join: b'));
  assert.deepEqual(excluded, ['join: b joined from b:7000', 'excluded: b excluded: a could not connect to its ring address b:7000, nor could the coordinator (ECONNREFUSED)']);
  assert.deepEqual(h.dropped, ['b']);
  assert.ok(h.sent.some(([id, type]) => id === 'b' && type === 'reject'));
});
