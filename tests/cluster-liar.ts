/**
 * A token holder that lies, in its own process, against a running coordinator:
 *
 *   node --import tsx cluster-liar.ts PORT TOKEN CLAIM_STEP CLAIM_EPOCHS
 *
 * It tries, one connection after another (each waits for the job to be training again):
 *
 *   generation  register with generation 4294967295, so that every later ring would be
 *               numbered past a u32;
 *   fetch       register (learning the job's id), then ask for 2 million rows (8 MB
 *               asking for ~256 MB);
 *   address     register claiming to be ahead (CLAIM_STEP, CLAIM_EPOCHS) with the
 *               coordinator's own HTTP port as its ring address;
 *   state       register with the same claim and a real ring endpoint, and when chosen as
 *               the source, broadcast a state that cannot back it (the job's shape, but
 *               the initial loop at step 0).
 *
 * It prints one JSON line per attempt on stdout: how the coordinator answered (a close
 * code and reason, a `reject` code), then exits 0.
 */
import WebSocket from 'ws';
import { createRing, listen, type RingEndpoint } from '@ringtrain/allreduce';
import { type Architecture, paramLayout } from '@ringtrain/model';
import { bytesOf, type CoordinatorMessage, decodeCoordinatorMessage, encodeMessage, type Progress, PROTOCOL_VERSION, type WorkerMessage } from '@ringtrain/protocol';
import { INITIAL_LOOP } from '@ringtrain/train';
import { broadcastState } from '@ringtrain/worker';

const [port, token = '', claimStep, claimEpochs] = process.argv.slice(2);
const started = performance.now();
const base = `http://127.0.0.1:${port}`;
const claim: Progress = { step: Number(claimStep), epochs: Number(claimEpochs) };
const timing = { steps: 0, computeMs: 0, commMs: 0, waitMs: 0 };

interface Answer {
  readonly close?: { readonly code: number; readonly reason: string };
  readonly reject?: string;
}

/** One connection: `play` drives it; resolves with how it ended (a close, or a `reject` seen before it). */
function connection(play: (send: (m: WorkerMessage) => void, next: () => Promise<CoordinatorMessage>) => Promise<void>): Promise<Answer> {
  const ws = new WebSocket(`${base.replace('http', 'ws')}/worker`, { headers: { authorization: `Bearer ${token}` } });
  const inbox: CoordinatorMessage[] = [];
  let wake: (() => void) | null = null;
  let reject: string | undefined;
  ws.on('message', (data: Buffer) => {
    const m = decodeCoordinatorMessage(new Uint8Array(data));
    if (m.type === 'reject') reject = m.code;
    inbox.push(m);
    wake?.();
  });
  const next = async (): Promise<CoordinatorMessage> => {
    while (inbox.length === 0) await new Promise<void>((resolve) => (wake = resolve));
    return inbox.shift()!;
  };
  return new Promise((resolve) => {
    ws.on('error', () => {});
    ws.on('close', (code, reason) => resolve({ close: { code, reason: reason.toString() }, ...(reject ? { reject } : {}) }));
    ws.once('open', () => void play((m) => ws.readyState === ws.OPEN && ws.send(encodeMessage(m)), next).catch((err: Error) => ws.close(1000, err.message.slice(0, 100))));
  });
}

const register = (id: string, more: Partial<Extract<WorkerMessage, { type: 'register' }>> = {}): WorkerMessage => ({
  type: 'register',
  protocol: PROTOCOL_VERSION,
  id,
  address: { host: '127.0.0.1', port: 9 },
  backend: 'cpu',
  held: null,
  generation: -1,
  ...more,
});

async function jobMessage(next: () => Promise<CoordinatorMessage>): Promise<Extract<CoordinatorMessage, { type: 'job' }>> {
  for (;;) {
    const m = await next();
    if (m.type === 'job') return m;
  }
}

/** Waits until the job trains again with its honest workers. */
async function training(): Promise<void> {
  for (;;) {
    const s = (await (await fetch(`${base}/api/status`)).json()) as { state: string; ring: string[] };
    if (s.state === 'running' && s.ring.every((id) => !id.startsWith('liar'))) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

const report = (attempt: string, a: Answer): void => void process.stdout.write(`${JSON.stringify({ attempt, ...a, ms: Math.round(performance.now() - started) })}\n`);

await training();
report('generation', await connection(async (send) => send(register('liar-gen', { generation: 4294967295 }))));

await training();
/** The job's id, from its `job` message: what a claim of held state must name. */
let id = '';
report(
  'fetch',
  await connection(async (send, next) => {
    send(register('liar-fetch'));
    id = (await jobMessage(next)).jobId;
    send({ type: 'fetch', id: 1, split: 'train', indices: bytesOf(new Uint32Array(2_000_000)) });
  }),
);

await training();
/** Sends heartbeats with the claim until the connection ends, so that silence is not what removes the liar. */
const beating = (send: (m: WorkerMessage) => void): NodeJS.Timeout => setInterval(() => send({ type: 'heartbeat', generation: -1, progress: claim, timing, steps: [], epochs: [] }), 200);
report(
  'address',
  await connection(async (send) => {
    send(register('liar-address', { address: { host: '127.0.0.1', port: Number(port) }, held: { jobId: id, progress: claim } }));
    const beat = beating(send);
    setTimeout(() => clearInterval(beat), 60_000).unref();
  }),
);

await training();
const endpoint: RingEndpoint = await listen({ host: '127.0.0.1', port: 0, token });
report(
  'state',
  await connection(async (send, next) => {
    send(register('liar-state', { address: { host: '127.0.0.1', port: endpoint.port }, held: { jobId: id, progress: claim } }));
    const job = await jobMessage(next);
    const beat = beating(send);
    setTimeout(() => clearInterval(beat), 60_000).unref();
    for (;;) {
      const g = await next();
      if (g.type !== 'generation') continue;
      const ring = await createRing({ endpoint, membership: { generation: g.generation, rank: g.rank, world: g.world, peers: g.peers, token }, connectTimeoutMs: 10_000 });
      const params = paramLayout(job.arch as unknown as Architecture).size;
      // The job's shape, finite numbers, but the initial loop: not the progress it claimed.
      const state = { loop: INITIAL_LOOP, params: new Float32Array(params), optimizer: { name: 'adam' as const, iterations: 0, slots: new Float32Array(2 * params) }, bestParams: null, trainRows: job.dataset.rows.train };
      // Sent as a worker sends a state (the state sync's broadcasts), so that only its progress is a lie.
      await broadcastState(ring, g.rank === g.source ? state : undefined, g.source, { params, slots: 2 * params, optimizer: 'adam' }).catch(() => {});
      await ring.close();
      return;
    }
  }),
);
await endpoint.close();
process.exit(0);
