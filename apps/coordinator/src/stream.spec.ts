/**
 * The stream hub (stream.ts) with a fake runtime and fake sockets: a snapshot first,
 * then updates carrying only new steps; one serialization per tick however many
 * clients; at most one tick per interval; slow clients skip ticks and catch up;
 * long histories thinned in snapshots.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { WebSocket } from 'ws';
import type { JobStatus, MetricHistory } from './status.js';
import { MAX_BUFFERED_BYTES, SNAPSHOT_MAX_STEPS, SNAPSHOT_RECENT_STEPS, StreamHub, thinSteps } from './stream.js';

class FakeSource extends EventEmitter {
  steps: [number, number][] = [];
  statusCalls = 0;
  status(): JobStatus {
    this.statusCalls++;
    return { job: 'fake', state: 'running', step: this.steps.length } as unknown as JobStatus;
  }
  metrics(): MetricHistory {
    return { steps: [...this.steps], epochs: [], generations: [] };
  }
  addSteps(n: number): void {
    for (let i = 0; i < n; i++) this.steps.push([this.steps.length, 1 / (this.steps.length + 1)]);
    this.emit('update');
  }
}

interface Message {
  type: string;
  steps: [number, number][];
  status: { step: number };
}

class FakeSocket extends EventEmitter {
  readonly OPEN = 1;
  readyState = 1;
  bufferedAmount = 0;
  readonly sent: Message[] = [];
  readonly texts: string[] = [];
  send(text: string): void {
    this.texts.push(text);
    this.sent.push(JSON.parse(text) as Message);
  }
  close(): void {
    this.readyState = 3;
    this.emit('close');
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const asWs = (s: FakeSocket) => s as unknown as WebSocket;

test('a snapshot, then updates with the new steps only; clients share one message per tick', async () => {
  const source = new FakeSource();
  source.addSteps(5);
  const hub = new StreamHub(source, 20);
  const sockets = Array.from({ length: 10 }, () => new FakeSocket());
  for (const s of sockets) hub.add(asWs(s));
  for (const s of sockets) {
    assert.equal(s.sent.length, 1);
    assert.equal(s.sent[0]!.type, 'snapshot');
    assert.equal(s.sent[0]!.steps.length, 5);
  }
  assert.equal(hub.counters.serialized, 1, 'the snapshot is built once for a burst of connections');

  source.addSteps(3);
  await sleep(60);
  for (const s of sockets) {
    assert.equal(s.sent.length, 2);
    assert.equal(s.sent[1]!.type, 'update');
    assert.deepEqual(s.sent[1]!.steps.map((x) => x[0]), [5, 6, 7]);
    assert.equal(s.texts[1], sockets[0]!.texts[1], 'the same string for every client');
  }
  assert.equal(hub.counters.ticks, 1);
  assert.equal(hub.counters.serialized, 2);
  for (const s of sockets) s.close();
  assert.equal(hub.size, 0);
  assert.equal(source.listenerCount('update'), 0);
  hub.close();
});

test('at most one update per interval, however many events', async () => {
  const source = new FakeSource();
  const hub = new StreamHub(source, 100);
  const s = new FakeSocket();
  hub.add(asWs(s));
  const start = Date.now();
  while (Date.now() - start < 450) {
    source.addSteps(1);
    await sleep(5);
  }
  await sleep(120);
  const updates = s.sent.filter((m) => m.type === 'update');
  assert.ok(updates.length >= 1 && updates.length <= 6, `${updates.length} updates in ~0.5 s at 100 ms`);
  // Every step arrives exactly once across the updates.
  assert.deepEqual(updates.flatMap((u) => u.steps.map((x) => x[0])), source.steps.map((x) => x[0]));
  s.close();
  hub.close();
});

test('a client with a full send buffer skips ticks and then gets every step it missed', async () => {
  const source = new FakeSource();
  const hub = new StreamHub(source, 10);
  const fast = new FakeSocket();
  const slow = new FakeSocket();
  hub.add(asWs(fast));
  hub.add(asWs(slow));
  slow.bufferedAmount = MAX_BUFFERED_BYTES + 1;
  source.addSteps(2);
  await sleep(30);
  source.addSteps(2);
  await sleep(30);
  assert.equal(slow.sent.length, 1, 'only its snapshot');
  assert.equal(fast.sent.length, 3);
  slow.bufferedAmount = 0;
  source.addSteps(1);
  await sleep(30);
  assert.deepEqual(slow.sent.at(-1)!.steps.map((x) => x[0]), [0, 1, 2, 3, 4]);
  assert.deepEqual(fast.sent.at(-1)!.steps.map((x) => x[0]), [4]);
  fast.close();
  slow.close();
  hub.close();
});

test('thinSteps: all steps up to the limit; past it, every k-th older step and the recent ones whole', () => {
  const steps = (n: number) => Array.from({ length: n }, (_, i) => [i, i] as const);
  assert.equal(thinSteps(steps(SNAPSHOT_MAX_STEPS)).length, SNAPSHOT_MAX_STEPS);
  for (const n of [SNAPSHOT_MAX_STEPS + 1, 12_345, 1_000_000]) {
    const all = steps(n);
    const thin = thinSteps(all);
    assert.ok(thin.length <= SNAPSHOT_MAX_STEPS, `${n}: ${thin.length}`);
    assert.deepEqual(thin[0], all[0]);
    assert.deepEqual(thin.slice(-SNAPSHOT_RECENT_STEPS), all.slice(-SNAPSHOT_RECENT_STEPS));
    for (let i = 1; i < thin.length; i++) assert.ok(thin[i]![0] > thin[i - 1]![0], 'in step order');
  }
});
