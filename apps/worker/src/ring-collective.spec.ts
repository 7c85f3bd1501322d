/**
 * Issues 2 and 3 joined: W training loops in one process, summing their gradients over
 * a real ring on loopback, follow the single-process trajectory (up to float summation
 * order) and end with bit-identical weights on every rank.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createRing, listen, type Ring, type RingEndpoint } from '@ringtrain/allreduce';
import { prepareDataset, type PreparedDataset } from '@ringtrain/data';
import { Mlp, selectBackend } from '@ringtrain/model';
import {
  architectureFor,
  decodeSnapshot,
  encodeSnapshot,
  type JobSpec,
  parseJobSpec,
  resolveLoss,
  train,
  type TrainResult,
  type TrainSnapshot,
} from '@ringtrain/train';
import { ringCollective } from './ring-collective.js';

const SPEC = `
name: ring
data:
  source: synthetic:rows=400,features=12,classes=3,seed=6
  split: { validation: 0.2, test: 0.1, seed: 2 }
  augment: { noise: 0.1 }
model:
  hidden:
    - { units: 24, activation: relu, dropout: 0.2 }
training:
  optimizer: { name: adam, learningRate: 0.01 }
  batchSize: 20
  epochs: 2
  seed: 4
`;

let spec: JobSpec;
let data: PreparedDataset;
const endpoints: RingEndpoint[] = [];
const rings: Ring[] = [];

/** Trains, keeping the final snapshot (what a joining worker would be sent). */
async function run(collective?: ReturnType<typeof ringCollective>): Promise<TrainResult & { snapshot: TrainSnapshot }> {
  const mlp = Mlp.create(architectureFor(spec, data.train.cols, data.task), spec.training.seed);
  let snapshot: TrainSnapshot | undefined;
  const result = await train({
    spec,
    data,
    mlp,
    loss: resolveLoss(spec, data.task),
    ...(collective ? { collective } : {}),
    checkpoint: { everySteps: 0, everyEpoch: false, save: async (s) => void (snapshot = s) },
  });
  return { ...result, snapshot: snapshot! };
}

function relL2(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  a.forEach((v, i) => {
    num += (v - b[i]!) ** 2;
    den += b[i]! ** 2;
  });
  return Math.sqrt(num / den);
}

before(async () => {
  await selectBackend('cpu');
  spec = parseJobSpec(SPEC);
  data = await prepareDataset({ ...spec.data, baseDir: '.' });
});

after(async () => {
  await Promise.all(rings.map((r) => r.close()));
  await Promise.all(endpoints.map((e) => e.close()));
});

test('three workers over a loopback ring: the single-process trajectory, identical bits on every rank', async () => {
  const solo = await run();
  const world = 3;
  for (let r = 0; r < world; r++) endpoints.push(await listen({ host: '127.0.0.1', port: 0 }));
  const peers = endpoints.map((e, rank) => ({ rank, host: e.host, port: e.port }));
  rings.push(
    ...(await Promise.all(
      endpoints.map((endpoint, rank) => createRing({ endpoint, membership: { generation: 1, rank, world, peers, token: 'job-token' } })),
    )),
  );
  const results = await Promise.all(rings.map((ring) => run(ringCollective(ring))));
  for (const r of results) assert.deepEqual(r.mlp.params, results[0]!.mlp.params, 'every rank holds the same bits');
  const err = relL2(results[0]!.mlp.params, solo.mlp.params);
  assert.ok(err < 1e-4, `relative L2 distance from the single-process run: ${err}`);
  assert.equal(results[0]!.steps, solo.steps);
  assert.ok(Math.abs(results[0]!.history[1]!.train.loss - solo.history[1]!.train.loss) < 1e-4);
  assert.equal(rings[0]!.stats.ops, solo.steps, 'one all-reduce per step');

  // State sync as a new generation would do it: rank 0's state, broadcast, decoded.
  const shape = { params: solo.mlp.layout.size, slots: results[0]!.snapshot.optimizer.slots.length, optimizer: 'adam' as const };
  const received = await Promise.all(rings.map((ring) => ring.broadcast(ring.rank === 0 ? encodeSnapshot(results[0]!.snapshot) : undefined, 0)));
  for (const [rank, bytes] of received.entries()) {
    const snap = decodeSnapshot(bytes, shape);
    assert.deepEqual(snap.params, results[rank]!.snapshot.params);
    assert.deepEqual(snap.optimizer, results[rank]!.snapshot.optimizer);
    assert.equal(snap.loop.globalStep, solo.steps);
  }
});
