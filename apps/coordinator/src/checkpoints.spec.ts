/**
 * The coordinator's own state at the start of a job (checkpoints.ts): a fresh job's
 * initial weights are computed a piece at a time, never held, and stream the same bits
 * as the job's model (Mlp.create with the job's seed), however the pieces fall against
 * the transfer's chunks; a fine-tuning job streams its base model's hidden layers from
 * the base's files and a new head from the seed, the bits `train` starts from.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initialParamsInto, Mlp, paramLayout, selectBackend, writeModelFiles } from '@ringtrain/model';
import { OutgoingTransfer, type TransferSource } from '@ringtrain/protocol';
import { decodeSnapshot, openJob, type OpenedJob, parseJobSpec, snapshotShape } from '@ringtrain/train';
import { Checkpoints, startingState } from './checkpoints.js';
import { EventLog } from './events.js';
import { RunHistory } from './history.js';

/** 784-1500-3: 1.18M parameters, so the initial weights take a 4 MiB piece and part of another, and the transfer's chunks fall across them. */
const SPEC = `name: own-state
data:
  source: synthetic:rows=60,features=784,classes=3,seed=2
  split: { validation: 0.2, test: 0.2, seed: 1 }
model:
  hidden: [{ units: 1500 }]
training: { epochs: 1, seed: 19, optimizer: { name: adam } }
`;

let job: OpenedJob;
before(async () => {
  await selectBackend('cpu');
  job = await openJob(parseJobSpec(SPEC), null);
});

/** The bytes `source` sends through a real transfer (chunks of at most 4 MiB, each acked at once). */
async function sent(source: TransferSource): Promise<Uint8Array> {
  const out = new Uint8Array(source.bytes);
  const t: OutgoingTransfer = new OutgoingTransfer(1, (m) => {
    out.set(m.data, m.offset);
    queueMicrotask(() => t.ack({ type: 'ack', id: 1, offset: m.offset + m.data.byteLength }));
    return true;
  });
  await t.run(source);
  return out;
}

function checkpoints(o: OpenedJob): Checkpoints {
  const log = pino({ level: 'silent' });
  const events = new EventLog(log, () => 0, () => {});
  const limits = { jobId: 'j', stepsPerEpoch: 1, epochs: 1, maxSteps: 1, maxEpochs: 1, batchSize: 32, rows: { train: 1, validation: 1, test: 1 }, params: 1, confusion: null };
  return new Checkpoints({ job: o, outDir: '/nonexistent', limits, start: startingState(o), log, events, history: new RunHistory('/nonexistent', []), written: () => {} });
}

test("a fresh job's own state: the initial weights, computed in pieces, stream the job model's bits, and the optimizer's zeros", async () => {
  const start = startingState(job);
  assert.equal(start.kind, 'start');
  assert.deepEqual(start.kind === 'start' && start.params.map((p) => p.kind), ['initial'], 'the initial weights are not held');
  const size = paramLayout(job.mlp.arch).size;
  assert.ok(size > (4 << 20) / 4, 'more than one piece');
  const shape = snapshotShape(job.spec, size);
  const snap = decodeSnapshot(await sent(checkpoints(job).source()), shape);
  assert.equal(snap.loop.globalStep, 0);
  assert.ok(snap.params.every((v, i) => Object.is(v, job.mlp.params[i])), 'the same bits as Mlp.create(arch, seed)');
  assert.equal(snap.optimizer.slots.length, shape.slots);
  assert.ok(snap.optimizer.slots.every((v) => v === 0));
  assert.equal(snap.bestParams, null);
  // Each call is a new stream from the start.
  assert.deepEqual(await sent(checkpoints(job).source()), await sent(checkpoints(job).source()));
});

test("a fine-tuning job's own state streams the base model's layers from its files and a new head from the seed: the bits train starts from", async () => {
  const dir = await mkdtemp(join(tmpdir(), 'rt-base-'));
  const baseArch = { ...job.arch, outputs: 5 };
  const base = Mlp.create(baseArch, 4);
  await writeModelFiles(dir, baseArch, base.params, { ...job.metadata, task: { kind: 'classification', classes: ['a', 'b', 'c', 'd', 'e'] } });
  const tuned = await openJob(parseJobSpec(`${SPEC.replace('model:\n  hidden: [{ units: 1500 }]\n', '')}init: { from: "${dir}", replaceHead: true }\n`), null);
  const start = startingState(tuned);
  assert.equal(start.kind, 'start');
  assert.deepEqual(start.kind === 'start' && start.params.map((p) => p.kind), ['file', 'initial'], 'read from the files, not held');
  const snap = decodeSnapshot(await sent(checkpoints(tuned).source()), snapshotShape(tuned.spec, paramLayout(tuned.arch).size));
  const hidden = 784 * 1500 + 1500;
  const want = initialParamsInto(tuned.arch, 19, 0, new Float32Array(paramLayout(tuned.arch).size));
  want.set(base.params.subarray(0, hidden));
  assert.deepEqual(snap.params, want, "the base's hidden layer, then Mlp.create(arch, seed)'s head");
  assert.deepEqual(tuned.mlp.params, want, "train's model: the same bits");
  assert.ok(snap.optimizer.slots.every((v) => v === 0));
});
