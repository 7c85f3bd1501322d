import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, open, readdir, readFile, rename, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepareDataset, type PreparedDataset } from '@ringtrain/data';
import { Mlp, selectBackend } from '@ringtrain/model';
import { CheckpointWriter, checkpointSource, CHECKPOINTS_DIR, fileDigest, latestCheckpoint, latestCheckpointHead, loadCheckpointState, readCheckpoint, writeCheckpoint } from './checkpoint.js';
import { encodeSnapshot } from './snapshot-codec.js';
import { TrainError } from './errors.js';
import { modelMetadata } from './output.js';
import { resumeMismatches } from './resume.js';
import { parseJobSpec, type JobSpec } from './spec.js';
import { architectureFor, resolveLoss } from './job-model.js';
import { type CheckpointReason, train, type TrainSnapshot } from './trainer.js';

// Dropout, noise augmentation, momentum-free Adam with a schedule, early stopping:
// every piece of state a resume must carry is in play.
const SPEC = `
name: resume
data:
  source: synthetic:rows=260,features=10,classes=3,seed=2
  split: { validation: 0.2, test: 0.1, seed: 3 }
  augment: { noise: 0.2 }
model:
  hidden:
    - { units: 16, activation: relu, dropout: 0.25 }
    - { units: 12, activation: tanh, dropout: 0.1 }
  l2: 0.001
training:
  optimizer: { name: adam, learningRate: 0.02, schedule: { kind: cosine, warmupSteps: 4 } }
  batchSize: 16
  epochs: 4
  seed: 11
  earlyStopping: { patience: 10 }
checkpoint: { everySteps: 5, keep: 2 }
`;

interface Run {
  readonly saved: { reason: CheckpointReason; snap: TrainSnapshot }[];
  readonly end: TrainSnapshot;
}

let spec: JobSpec;
let data: PreparedDataset;

async function run(dir: string | null, opts: { stopAfter?: number; resume?: TrainSnapshot } = {}): Promise<Run> {
  const loss = resolveLoss(spec, data.task);
  const arch = architectureFor(spec, data.train.cols, data.task);
  const mlp = Mlp.create(arch, spec.training.seed);
  const saved: Run['saved'] = [];
  let steps = 0;
  await train({
    spec,
    data,
    mlp,
    loss,
    ...(opts.resume ? { resume: opts.resume } : {}),
    onStep: () => (steps += 1),
    ...(opts.stopAfter !== undefined ? { shouldStop: () => steps >= opts.stopAfter! } : {}),
    checkpoint: {
      everySteps: spec.checkpoint.everySteps,
      everyEpoch: spec.checkpoint.everyEpoch,
      save: async (snap, reason) => {
        saved.push({ reason, snap: structuredClone(snap) }); // the run's own arrays until save resolves
        if (dir) {
          await writeCheckpoint(dir, snap, {
            spec,
            metadata: modelMetadata(data, loss),
            arch,
            reason,
            lineage: [],
            keep: spec.checkpoint.keep,
            keepBest: spec.checkpoint.keepBest,
          });
        }
      },
    },
  });
  return { saved, end: saved.at(-1)!.snap };
}

function withoutTimes(s: TrainSnapshot): unknown {
  return {
    ...s,
    loop: {
      ...s.loop,
      partial: { ...s.loop.partial, seconds: 0 },
      history: s.loop.history.map((h) => ({ ...h, seconds: 0, samplesPerSecond: 0 })),
    },
  };
}

describe('checkpoints and resume', () => {
  before(async () => {
    await selectBackend('cpu');
    spec = parseJobSpec(SPEC);
    data = await prepareDataset({ ...spec.data, baseDir: '.' });
  });

  test('train k steps, stop, resume to the end: bit-identical to the run never interrupted', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ringtrain-ckpt-'));
    const whole = await run(null);
    assert.equal(whole.saved.at(-1)!.reason, 'end');
    // 12 steps per epoch (182 training rows, batch 16): stop mid-epoch 2.
    assert.equal(data.train.rows, 182);
    const first = await run(dir, { stopAfter: 17 });
    assert.equal(first.saved.at(-1)!.reason, 'stop');
    assert.equal(first.end.loop.globalStep, 17);
    assert.equal(first.end.loop.stepInEpoch, 5);
    const ckpt = await latestCheckpoint(dir);
    assert.ok(ckpt);
    assert.equal(ckpt.reason, 'stop');
    assert.deepEqual(withoutTimes(ckpt.snapshot), withoutTimes(first.end), 'what was written is what is read');
    const second = await run(dir, { resume: ckpt.snapshot });
    assert.deepEqual(second.end.params, whole.end.params);
    assert.deepEqual(second.end.optimizer, whole.end.optimizer);
    assert.deepEqual(second.end.bestParams, whole.end.bestParams);
    assert.deepEqual(withoutTimes(second.end), withoutTimes(whole.end));
  });

  test('a corrupt or truncated latest checkpoint is reported and the one before it is used', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ringtrain-ckpt-'));
    // Saved at steps 5, 10, 12 (end of epoch 1), 15, 20 and 22 (stop).
    await run(dir, { stopAfter: 22 });
    const names = (await readdir(join(dir, CHECKPOINTS_DIR))).filter((n) => n.startsWith('step-')).sort();
    // keep: 2, plus the best by validation loss (the only epoch end, step 12).
    assert.deepEqual(names, ['step-000000012', 'step-000000020', 'step-000000022']);
    const invalid: TrainError[] = [];
    // Flip one byte of the latest weights.
    const fh = await open(join(dir, CHECKPOINTS_DIR, 'step-000000022', 'model', 'weights.bin'), 'r+');
    await fh.write(Buffer.from([0xff]), 0, 1, 7);
    await fh.close();
    let ckpt = await latestCheckpoint(dir, (_d, e) => invalid.push(e));
    assert.equal(ckpt?.snapshot.loop.globalStep, 20);
    assert.equal(invalid[0]?.code, 'CHECKPOINT_CORRUPT');
    assert.match(invalid[0]!.message, /step-000000022: model\/weights\.bin does not match its SHA-256/);
    // Truncate the next one: still found out, by size.
    await truncate(join(dir, CHECKPOINTS_DIR, 'step-000000020', 'optimizer.bin'), 8);
    ckpt = await latestCheckpoint(dir, (_d, e) => invalid.push(e));
    assert.equal(ckpt?.snapshot.loop.globalStep, 12);
    assert.match(invalid.at(-1)!.message, /optimizer\.bin has 8 bytes/);
    // A directory with no manifest (as if a crash came mid-write) is never loaded.
    await rm(join(dir, CHECKPOINTS_DIR, 'step-000000012', 'manifest.json'));
    assert.equal(await latestCheckpoint(dir, (_d, e) => invalid.push(e)), null);
    assert.match(invalid.at(-1)!.message, /manifest\.json is missing/);
  });

  test('a checkpoint whose numbers the job could not reach (a loop out of step, a weight not finite) is CHECKPOINT_CORRUPT, though its manifest verifies', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ringtrain-ckpt-'));
    const good = (await run(dir, { stopAfter: 7 })).end;
    const loss = resolveLoss(spec, data.task);
    const options = { spec, metadata: modelMetadata(data, loss), arch: architectureFor(spec, data.train.cols, data.task), reason: 'steps' as const, lineage: [], keep: 5, keepBest: false };
    const invalid: TrainError[] = [];
    const outOfStep = { ...good, loop: { ...good.loop, globalStep: 1e9 } };
    const nan = Float32Array.from(good.params);
    nan[3] = NaN;
    const notFinite = { ...good, loop: { ...good.loop, stepInEpoch: 8, globalStep: 8 }, params: nan };
    // The writer refuses both, and leaves nothing behind...
    for (const bad of [outOfStep, notFinite]) {
      await assert.rejects(writeCheckpoint(dir, bad, options), (e: unknown) => e instanceof TrainError && e.code === 'SNAPSHOT_INVALID');
    }
    assert.deepEqual((await readdir(join(dir, CHECKPOINTS_DIR))).sort(), ['step-000000005', 'step-000000007']);
    // ...so the reader's check is made on checkpoints forged after writing, with a manifest that verifies.
    await forge(dir, 'step-000000007', 'step-999999999', (state) => state.replace('"globalStep": 7', '"globalStep": 1000000000'), null);
    assert.equal((await latestCheckpoint(dir, (_d, e) => invalid.push(e)))?.snapshot.loop.globalStep, 7);
    assert.match(invalid.at(-1)!.message, /step-999999999: state snapshot: loop\.globalStep 1000000000 is not epoch 0 x 12 \+ 7/);
    await rm(join(dir, CHECKPOINTS_DIR, 'step-999999999'), { recursive: true });
    await forge(dir, 'step-000000007', 'step-000000008', (state) => state.replace('"globalStep": 7', '"globalStep": 8').replace('"stepInEpoch": 7', '"stepInEpoch": 8'), nan);
    assert.equal((await latestCheckpoint(dir, (_d, e) => invalid.push(e)))?.snapshot.loop.globalStep, 7);
    assert.equal(invalid.at(-1)!.code, 'CHECKPOINT_CORRUPT');
    assert.match(invalid.at(-1)!.message, /step-000000008: model\/weights\.bin: params\[3\] is NaN/);
    // A coordinator's head-only read refuses it the same way (the floats are checked as they are hashed)...
    const head = await latestCheckpointHead(dir, (_d, e) => invalid.push(e));
    assert.match(invalid.at(-1)!.message, /step-000000008: model\/weights\.bin: params\[3\] is NaN/);
    // ...and the head of the good one is its state's header, without the arrays.
    assert.ok(head && !('snapshot' in head));
    assert.deepEqual(head.header, { loop: good.loop, optimizer: { name: 'adam', iterations: good.optimizer.iterations }, trainRows: good.trainRows, params: good.params.length, slots: good.optimizer.slots.length, best: good.bestParams?.length ?? 0 });
    assert.deepEqual((await loadCheckpointState(head)).snapshot, good);
  });

  test('a float file is checked finite as it is hashed, a value split across two pieces included', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ringtrain-digest-'));
    const values = Float32Array.from({ length: 1000 }, (_, i) => i / 7);
    const write = async (v: Float32Array) => {
      await writeFile(join(dir, 'f.bin'), new Uint8Array(v.buffer));
      return createHash('sha256').update(new Uint8Array(v.buffer)).digest('hex');
    };
    // Pieces of 10 bytes: most floats straddle two of them.
    const clean = await fileDigest(join(dir, 'f.bin'), 'params', 10).catch(() => null);
    assert.equal(clean, null, 'no file yet');
    let hash = await write(values);
    assert.deepEqual(await fileDigest(join(dir, 'f.bin'), 'params', 10), { sha256: hash, bytes: 4000, notFinite: null });
    for (const [at, bad] of [[777, NaN], [0, Infinity], [999, -Infinity], [2, NaN]] as const) {
      const v = values.slice();
      v[at] = bad;
      hash = await write(v);
      assert.deepEqual(await fileDigest(join(dir, 'f.bin'), 'params', 10), { sha256: hash, bytes: 4000, notFinite: `params[${at}] is ${bad}` });
      assert.equal((await fileDigest(join(dir, 'f.bin'), 'params')).notFinite, `params[${at}] is ${bad}`, 'in one piece too');
    }
    assert.equal((await fileDigest(join(dir, 'f.bin'))).notFinite, null, 'not a float file: not checked');
  });

  test('a checkpoint streams out as the state stream and back in, file for file, whatever the pieces', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ringtrain-ckpt-'));
    const good = (await run(dir, { stopAfter: 7 })).end;
    const first = join(dir, CHECKPOINTS_DIR, 'step-000000007');
    const source = await checkpointSource(first);
    const pieces: Uint8Array[] = [];
    for await (const p of source.parts) pieces.push(p);
    const streamed = Buffer.concat(pieces);
    assert.equal(streamed.byteLength, source.bytes);
    assert.deepEqual(new Uint8Array(streamed), encodeSnapshot(good));
    // Written again from that stream in odd pieces, into another directory: the same bytes in every file.
    const other = await mkdtemp(join(tmpdir(), 'ringtrain-ckpt-'));
    const options = { spec, metadata: modelMetadata(data, resolveLoss(spec, data.task)), arch: architectureFor(spec, data.train.cols, data.task), reason: 'steps' as const, lineage: [], keep: 5, keepBest: false };
    const writer = await CheckpointWriter.open(other, { ...options, shape: { params: good.params.length, slots: good.optimizer.slots.length, optimizer: 'adam' }, trainRows: good.trainRows }, source.bytes);
    for (let at = 0; at < streamed.byteLength; at += 4099) await writer.push(streamed.subarray(at, at + 4099));
    const { dir: copy, header } = await writer.finish();
    assert.equal(header.loop.globalStep, 7);
    for (const f of ['model/weights.bin', 'optimizer.bin', 'best.bin']) {
      const a = await readFile(join(first, f)).catch(() => null);
      assert.deepEqual(await readFile(join(copy, f)).catch(() => null), a, f);
    }
    assert.deepEqual((await readCheckpoint(copy)).snapshot, good);
  });

  /** Copies checkpoint `from` to `to` with state.json edited and weights.bin replaced, and a manifest that verifies. */
  async function forge(dir: string, from: string, to: string, edit: (state: string) => string, params: Float32Array | null): Promise<void> {
    const src = join(dir, CHECKPOINTS_DIR, from);
    const dst = join(dir, CHECKPOINTS_DIR, `.forge-${to}`);
    await rm(dst, { recursive: true, force: true });
    const { cp } = await import('node:fs/promises');
    await cp(src, dst, { recursive: true });
    await writeFile(join(dst, 'state.json'), edit(await readFile(join(dst, 'state.json'), 'utf8')));
    if (params) await writeFile(join(dst, 'model', 'weights.bin'), new Uint8Array(params.buffer));
    const manifest = JSON.parse(await readFile(join(dst, 'manifest.json'), 'utf8')) as { files: Record<string, { sha256: string; bytes: number }> };
    for (const f of Object.keys(manifest.files)) {
      const data = await readFile(join(dst, f));
      manifest.files[f] = { sha256: createHash('sha256').update(data).digest('hex'), bytes: data.byteLength };
    }
    await writeFile(join(dst, 'manifest.json'), JSON.stringify(manifest));
    await rename(dst, join(dir, CHECKPOINTS_DIR, to));
  }

  test('resume refuses a spec whose model or data order changed, and lists each field', () => {
    const changed = parseJobSpec(
      SPEC.replace('units: 16', 'units: 17').replace('batchSize: 16', 'batchSize: 8').replace('epochs: 4', 'epochs: 9'),
    );
    const problems = resumeMismatches(spec, changed);
    assert.equal(problems.length, 2, problems.join('\n'));
    assert.match(problems[0]!, /^model: /);
    assert.match(problems[1]!, /^training\.batchSize: the checkpoint has 16, the spec has 8$/);
    assert.deepEqual(resumeMismatches(spec, parseJobSpec(SPEC.replace('learningRate: 0.02', 'learningRate: 0.01'))), []);
  });
});
