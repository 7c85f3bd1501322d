/**
 * Invariant 1 of DESIGN.md on real processes: the same job (dropout and input noise on)
 * trained by `ringtrain train`, by `ringtrain local` with 2 and 3 workers, and by a
 * world that grows from 1 to 3 and shrinks to 2 mid-run, has the same loss at every
 * step and the same final weights, bit for bit, over 2,000 steps: the job sums its
 * gradients with the exact reduction (cluster-harness.ts).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { assertSameTraining, Cluster, clusterLog, exited, killAll, referenceRun, run, STEPS_PER_EPOCH, weights } from './cluster-harness.js';

const EPOCHS = 40; // 2,000 steps


describe('a cluster trains the same model as one process', () => {
  let dir = '';
  let job = '';
  let reference = '';

  before(async () => {
    ({ dir, job, reference } = await referenceRun('equivalence', EPOCHS));
  });
  after(killAll);

  for (const workers of [2, 3]) {
    test(`local --workers ${workers}: every step's loss and the final weights match`, async () => {
      const out = join(dir, `local-${workers}`);
      await run(['local', '--job', job, '--workers', String(workers), '--out', out]);
      assertSameTraining(reference, out);
      const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')) as { steps: number; history: unknown[]; seconds: number };
      assert.equal(metrics.steps, EPOCHS * STEPS_PER_EPOCH);
      assert.equal(metrics.history.length, EPOCHS);
      // Off the hot path (invariant 3): no message to the coordinator scales with the steps.
      // Rows are fetched once per epoch (in chunks) plus once per split for evaluation,
      // checkpoints come on schedule, heartbeats by the clock.
      const m = clusterLog(out).messages;
      const checkpoints = EPOCHS * STEPS_PER_EPOCH / 20 + EPOCHS;
      assert.ok((m.fetch ?? 0) <= workers * (EPOCHS + 4), `fetch ${m.fetch}`);
      assert.ok((m.checkpoint ?? 0) <= checkpoints, `checkpoint ${m.checkpoint}`);
      const beats = workers * (metrics.seconds / 0.25 + 4); // heartbeatMs 250, plus one replay per generation
      assert.ok((m.heartbeat ?? 0) <= beats, `heartbeat ${m.heartbeat} > ${beats}`);
      // States travel as transfers of 4 MiB chunks: one chunk per 4 MiB of each checkpoint
      // and of the final weights each rank sends, and one ack per chunk of the state the
      // coordinator sent the first generation's source.
      const perState = Math.ceil((stateBytes(join(out, 'checkpoints')) + 65_536) / (4 * 2 ** 20)); // + the header
      assert.ok((m.chunk ?? 0) <= (m.checkpoint ?? 0) * perState + workers, `chunk ${m.chunk}`);
      assert.ok((m.ack ?? 0) <= perState, `ack ${m.ack}`);
      const other = Object.entries(m).filter(([t]) => !['fetch', 'checkpoint', 'heartbeat', 'chunk', 'ack'].includes(t));
      assert.deepEqual(Object.fromEntries(other), { register: workers, done: workers });
    });
  }

  test('the same worker count twice gives bit-identical weights', async () => {
    const again = join(dir, 'local-2-again');
    await run(['local', '--job', job, '--workers', '2', '--out', again]);
    assert.deepEqual(readFileSync(join(again, 'model', 'weights.bin')), readFileSync(join(dir, 'local-2', 'model', 'weights.bin')));
  });

  test('fine-tuning (init from the run above: a new head, the first layer frozen) gives the same model on the cluster', async () => {
    const ftJob = join(dir, 'finetune.yaml');
    await writeFile(
      ftJob,
      `name: cluster-finetune
data:
  source: synthetic:rows=3000,features=32,classes=4,seed=3
  classes: ["1", "2", "3"]
  split: { validation: 0.1, test: 0.1, seed: 2 }
  augment: { noise: 0.05 }
init: { from: ${reference}, freeze: [0], replaceHead: true }
training: { optimizer: { name: adam, learningRate: 0.001 }, batchSize: 48, reduction: exact, microBatch: 8, epochs: 3, seed: 9, backend: wasm }
cluster: { heartbeatMs: 250 }
`,
    );
    const single = join(dir, 'finetune-train');
    const cluster = join(dir, 'finetune-local');
    await run(['train', '--job', ftJob, '--out', single]);
    await run(['local', '--job', ftJob, '--workers', '2', '--out', cluster]);
    assertSameTraining(single, cluster);
    // dense_0's kernel (32 x 256) and bias come first in weights.bin: frozen, bit for bit.
    const frozen = 32 * 256 + 256;
    assert.deepEqual(weights(cluster).subarray(0, frozen), weights(reference).subarray(0, frozen));
    const head = weights(cluster).length - (256 * 3 + 3);
    assert.equal(head, weights(reference).length - (256 * 4 + 4), 'a new three-class head replaced the four-class one');
  });

  test('a world that grows from 1 to 3 and shrinks to 2 mid-run follows the same trajectory', async () => {
    const out = join(dir, 'elastic');
    const cluster = new Cluster(job, out);
    await cluster.start();
    cluster.addWorker('a');
    await cluster.waitFor('one worker training past step 40', (s) => s.state === 'running' && s.ring.length === 1 && s.step >= 40);
    cluster.addWorker('b');
    const c = cluster.addWorker('c');
    await cluster.waitFor('three workers training', (s) => s.state === 'running' && s.ring.length === 3);
    const grown = (await cluster.status()).step;
    await cluster.waitFor('progress with three', (s) => s.step >= grown + 30 && s.ring.length === 3);
    c.kill('SIGTERM'); // a graceful leave: c finishes its step and hands over
    assert.equal(await exited(c, 30_000), 3, 'left before the end');
    const shrunk = await cluster.waitFor('two workers training', (s) => s.state === 'running' && s.ring.length === 2);
    assert.ok(shrunk.step < EPOCHS * STEPS_PER_EPOCH, 'the world changed before the end');
    await cluster.completed();

    const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')) as { steps: number };
    assert.equal(metrics.steps, EPOCHS * STEPS_PER_EPOCH);
    const worlds = clusterLog(out).generations.map((g) => g.world);
    assert.deepEqual([worlds[0], worlds.at(-1)], [1, 2], `worlds ${worlds.join(' -> ')}`);
    assert.ok(worlds.includes(3), `worlds ${worlds.join(' -> ')}`);
    assertSameTraining(reference, out, `worlds ${worlds.join(' -> ')}`);
  });
});

/** The bytes of the largest state in a run's checkpoints: its weights, optimizer slots and best weights. */
function stateBytes(checkpoints: string): number {
  const sizes = readdirSync(checkpoints)
    .filter((n) => n.startsWith('step-'))
    .map((n) => ['model/weights.bin', 'optimizer.bin', 'best.bin'].reduce((a, f) => a + (statSync(join(checkpoints, n, f), { throwIfNoEntry: false })?.size ?? 0), 0));
  return Math.max(...sizes);
}
