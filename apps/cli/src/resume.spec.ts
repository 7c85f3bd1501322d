/**
 * Checkpoints through the command, as a user meets them: Ctrl-C mid-run saves and exits
 * 0, --resume finishes the run, and the model is byte for byte the one an uninterrupted
 * run writes. Changing what a resume cannot honour is refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '../bin/ringtrain.mjs');

const JOB = `
name: sigint
data:
  source: synthetic:rows=6000,features=64,classes=4,seed=3
  split: { validation: 0.1, test: 0.1, seed: 1 }
  augment: { noise: 0.1 }
model:
  hidden:
    - { units: 128, activation: relu, dropout: 0.2 }
training:
  optimizer: { name: adam, learningRate: 0.003, schedule: { kind: cosine } }
  batchSize: 32
  epochs: 40
  seed: 5
checkpoint: { everySteps: 50, keep: 2 }
`;

function ringtrain(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Starts a run and sends SIGINT once it has finished `epochs` epochs. */
function interruptAfter(epochs: number, ...args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let sent = false;
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (!sent && new RegExp(`"epoch":${epochs},"epochs"`).test(stderr)) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    child.on('exit', (code) => done({ code, stderr }));
  });
}

test('Ctrl-C saves a checkpoint and exits 0; --resume ends with the same bytes as a run never interrupted', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtrain-resume-'));
  await writeFile(join(dir, 'job.yaml'), JOB);
  const whole = ringtrain('train', '--job', join(dir, 'job.yaml'), '--out', join(dir, 'whole'));
  assert.equal(whole.code, 0, whole.stderr);

  const cut = await interruptAfter(3, 'train', '--job', join(dir, 'job.yaml'), '--out', join(dir, 'cut'));
  assert.equal(cut.code, 0, cut.stderr);
  assert.match(cut.stderr, /interrupted: checkpoint saved/);
  const stoppedAt = JSON.parse(await readFile(join(dir, 'cut', 'metrics.json'), 'utf8')).steps as number;
  assert.ok(stoppedAt > 0 && stoppedAt < 40 * 150, `stopped at step ${stoppedAt}`);

  // Without --job, the checkpoint's own spec is used.
  const resumed = ringtrain('train', '--out', join(dir, 'cut'), '--resume');
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stderr, new RegExp(`"step":${stoppedAt},"reason":"stop","msg":"resuming"`));
  const a = await readFile(join(dir, 'whole', 'model', 'weights.bin'));
  const b = await readFile(join(dir, 'cut', 'model', 'weights.bin'));
  assert.ok(a.equals(b), 'the resumed model is byte for byte the uninterrupted one');
  const ma = JSON.parse(await readFile(join(dir, 'whole', 'metrics.json'), 'utf8'));
  const mb = JSON.parse(await readFile(join(dir, 'cut', 'metrics.json'), 'utf8'));
  assert.deepEqual(mb.final, ma.final);
  assert.deepEqual(
    mb.history.map((h: { train: unknown }) => h.train),
    ma.history.map((h: { train: unknown }) => h.train),
  );

  // The same spec on other data is refused: here, another synthetic seed.
  await writeFile(join(dir, 'other.yaml'), JOB.replace('seed=3', 'seed=4'));
  const other = ringtrain('train', '--job', join(dir, 'other.yaml'), '--out', join(dir, 'cut'), '--resume');
  assert.equal(other.code, 2);
  assert.match(other.stderr, /error RESUME_MISMATCH: .*\n\s+data: .*seed=4 has other values/);

  // A spec that changes the model is refused, naming the field.
  await writeFile(join(dir, 'wider.yaml'), JOB.replace('units: 128', 'units: 256'));
  const wider = ringtrain('train', '--job', join(dir, 'wider.yaml'), '--out', join(dir, 'cut'), '--resume');
  assert.equal(wider.code, 2);
  assert.match(wider.stderr, /error RESUME_MISMATCH: .*\n\s+model: the checkpoint has .*"units":128.*the spec has .*"units":256/);
});

test('--resume with nothing to resume is CHECKPOINT_NONE', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtrain-resume-'));
  const r = ringtrain('train', '--out', join(dir, 'empty'), '--resume');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /error CHECKPOINT_NONE: .*empty: no valid checkpoint/);
});
