import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HISTORY_STEPS, StepRecords } from './reports.js';

const step = (globalStep: number, o: { computeMs?: number; commMs?: number; ringWaitMs?: number } = {}) => ({
  globalStep,
  epoch: 1,
  stepLoss: globalStep / 10,
  stepSamples: 16,
  computeMs: o.computeMs ?? 10,
  commMs: o.commMs ?? 4,
  ringWaitMs: o.ringWaitMs ?? 1,
});

test('a heartbeat reports mean step times (the ring`s wait for the slowest peer apart) and rank 0`s records, then forgets them', () => {
  const r = new StepRecords();
  r.step(step(0, { computeMs: 10, commMs: 4, ringWaitMs: 1 }), true);
  r.step(step(1, { computeMs: 20, commMs: 2, ringWaitMs: 5 }), true);
  r.waited(6);
  const beat = r.heartbeat(3, 'wasm', { step: 2, epochs: 0 });
  // Waited: 1 and 2 (capped by the step's communication), plus 6 for rows; moving data: 3 and 0.
  assert.deepEqual(beat.timing, { steps: 2, computeMs: 15, commMs: 1.5, waitMs: 4.5 });
  assert.deepEqual(
    beat.steps.map((s) => s.step),
    [0, 1],
  );
  assert.equal(beat.backend, 'wasm');
  assert.deepEqual(r.heartbeat(3, null, null), { type: 'heartbeat', generation: 3, progress: null, timing: { steps: 0, computeMs: 0, commMs: 0, waitMs: 0 }, steps: [], epochs: [] });
});

test('other ranks report no records by heartbeat, but keep them and replay the tail', () => {
  const r = new StepRecords();
  assert.equal(r.replay(16, 1, null, null), null);
  for (let s = 0; s < HISTORY_STEPS + 5; s++) r.step(step(s), false);
  assert.deepEqual(r.heartbeat(1, null, null).steps, []);
  const tail = r.replay(3, 1, null, { step: HISTORY_STEPS + 5, epochs: 0 })!;
  assert.deepEqual(
    tail.steps.map((s) => s.step),
    [HISTORY_STEPS + 2, HISTORY_STEPS + 3, HISTORY_STEPS + 4],
  );
  assert.equal(r.replay(HISTORY_STEPS * 2, 1, null, null)!.steps.length, HISTORY_STEPS, 'at most HISTORY_STEPS are kept');
});
