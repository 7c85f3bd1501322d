/**
 * Faults on real processes: a worker killed with -9 at a random moment of a step, a
 * worker stopped with SIGSTOP (and woken later), and the coordinator killed with -9 and
 * restarted. Each time the job completes, loses no committed step (the next generation
 * starts at or after the last step reported before the fault), and ends with the
 * weights and every step's loss of an undisturbed `ringtrain train` run, bit for bit
 * (the exact reduction, cluster-harness.ts), over 2,000 steps.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { assertNoStepLost, assertSameTraining, Cluster, clusterLog, exited, killAll, referenceRun, stderrOf } from './cluster-harness.js';

const EPOCHS = 40; // 2,000 steps

describe('the cluster survives faults', () => {
  let dir = '';
  let job = '';
  let reference = '';

  before(async () => {
    ({ dir, job, reference } = await referenceRun('faults', EPOCHS));
  });
  after(killAll);

  /** Three workers training, past `step`. */
  async function threeWorkers(name: string, step: number): Promise<Cluster> {
    const cluster = new Cluster(job, join(dir, name));
    await cluster.start();
    for (const id of ['a', 'b', 'c']) cluster.addWorker(id);
    await cluster.waitFor(`three workers past step ${step}`, (s) => s.state === 'running' && s.ring.length === 3 && s.step >= step);
    return cluster;
  }

  /** The job completed with the reference's weights and every step's loss; no generation started before `committed`. */
  async function sameAsReference(cluster: Cluster, committed: number, after: number): Promise<void> {
    await cluster.completed();
    const { generations } = clusterLog(cluster.out);
    assertNoStepLost(generations, after, committed);
    assertSameTraining(reference, cluster.out, `fault at step ${committed}; generations ${JSON.stringify(generations)}`);
  }

  test('kill -9 of a worker mid-step: the survivors regroup within seconds and finish', async () => {
    const at = 60 + Math.floor(Math.random() * 120);
    const cluster = await threeWorkers('kill-worker', at);
    const before = await cluster.status();
    cluster.workers.get('c')!.kill('SIGKILL');
    const t0 = Date.now();
    const regrouped = await cluster.waitFor('two workers training', (s) => s.state === 'running' && s.ring.length === 2 && !s.ring.includes('c'));
    const seconds = (Date.now() - t0) / 1000;
    assert.ok(seconds < 5, `regrouped after ${seconds} s`);
    assert.ok(regrouped.events.some((e) => e.kind === 'lost' && e.message.startsWith('c lost')), 'the loss of c is an event');
    await sameAsReference(cluster, before.step, before.generation);
  });

  test('a worker whose ring address nobody can reach: its peer reports it, the coordinator checks, excludes it, and the others finish', async () => {
    const cluster = new Cluster(job, join(dir, 'unreachable'));
    await cluster.start();
    for (const id of ['a', 'b']) cluster.addWorker(id);
    const before = await cluster.waitFor('two workers past step 40', (s) => s.state === 'running' && s.ring.length === 2 && s.step >= 40);
    // c listens on 127.0.0.2 but advertises 127.0.0.1: whichever of a and b dials it is refused.
    const c = cluster.addWorker('c', { RINGTRAIN_BIND_HOST: '127.0.0.2' });
    const excluded = await cluster.waitFor('c excluded', (s) => s.events.some((e) => e.kind === 'excluded'), 30_000);
    const event = excluded.events.find((e) => e.kind === 'excluded')!;
    assert.match(event.message, /^c excluded: (a|b) could not connect to its ring address 127\.0\.0\.1:\d+, nor could the coordinator \(ECONNREFUSED\)$/);
    assert.equal(await exited(c, 20_000), 6, 'the excluded worker exits 6 (a new process elsewhere may do: a Job counts it as a failure)');
    assert.match(stderrOf(c), /PEER_UNREACHABLE/);
    await sameAsReference(cluster, before.step, before.generation);
    assert.equal(clusterLog(cluster.out).generations.at(-1)!.world, 2, 'a and b finished the job by themselves');
  });

  test('SIGSTOP of a worker: found by deadlines, the others go on; woken, it rejoins', async () => {
    const cluster = await threeWorkers('stop-worker', 60);
    const before = await cluster.status();
    const c = cluster.workers.get('c')!;
    c.kill('SIGSTOP');
    try {
      await cluster.waitFor('two workers training without c', (s) => s.state === 'running' && s.ring.length === 2 && !s.ring.includes('c'), 20_000);
    } finally {
      c.kill('SIGCONT');
    }
    await cluster.waitFor('c back in the ring', (s) => s.ring.length === 3 && s.ring.includes('c'), 20_000);
    await sameAsReference(cluster, before.step, before.generation);
  });

  test('SIGTERM to the coordinator: it checkpoints the members state and exits 3; restarted, the job goes on', async () => {
    const cluster = await threeWorkers('term-coordinator', 100);
    const before = await cluster.status();
    cluster.coordinatorProcess.kill('SIGTERM');
    assert.equal(await exited(cluster.coordinatorProcess, 30_000), 3, 'stopped before the end: a Job runs it again');
    const newest = readdirSync(join(cluster.out, 'checkpoints')).sort().at(-1)!;
    const state = JSON.parse(readFileSync(join(cluster.out, 'checkpoints', newest, 'state.json'), 'utf8')) as { reason: string; loop: { globalStep: number } };
    assert.equal(state.reason, 'stop');
    assert.ok(state.loop.globalStep >= before.step, `checkpoint at ${state.loop.globalStep}, workers were at ${before.step}`);
    for (const w of cluster.workers.values()) assert.equal(w.exitCode, null, 'the workers wait for the coordinator');
    await cluster.start();
    await sameAsReference(cluster, state.loop.globalStep, before.generation);
  });

  test('kill -9 of the coordinator: restarted with the same directory, it resumes and the workers rejoin by themselves', async () => {
    const cluster = await threeWorkers('kill-coordinator', 100);
    const before = await cluster.status();
    cluster.coordinatorProcess.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 500));
    await cluster.start();
    const back = await cluster.waitFor('three workers back', (s) => s.state === 'running' && s.ring.length === 3, 30_000);
    assert.ok(back.generation > before.generation, `generation ${back.generation} follows ${before.generation}`);
    assert.ok(
      back.events.some((e) => e.kind === 'generation' && / \(state from [abc]\)$/.test(e.message)),
      'the workers state, ahead of the last checkpoint, was used',
    );
    await sameAsReference(cluster, before.step, before.generation);
  });
});
