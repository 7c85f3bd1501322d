/** Counting and rate-limited logging of refusals, with a fake clock (every `now` passed by hand). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OTHER_PEERS, REJECT_REASONS, Rejections } from './rejections.js';

interface Line {
  level: 'warn' | 'error';
  obj: Record<string, unknown>;
  msg: string;
}

function recorder(): { lines: Line[]; log: { warn(o: object, m: string): void; error(o: object, m: string): void } } {
  const lines: Line[] = [];
  return {
    lines,
    log: {
      warn: (obj, msg) => lines.push({ level: 'warn', obj: obj as Record<string, unknown>, msg }),
      error: (obj, msg) => lines.push({ level: 'error', obj: obj as Record<string, unknown>, msg }),
    },
  };
}

test('every refusal is counted; every reason is there from the start', () => {
  const { log } = recorder();
  const r = new Rejections(log);
  assert.deepEqual(Object.keys(r.counts), [...REJECT_REASONS]);
  assert.ok(Object.values(r.counts).every((n) => n === 0));
  for (let i = 0; i < 5; i++) r.note('unauthorized', '10.0.0.1', 'no token', {}, 1000 + i);
  r.note('bad_message', '10.0.0.2', 'bad', {}, 1000);
  assert.deepEqual(r.counts, { unauthorized: 5, bad_request: 0, bad_message: 1, wrong_role: 0, internal_error: 0 });
});

test('a peer in a loop: its first refusal in full, then one summary per interval, the rest only counted', () => {
  const { lines, log } = recorder();
  const r = new Rejections(log, 10_000);
  // 1,000 bad messages a second for 25 s, with the owner's timer flushing every 250 ms.
  let t = 0;
  for (; t < 25_000; t++) {
    r.note('bad_message', '10.0.0.9', 'bad message from a worker', { err: `field ${t}` }, t);
    if (t % 250 === 0) r.flush(t);
  }
  r.flush(t + 10_000);
  assert.equal(r.counts.bad_message, 25_000);
  // Three intervals began (at 0, 10 s, 20 s): each has its first line and its summary.
  assert.deepEqual(
    lines.map((l) => l.msg),
    [
      'bad message from a worker',
      '9999 more from 10.0.0.9 in the last 10 s',
      'bad message from a worker',
      '9999 more from 10.0.0.9 in the last 10 s',
      'bad message from a worker',
      '4999 more from 10.0.0.9 in the last 10 s',
    ],
  );
  assert.deepEqual(lines[0]!.obj, { remote: '10.0.0.9', reason: 'bad_message', err: 'field 0' });
  assert.deepEqual(lines[1]!.obj, { remote: '10.0.0.9', count: 9999, reasons: { bad_message: 9999 } });
  assert.ok(lines.every((l) => l.level === 'warn'));
});

test('peers are limited separately; a quiet interval writes no summary, and the next refusal is logged in full', () => {
  const { lines, log } = recorder();
  const r = new Rejections(log, 10_000);
  r.note('unauthorized', 'a', 'no token', {}, 0);
  r.note('bad_request', 'b', 'bad target', {}, 1);
  r.note('unauthorized', 'a', 'no token', {}, 2);
  r.note('bad_request', 'a', 'bad target', {}, 3);
  r.flush(9_999);
  assert.equal(lines.length, 2, 'nothing summarized before the interval ends');
  r.flush(10_001);
  assert.deepEqual(
    lines.map((l) => l.msg),
    ['no token', 'bad target', '2 more from a in the last 10 s'],
  );
  assert.deepEqual(lines[2]!.obj.reasons, { unauthorized: 1, bad_request: 1 });
  // b had nothing more: no summary. Both start afresh.
  r.note('bad_request', 'b', 'bad target again', {}, 20_000);
  assert.equal(lines.at(-1)!.msg, 'bad target again');
});

test('a refusal after the interval, before any flush, summarizes the old interval and starts a new one', () => {
  const { lines, log } = recorder();
  const r = new Rejections(log, 10_000);
  r.note('bad_message', 'a', 'first', {}, 0);
  r.note('bad_message', 'a', 'second', {}, 5_000);
  r.note('bad_message', 'a', 'third', {}, 10_000);
  assert.deepEqual(
    lines.map((l) => l.msg),
    ['first', '1 more from a in the last 10 s', 'third'],
  );
});

test('internal errors are logged at error level, their summaries too', () => {
  const { lines, log } = recorder();
  const r = new Rejections(log, 1_000);
  r.note('internal_error', 'a', 'handler failed', { err: 'boom' }, 0);
  r.note('internal_error', 'a', 'handler failed', { err: 'boom' }, 1);
  r.flush(1_000);
  assert.deepEqual(
    lines.map((l) => [l.level, l.msg]),
    [
      ['error', 'handler failed'],
      ['error', '1 more from a in the last 1 s'],
    ],
  );
});

test('many addresses cannot grow the table: beyond maxPeers they share one entry', () => {
  const { lines, log } = recorder();
  const r = new Rejections(log, 10_000, 3);
  for (let i = 0; i < 100; i++) r.note('unauthorized', `10.0.0.${i}`, 'no token', {}, i);
  assert.equal(r.counts.unauthorized, 100);
  // Three peers logged in full, then the shared entry once, and its summary after the interval.
  assert.deepEqual(
    lines.map((l) => l.obj.remote),
    ['10.0.0.0', '10.0.0.1', '10.0.0.2', OTHER_PEERS],
  );
  r.flush(20_000);
  assert.equal(lines.at(-1)!.msg, `96 more from ${OTHER_PEERS} in the last 10 s`);
  // Flushed, the table is empty again.
  r.note('unauthorized', '10.0.1.1', 'no token', {}, 20_001);
  assert.equal(lines.at(-1)!.obj.remote, '10.0.1.1');
});

test('a socket already gone counts under "unknown"', () => {
  const { lines, log } = recorder();
  const r = new Rejections(log);
  r.note('bad_request', undefined, 'reset', {}, 0);
  assert.equal(lines[0]!.obj.remote, 'unknown');
});
