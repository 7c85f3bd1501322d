/**
 * A model of 20 million parameters in a cluster: its state (weights, Adam's two slots,
 * best weights: ~330 MB) is five times the old 64 MiB message limit, which failed every
 * checkpoint of a model over ~4 million parameters and looped without end. Here it
 * checkpoints mid-run, survives a worker killed with -9 (the ring regroups from the
 * survivor's state), gives its state to a joiner over the ring, resumes after the
 * coordinator is killed and restarted, and ends with the weights of the same job run in
 * one process. A job whose plan does not fit its memory limit is refused at once, and a
 * checkpoint that can never arrive (a proxy that cuts any connection after 32 MiB) stops
 * the job with GENERATION_LIVELOCK (after a minute of failures) instead of looping.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FaultProxy } from './allreduce-proxy.js';
import { assertCloseTraining, Cluster, clusterLog, exited, killAll, ringtrain, run, stderrOf, tempDir } from './cluster-harness.js';

/** 32 features, 4,400 and 4,400 units, 4 classes: 20,024,804 parameters. */
const PARAMS = 32 * 4400 + 4400 + 4400 * 4400 + 4400 + 4400 * 4 + 4;
const STEPS_PER_EPOCH = 12; // 384 training rows / 32
const EPOCHS = 3;

function bigJob(o: { everySteps: number; maxFailedGenerations?: number }): string {
  return `name: large-model
data:
  source: synthetic:rows=480,features=32,classes=4,seed=3
  split: { validation: 0.1, test: 0.1, seed: 2 }
model:
  hidden:
    - { units: 4400, activation: relu }
    - { units: 4400, activation: tanh }
training:
  optimizer: { name: adam, learningRate: 0.0001 }
  batchSize: 32
  epochs: ${EPOCHS}
  seed: 5
  backend: wasm
  earlyStopping: { patience: 5 }
checkpoint: { everySteps: ${o.everySteps}, keep: 2 }
cluster: { heartbeatMs: 250, heartbeatTimeoutMs: 5000, stopTimeoutMs: 10000, ringHeartbeatTimeoutMs: 3000, startWorkers: 2${o.maxFailedGenerations ? `, maxFailedGenerations: ${o.maxFailedGenerations}` : ''} }
`;
}

/** The bytes of a checkpoint directory's state files. */
function stateBytes(dir: string): number {
  return ['model/weights.bin', 'optimizer.bin', 'best.bin'].reduce((a, f) => a + (statSync(join(dir, f), { throwIfNoEntry: false })?.size ?? 0), 0);
}

describe('a 20-million-parameter model in a cluster', () => {
  let dir = '';
  let job = '';
  let reference = '';

  before(async () => {
    dir = await tempDir('large');
    job = join(dir, 'job.yaml');
    await writeFile(job, bigJob({ everySteps: 4 }));
    reference = join(dir, 'train');
    await run(['train', '--job', job, '--out', reference], 300_000);
  });
  after(killAll);

  test('checkpoints, a kill -9 of a worker, a joiner, a coordinator restart: the weights of one process', async () => {
    const cluster = new Cluster(job, join(dir, 'cluster'));
    await cluster.start();
    cluster.addWorker('a');
    cluster.addWorker('b');
    const first = await cluster.waitFor('a checkpoint mid-run', (s) => s.checkpoints.length > 0, 120_000);
    const ckpt = first.checkpoints[0]!;
    assert.ok(stateBytes(ckpt.dir) > 3 * 64 * 2 ** 20, `a checkpoint of ${stateBytes(ckpt.dir)} bytes`);
    assert.equal(statSync(join(ckpt.dir, 'model', 'weights.bin')).size, 4 * PARAMS);

    cluster.workers.get('b')!.kill('SIGKILL');
    const alone = await cluster.waitFor('a alone', (s) => s.state === 'running' && s.ring.length === 1 && s.generation > first.generation, 60_000);
    cluster.addWorker('c');
    const joined = await cluster.waitFor('c joined', (s) => s.state === 'running' && s.ring.length === 2 && s.ring.includes('c'), 60_000);
    assert.ok(
      joined.events.some((e) => e.kind === 'generation' && e.message.startsWith(`generation ${joined.generation}: `) && e.message.endsWith('(state from a)')),
      `c took a's state over the ring: ${JSON.stringify(joined.events.slice(-4))}`,
    );
    assert.ok(alone.step < STEPS_PER_EPOCH * EPOCHS);

    cluster.coordinatorProcess.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 300));
    await cluster.start();
    await cluster.waitFor('the workers back', (s) => s.state === 'running' && s.ring.length === 2, 60_000);
    await cluster.completed(300_000);
    // The float32 reduction (this suite is about the state paths at 20M parameters): equal up to summation order.
    assertCloseTraining(reference, cluster.out, 1e-4, 'kill -9 of b, c joined, coordinator killed and restarted');
    const log = clusterLog(cluster.out);
    assert.ok((log.messages.chunk ?? 0) > 0, 'the states went as transfers');
  });

  test('a job whose memory plan does not fit is refused at once with MEMORY_PLAN_EXCEEDED', async () => {
    const local = ringtrain(['local', '--job', job, '--out', join(dir, 'too-big'), '--workers', '2', '--memory-limit', '256Mi', '--max-restarts', '0']);
    const started = Date.now();
    assert.equal(await exited(local, 60_000), 2);
    const err = stderrOf(local);
    assert.match(err, /MEMORY_PLAN_EXCEEDED/);
    assert.match(err, /CLI_WORKERS_EXITED/);
    assert.ok(Date.now() - started < 30_000, `refused after ${Date.now() - started} ms`);
    assert.deepEqual(readdirSync(join(dir, 'too-big')).filter((f) => f === 'checkpoints' || f === 'model'), []);
  });

  test('a checkpoint that can never arrive (a proxy that cuts every connection after 32 MiB) stops the job with GENERATION_LIVELOCK', async () => {
    const liveJob = join(dir, 'livelock.yaml');
    await writeFile(liveJob, bigJob({ everySteps: 2, maxFailedGenerations: 3 }));
    const cluster = new Cluster(liveJob, join(dir, 'livelock'));
    await cluster.start();
    const proxy = await FaultProxy.start(cluster.port, { cutAfterBytes: 32 * 2 ** 20 });
    try {
      for (const id of ['a', 'b']) cluster.addWorker(id, { RINGTRAIN_COORDINATOR: `http://127.0.0.1:${proxy.port}` });
      const code = await exited(cluster.coordinatorProcess, 300_000);
      const err = stderrOf(cluster.coordinatorProcess);
      assert.equal(code, 2, err);
      assert.match(err, /GENERATION_LIVELOCK/);
      assert.ok(proxy.overBudget >= 3, `${proxy.overBudget} connections cut`);
      const log = clusterLog(cluster.out);
      assert.ok(log.events.some((e) => /GENERATION_LIVELOCK/.test(e.message)), 'the event list says why');
      assert.equal(readdirSync(join(cluster.out, 'checkpoints')).filter((n) => n.startsWith('step-')).length <= 1, true, 'no steps checkpoint arrived (at most the stop one)');
    } finally {
      await proxy.close();
    }
  });
});
