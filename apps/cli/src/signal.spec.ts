/**
 * A signal in the middle of a long epoch, as Kubernetes sends one (SIGTERM, then SIGKILL
 * after a 30 s grace period) or a user presses Ctrl-C: `ringtrain train` stops between
 * steps, not at the epoch's end, saves its stop checkpoint, skips the final evaluation
 * and exits 0; --resume then ends with the bytes of a run never interrupted.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '../bin/ringtrain.mjs');

// One epoch of 9,000 steps (72,000 training rows, batch 8): about 10 s on this machine.
const STEPS_PER_EPOCH = 9000;
const JOB = `
name: long-epoch
data:
  source: synthetic:rows=80000,features=64,classes=4,seed=3
  split: { validation: 0.05, test: 0.05, seed: 1 }
model:
  hidden:
    - { units: 256, activation: relu, dropout: 0.1 }
    - { units: 256, activation: relu }
training:
  optimizer: { name: adam, learningRate: 0.001 }
  batchSize: 8
  epochs: 1
  seed: 5
`;

/** At most this long from the signal to the exit: a few steps of ~1 ms, the checkpoint write and the process's end. */
const STOP_BOUND_MS = 2000;

function ringtrain(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 180_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Starts `args`, sends `signal` `delayMs` after training began, and times the exit. */
function signalDuringTraining(signal: NodeJS.Signals, delayMs: number, ...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string; signalToExitMs: number }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let sentAt = 0;
    let armed = false;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (!armed && /"msg":"training"/.test(stderr)) {
        armed = true;
        setTimeout(() => {
          sentAt = performance.now();
          child.kill(signal);
        }, delayMs);
      }
    });
    child.on('exit', (code) => done({ code, stdout, stderr, signalToExitMs: performance.now() - sentAt }));
  });
}

/** Runs the job, stops it with `signal` 1.5 s into its epoch, and checks the stop. */
async function stopMidEpoch(t: TestContext, signal: NodeJS.Signals, job: string, out: string): Promise<{ steps: number }> {
  const cut = await signalDuringTraining(signal, 1500, 'train', '--job', job, '--out', out, '--json');
  t.diagnostic(`train: ${signal} to exit ${cut.signalToExitMs.toFixed(0)} ms`);
  assert.equal(cut.code, 0, cut.stderr);
  assert.ok(cut.signalToExitMs < STOP_BOUND_MS, `exited ${cut.signalToExitMs.toFixed(0)} ms after ${signal} (bound ${STOP_BOUND_MS} ms)`);
  const summary = JSON.parse(cut.stdout);
  assert.equal(summary.interrupted, true);
  assert.equal(summary.final, null, 'no final evaluation after a stop');
  assert.ok(summary.steps > 0 && summary.steps < STEPS_PER_EPOCH / 2, `stopped at step ${summary.steps} of the epoch's ${STEPS_PER_EPOCH}`);
  const checkpoints = readdirSync(join(out, 'checkpoints')).filter((n) => n.startsWith('step-'));
  assert.deepEqual(checkpoints, [`step-${String(summary.steps).padStart(9, '0')}`], 'one checkpoint, at the step the run stopped');
  return summary;
}

test('SIGTERM or Ctrl-C in a long epoch: train stops within a few steps, checkpoints, skips the final evaluation; --resume is bit-exact', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtrain-signal-'));
  const job = join(dir, 'job.yaml');
  await writeFile(job, JOB);

  await stopMidEpoch(t, 'SIGINT', job, join(dir, 'ctrl-c'));
  const cut = await stopMidEpoch(t, 'SIGTERM', job, join(dir, 'cut'));
  const resumed = ringtrain('train', '--out', join(dir, 'cut'), '--resume');
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stderr, new RegExp(`"step":${cut.steps},"reason":"stop","msg":"resuming"`));
  const whole = ringtrain('train', '--job', job, '--out', join(dir, 'whole'));
  assert.equal(whole.code, 0, whole.stderr);
  const a = await readFile(join(dir, 'whole', 'model', 'weights.bin'));
  const b = await readFile(join(dir, 'cut', 'model', 'weights.bin'));
  assert.ok(a.equals(b), 'the resumed model is byte for byte the uninterrupted one');
  const ma = JSON.parse(await readFile(join(dir, 'whole', 'metrics.json'), 'utf8'));
  const mb = JSON.parse(await readFile(join(dir, 'cut', 'metrics.json'), 'utf8'));
  assert.deepEqual(mb.final, ma.final);
  assert.equal(mb.steps, STEPS_PER_EPOCH);
});
