/**
 * One process of bench/scaling's lockstep probe (see lockstep.ts): opens the job as
 * `ringtrain train` does and runs libs/train's training loop on this rank's share of
 * every batch, with the Collective its mode names, reporting each step's timing.
 */
import { createRing, listen, type Ring, type RingPeer } from '@ringtrain/allreduce';
import { type Collective, openJob, SOLO, train, validateJobSpec } from '@ringtrain/train';
import { selectBackend } from '@ringtrain/model';
import type { FromRank, ToRank, StepTiming } from './lockstep-protocol.js';

const send = (msg: FromRank): void => void process.send!(msg);
const next = (): Promise<ToRank> => new Promise((done) => process.once('message', (m) => done(m as ToRank)));

const start = await next();
if (start.type !== 'start') throw new Error(`expected start, got ${start.type}`);
const { mode, rank, world } = start;
const spec = validateJobSpec(start.spec);
await selectBackend(spec.training.backend);
const job = await openJob(spec, null);

let ring: Ring | null = null;
if (mode === 'barrier' || mode === 'allreduce') {
  const endpoint = await listen({ host: '127.0.0.1', port: 0 });
  send({ type: 'listening', port: endpoint.port });
  const form = await next();
  if (form.type !== 'form') throw new Error(`expected form, got ${form.type}`);
  const peers: RingPeer[] = form.ports.map((port, r) => ({ rank: r, host: '127.0.0.1', port }));
  ring = await createRing({ endpoint, membership: { generation: 1, rank, world, peers, token: form.token } });
} else {
  send({ type: 'listening', port: 0 });
  await next();
}

const r = ring;
/** What each mode does where a worker all-reduces its gradient buffer. */
const collective: Collective =
  mode === 'single'
    ? SOLO
    : mode === 'independent'
      ? { rank, world, allReduce: async () => {} }
      : mode === 'barrier'
        ? { rank, world, allReduce: (_buffer, step) => r!.barrier({ step }) }
        : { rank, world, allReduce: (buffer, step) => r!.allReduce(buffer, { step }) };

const steps: StepTiming[] = [];
send({ type: 'ready' });
await next(); // 'go': every rank starts at once
await train({
  spec,
  data: job.data,
  mlp: job.mlp,
  loss: job.loss,
  collective,
  onStep: (p) =>
    steps.push({
      epoch: p.epoch,
      at: performance.now(),
      samples: p.stepSamples,
      computeMs: p.computeMs,
      commMs: p.commMs,
      waitMs: mode === 'allreduce' || mode === 'barrier' ? Math.min(p.commMs, r!.stats.lastOpWaitMs) : 0,
    }),
});
send({ type: 'steps', steps });
await ring?.close();
process.exit(0);
