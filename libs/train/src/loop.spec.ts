import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { earlyStopping, type EpochRecord, globalStepAt, INITIAL_LOOP, loopAfterEpoch, loopAt, type LoopState } from './loop.js';

const P = 7;
const sums = (seconds: number) => ({ lossSum: seconds * 2, count: seconds * 3, correct: seconds, seconds });
const record = (epoch: number): EpochRecord => ({ epoch, train: { loss: 1 / epoch, accuracy: null }, validation: null, learningRate: 0.1, seconds: 1, samplesPerSecond: 10 });
const keep = { best: null, stop: false };

/** The loop after `epochs` whole epochs and `steps` steps of the next, moved as the trainer moves it. */
function walk(epochs: number, steps: number): LoopState {
  let loop = INITIAL_LOOP;
  for (let e = 0; e < epochs; e++) loop = loopAfterEpoch(loop, P, record(e + 1), keep);
  return steps > 0 ? loopAt(loop, steps, sums(steps)) : loop;
}

describe('globalStepAt', () => {
  it('counts every step of the run once, in order: epoch x P + step', () => {
    for (let e = 0; e < 4; e++) {
      const loop = walk(e, 0);
      for (let s = 0; s < P; s++) assert.equal(globalStepAt(loop, s), e * P + s);
      assert.equal(globalStepAt(loop, P), (e + 1) * P, 'after the last step: the next epoch\'s first');
    }
  });

  it('gives a loop resumed mid-epoch (any step, any epoch) the global steps of the run that went straight through', () => {
    for (let e = 0; e < 3; e++) {
      for (let k = 1; k <= P; k++) {
        const resumed = walk(e, k);
        assert.equal(resumed.globalStep, e * P + k);
        for (let s = k; s <= P; s++) assert.equal(globalStepAt(resumed, s), globalStepAt(walk(e, 0), s), `epoch ${e}, resumed at ${k}, step ${s}`);
      }
    }
  });
});

describe('loopAt', () => {
  it('moves within the epoch only: its step, the global step and its sums; history, best and epoch stay', () => {
    const before: LoopState = { ...walk(2, 3), best: { loss: 0.5, epoch: 2 } };
    const at = loopAt(before, 5, sums(9));
    assert.deepEqual(at, { ...before, stepInEpoch: 5, globalStep: 2 * P + 5, partial: sums(9) });
    assert.deepEqual(loopAt(at, 3, sums(3)).globalStep, before.globalStep, 'and back: the same arithmetic either way');
  });
});

describe('loopAfterEpoch', () => {
  it('starts the next epoch: step 0, its first global step, sums cleared, the record appended, the verdict kept', () => {
    const best = { loss: 0.25, epoch: 3 };
    for (const from of [walk(2, 0), walk(2, 4), walk(2, P)]) {
      const next = loopAfterEpoch(from, P, record(3), { best, stop: true });
      assert.deepEqual(next, { epoch: 3, stepInEpoch: 0, globalStep: 3 * P, partial: INITIAL_LOOP.partial, history: [record(1), record(2), record(3)], best, stoppedEarly: true });
    }
  });

  it('leaves the loop it came from as it was', () => {
    const from = walk(1, 2);
    const copy = structuredClone(from);
    loopAfterEpoch(from, P, record(2), keep);
    assert.deepEqual(from, copy);
  });
});

describe('earlyStopping', () => {
  const rule = { patience: 2, minDelta: 0.1 };
  const val = (loss: number) => ({ loss, accuracy: null });

  it('without a rule or a validation, changes nothing', () => {
    const best = { loss: 1, epoch: 1 };
    assert.deepEqual(earlyStopping(undefined, best, 5, val(0)), { best, improved: false, stop: false });
    assert.deepEqual(earlyStopping(rule, best, 5, null), { best, improved: false, stop: false });
  });

  it('takes the first epoch as the best, then only a loss lower by more than minDelta', () => {
    assert.deepEqual(earlyStopping(rule, null, 1, val(5)), { best: { loss: 5, epoch: 1 }, improved: true, stop: false });
    const best = { loss: 1, epoch: 1 };
    assert.deepEqual(earlyStopping(rule, best, 2, val(0.9)), { best, improved: false, stop: false }, 'better by exactly minDelta is not better');
    assert.deepEqual(earlyStopping(rule, best, 2, val(0.85)), { best: { loss: 0.85, epoch: 2 }, improved: true, stop: false });
  });

  it('stops `patience` epochs after the best one', () => {
    const best = { loss: 1, epoch: 4 };
    assert.equal(earlyStopping(rule, best, 5, val(2)).stop, false);
    assert.equal(earlyStopping(rule, best, 6, val(2)).stop, true);
    assert.equal(earlyStopping(rule, best, 6, val(0.5)).stop, false, 'an improvement never stops');
  });
});
