/**
 * A signal in the middle of a long epoch, for the cluster's commands as for `train`
 * (apps/cli/src/signal.spec.ts): `local` and `coordinator` stop the ring at a step
 * boundary, write the stop checkpoint and exit 0; a `worker` hands its state over and
 * exits 0. Each within a bound far below the epoch's length (and Kubernetes' 30 s grace
 * period), never at the epoch's end.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Cluster, coordinatorUrl, exited, killAll, ringtrain, stderrOf, tempDir, waitForStatus } from './cluster-harness.js';

// 36,000 training rows in batches of 8: an epoch of 4,500 steps, several seconds in a cluster here.
const STEPS_PER_EPOCH = 4500;
const JOB = `name: long-epoch
data:
  source: synthetic:rows=40000,features=32,classes=4,seed=3
  split: { validation: 0.05, test: 0.05, seed: 2 }
model:
  hidden:
    - { units: 128, activation: relu, dropout: 0.1 }
training:
  optimizer: { name: adam, learningRate: 0.001 }
  batchSize: 8
  epochs: 2
  seed: 5
  backend: wasm
cluster: { heartbeatMs: 250, heartbeatTimeoutMs: 3000, stopTimeoutMs: 5000, ringHeartbeatTimeoutMs: 1500 }
`;

/** From the signal to the exit: the ring's stop, the state upload, the checkpoint write and the process's end. */
const STOP_BOUND_MS = 3000;

/** Sends `signal` to `child` and resolves with its exit code and the milliseconds it took. */
async function timedStop(child: import('node:child_process').ChildProcess, signal: NodeJS.Signals): Promise<{ code: number; ms: number }> {
  const t0 = performance.now();
  child.kill(signal);
  const code = await exited(child, 60_000);
  return { code, ms: performance.now() - t0 };
}

/** The newest checkpoint's reason and step. */
function newestCheckpoint(out: string): { reason: string; step: number } {
  const newest = readdirSync(join(out, 'checkpoints')).filter((n) => n.startsWith('step-')).sort().at(-1)!;
  const state = JSON.parse(readFileSync(join(out, 'checkpoints', newest, 'state.json'), 'utf8')) as { reason: string; loop: { globalStep: number } };
  return { reason: state.reason, step: state.loop.globalStep };
}

describe('signals mid-epoch in a cluster', () => {
  let dir = '';
  let job = '';
  before(async () => {
    dir = await tempDir('signals');
    job = join(dir, 'job.yaml');
    await writeFile(job, JOB);
  });
  after(killAll);

  test('SIGTERM to ringtrain local: a stop checkpoint mid-epoch and exit 0 within the bound', async (t) => {
    const out = join(dir, 'local');
    const local = ringtrain(['local', '--job', job, '--out', out, '--workers', '2']);
    const port = Number(new URL(await coordinatorUrl(local, 'stderr', 60_000)).port);
    await waitForStatus(port, local, 'two workers past step 200', (s) => s.state === 'running' && s.ring.length === 2 && s.step >= 200);
    const { code, ms } = await timedStop(local, 'SIGTERM');
    t.diagnostic(`local: SIGTERM to exit ${ms.toFixed(0)} ms`);
    assert.equal(code, 0, stderrOf(local));
    assert.ok(ms < STOP_BOUND_MS, `local exited ${ms.toFixed(0)} ms after SIGTERM (bound ${STOP_BOUND_MS} ms)`);
    const checkpoint = newestCheckpoint(out);
    assert.equal(checkpoint.reason, 'stop');
    assert.ok(checkpoint.step >= 200 && checkpoint.step < STEPS_PER_EPOCH, `stop checkpoint at step ${checkpoint.step}, inside the first epoch of ${STEPS_PER_EPOCH}`);
  });

  test('SIGTERM to a worker, then to the coordinator: each exits 3 (stopped before the end) within the bound, the coordinator with a stop checkpoint', async (t) => {
    const cluster = new Cluster(job, join(dir, 'cluster'));
    await cluster.start();
    for (const id of ['a', 'b', 'c']) cluster.addWorker(id);
    await cluster.waitFor('three workers past step 200', (s) => s.state === 'running' && s.ring.length === 3 && s.step >= 200);

    const c = cluster.workers.get('c')!;
    const left = await timedStop(c, 'SIGTERM');
    t.diagnostic(`worker: SIGTERM to exit ${left.ms.toFixed(0)} ms`);
    assert.equal(left.code, 3, stderrOf(c));
    assert.ok(left.ms < STOP_BOUND_MS, `the worker exited ${left.ms.toFixed(0)} ms after SIGTERM (bound ${STOP_BOUND_MS} ms)`);
    const two = await cluster.waitFor('a and b training on', (s) => s.state === 'running' && s.ring.length === 2);
    assert.ok(two.events.some((e) => e.kind === 'leave' && e.message.startsWith('c ')), `c's leave is an event: ${JSON.stringify(two.events.slice(-6))}`);

    const before = await cluster.status();
    const stopped = await timedStop(cluster.coordinatorProcess, 'SIGTERM');
    t.diagnostic(`coordinator: SIGTERM to exit ${stopped.ms.toFixed(0)} ms`);
    assert.equal(stopped.code, 3, stderrOf(cluster.coordinatorProcess));
    assert.ok(stopped.ms < STOP_BOUND_MS, `the coordinator exited ${stopped.ms.toFixed(0)} ms after SIGTERM (bound ${STOP_BOUND_MS} ms)`);
    const checkpoint = newestCheckpoint(cluster.out);
    assert.equal(checkpoint.reason, 'stop');
    assert.ok(checkpoint.step >= before.step && checkpoint.step < STEPS_PER_EPOCH, `stop checkpoint at step ${checkpoint.step}; the ring was at ${before.step} of ${STEPS_PER_EPOCH}`);
  });
});
