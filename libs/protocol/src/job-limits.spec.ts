import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bytesOf, encodeMessage, ProtocolError, workerDecoder } from './codec.js';
import { type JobLimits, progressIssue } from './job-limits.js';
import { PROTOCOL_VERSION } from './messages.js';

/** A job of 10 epochs of 50 steps, batch 48, 2,400/300/300 rows, a model of 6 parameters, 3 classes counted on the test split. */
const LIMITS: JobLimits = {
  jobId: 'job-1',
  stepsPerEpoch: 50,
  epochs: 10,
  maxSteps: 500,
  maxEpochs: 10,
  batchSize: 48,
  rows: { train: 2400, validation: 300, test: 300 },
  params: 6,
  confusion: { split: 'test', classes: 3, rows: 300 },
};
const decode = workerDecoder(LIMITS);
const raw = (m: Record<string, unknown>): Uint8Array => encodeMessage(m as never);
const refused = (m: Record<string, unknown>, re: RegExp) =>
  assert.throws(() => decode(raw(m)), (e: unknown) => e instanceof ProtocolError && e.code === 'PROTOCOL_BAD_MESSAGE' && re.test(e.message), `expected a refusal matching ${re}`);
const accepted = (m: Record<string, unknown>) => assert.equal(decode(raw(m)).type, m.type);

test('progress: steps within the job, epochs recorded as the steps say (one fewer right at an epoch end)', () => {
  for (const [step, epochs] of [[0, 0], [49, 0], [50, 0], [50, 1], [51, 1], [499, 9], [500, 9], [500, 10]] as const) {
    assert.equal(progressIssue({ step, epochs }, LIMITS), null, `${step} steps, ${epochs} epochs`);
  }
  assert.match(progressIssue({ step: 1e12, epochs: 0 }, LIMITS)!, /step 1000000000000 is past the job's 500 steps/);
  assert.match(progressIssue({ step: 501, epochs: 10 }, LIMITS)!, /past the job's 500/);
  assert.match(progressIssue({ step: 500, epochs: 11 }, LIMITS)!, /11 epochs is past the job's 10/);
  assert.match(progressIssue({ step: 10, epochs: 3 }, LIMITS)!, /3 epochs recorded does not fit step 10/);
  assert.match(progressIssue({ step: 120, epochs: 1 }, LIMITS)!, /does not fit/);
  // A resumed checkpoint further along than a lowered `epochs` raises the bounds.
  assert.equal(progressIssue({ step: 600, epochs: 12 }, { ...LIMITS, maxSteps: 600, maxEpochs: 12 }), null);
});

test('progress claims in register (this job only), heartbeat, stopped and leave are checked', () => {
  const register = { type: 'register', protocol: PROTOCOL_VERSION, id: 'w', address: { host: 'h', port: 1 }, backend: 'cpu', generation: -1 };
  // The issue's false claim: past any u32, and past this job.
  refused({ ...register, held: { jobId: 'job-1', progress: { step: 1e12, epochs: 0 } } }, /"register": held\.progress\.step: Too big/);
  refused({ ...register, held: { jobId: 'job-1', progress: { step: 1e9, epochs: 0 } } }, /"register": held\.progress: step 1000000000 is past the job's 500 steps/);
  // Another job's progress is not this job's to judge (the coordinator ignores it).
  accepted({ ...register, held: { jobId: 'job-0', progress: { step: 1e9, epochs: 0 } } });
  const timing = { steps: 0, computeMs: 0, commMs: 0, waitMs: 0 };
  refused({ type: 'heartbeat', generation: 1, progress: { step: 20, epochs: 1 }, timing, steps: [], epochs: [] }, /"heartbeat": progress: 1 epochs recorded/);
  refused({ type: 'stopped', generation: 1, progress: { step: 900, epochs: 10 }, code: 'RING_ABORTED', reason: '' }, /"stopped": progress: step 900/);
  refused({ type: 'leave', progress: { step: 5, epochs: 2 } }, /"leave": progress/);
  accepted({ type: 'leave', progress: null });
});

test('step and epoch reports: steps before the job end, epochs 1..epochs, samples at most the batch', () => {
  const timing = { steps: 3, computeMs: 1, commMs: 1, waitMs: 0 };
  const hb = (steps: unknown[], epochs: unknown[] = []) => ({ type: 'heartbeat', generation: 1, progress: { step: 3, epochs: 0 }, timing, steps, epochs });
  accepted(hb([{ step: 499, epoch: 10, loss: 0.1, samples: 48 }]));
  refused(hb([{ step: 500, epoch: 10, loss: 0.1, samples: 48 }]), /steps\.0\.step: step 500 is past the job's last, 499/);
  refused(hb([{ step: 1, epoch: 0, loss: 0.1, samples: 48 }]), /steps\.0\.epoch: epoch 0 is outside 1\.\.10/);
  refused(hb([{ step: 1, epoch: 1, loss: 0.1, samples: 49 }]), /samples: 49 samples is more than the batch of 48/);
  const e = { epoch: 11, train: { loss: 1, accuracy: null }, validation: null, learningRate: 0.1, seconds: 1, samplesPerSecond: 1 };
  refused(hb([], [e]), /epochs\.0\.epoch: epoch 11/);
  refused({ ...hb([]), timing: { ...timing, steps: 1e9 } }, /timing\.steps/);
});

test('fetch: indices within the split, never more rows than it has', () => {
  const fetch = (split: string, indices: number[] | Uint32Array, extra = 0) => {
    const b = bytesOf(Uint32Array.from(indices));
    return { type: 'fetch', id: 1, split, indices: extra ? new Uint8Array([...b, ...new Uint8Array(extra)]) : b };
  };
  accepted(fetch('validation', [0, 299]));
  refused(fetch('validation', [300]), /"fetch": indices\.0: validation row 300 is past its 300 rows/);
  refused(fetch('train', [1, 2], 2), /indices: 10 bytes is not a whole number/);
  // The issue's amplification: two million indices (of row 0) in one request.
  refused(fetch('train', new Uint32Array(2_000_000)), /indices: 2000000 rows asked for; the train split has 2400/);
});

test('done: the model size and a result that describes a finished run (the weights themselves are checked finite as they stream in: apps/coordinator server.spec)', () => {
  const epoch = (n: number) => ({ epoch: n, train: { loss: 1, accuracy: 0.5 }, validation: null, learningRate: 0.1, seconds: 1, samplesPerSecond: 1 });
  const history = Array.from({ length: 10 }, (_, i) => epoch(i + 1));
  const final = { train: { loss: 1, accuracy: 0.5 }, validation: null, test: null };
  const confusion = { split: 'test', rows: 300, counts: bytesOf(Uint32Array.from([100, 0, 0, 0, 90, 10, 0, 0, 100])) };
  const done = (result: Record<string, unknown>, params: Float32Array = new Float32Array(6).fill(0.5)) => ({
    type: 'done',
    generation: 1,
    result: { history, bestEpoch: 10, stoppedEarly: false, steps: 500, final, confusion, ...result },
    params: { id: 1, bytes: params.byteLength },
  });
  accepted(done({}));
  accepted(done({ history: history.slice(0, 4), steps: 200, stoppedEarly: true, bestEpoch: 2 }));
  // The issue's forgery: no epoch recorded, weights of 0.5.
  refused(done({ history: [], steps: 0, bestEpoch: 0 }), /result\.history: 0 epochs recorded of the job's 10, and not stopped early/);
  refused(done({ history: [], steps: 0, bestEpoch: 0, stoppedEarly: true }), /no epoch recorded/);
  refused(done({}, new Float32Array(7)), /params\.bytes: 28 bytes; the model has 6 parameters/);
  refused(done({ steps: 499 }), /result\.steps: 499 steps for 10 epochs of 50/);
  refused(done({ bestEpoch: 11 }), /bestEpoch: epoch 11 is outside 1\.\.10/);
  refused(done({ history: [...history.slice(0, 9), epoch(3)] }), /result\.history\.9\.epoch/);
  refused(done({ history: [...history, epoch(11)], steps: 550 }), /11 epochs is past/);
});

test('done: the confusion matrix the job plans for, its split, its rows, classes x classes counts adding up to them; none for a job without one', () => {
  const epoch = (n: number) => ({ epoch: n, train: { loss: 1, accuracy: 0.5 }, validation: null, learningRate: 0.1, seconds: 1, samplesPerSecond: 1 });
  const history = Array.from({ length: 10 }, (_, i) => epoch(i + 1));
  const final = { train: { loss: 1, accuracy: 0.5 }, validation: null, test: null };
  const done = (confusion: unknown) => ({ type: 'done', generation: 1, result: { history, bestEpoch: 10, stoppedEarly: false, steps: 500, final, confusion }, params: { id: 1, bytes: 24 } });
  const counts = (...c: number[]) => bytesOf(Uint32Array.from(c));
  const good = { split: 'test', rows: 300, counts: counts(100, 0, 0, 0, 90, 10, 0, 0, 100) };
  accepted(done(good));
  // Left out (as a version 2 worker would), or null for a job that counts one.
  refused(done(undefined), /"done": result\.confusion: /);
  refused(done(null), /result\.confusion: missing: the job counts one on its test split/);
  refused(done({ ...good, split: 'validation' }), /result\.confusion\.split: the validation split; the job counts its test split/);
  refused(done({ ...good, split: 'train' }), /result\.confusion\.split/);
  refused(done({ ...good, rows: 299 }), /result\.confusion\.rows: 299 rows; the job counts 300/);
  refused(done({ ...good, counts: counts(100, 0, 0, 0, 90, 10, 0, 0) }), /result\.confusion\.counts: 32 bytes; 3 x 3 u32 counts are 36/);
  refused(done({ ...good, counts: new Uint8Array(37) }), /result\.confusion\.counts: 37 bytes/);
  refused(done({ ...good, counts: counts(100, 0, 0, 0, 90, 10, 0, 0, 99) }), /result\.confusion\.counts: the counts add up to 299, not its 300 rows/);
  // A count near 2^32 does not wrap the sum into a match.
  refused(done({ ...good, counts: counts(0xffffffff, 301, 0, 0, 0, 0, 0, 0, 0) }), /the counts add up to 4294967596/);
  refused(done({ ...good, rows: -1 }), /result\.confusion\.rows/);
  refused(done({ split: 'test', rows: 300, counts: [100, 200] }), /result\.confusion\.counts: expected bytes/);
  // A job without one (regression, or no test and no validation rows): null only.
  const none = workerDecoder({ ...LIMITS, confusion: null });
  assert.equal(none(raw(done(null))).type, 'done');
  assert.throws(() => none(raw(done(good))), /result\.confusion: the job has no confusion matrix/);
});
