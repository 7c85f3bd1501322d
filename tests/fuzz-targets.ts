/**
 * The processes tests/fuzz.spec.ts attacks, one per run of this file:
 *
 *   node --expose-gc --import tsx fuzz-targets.ts coordinator OUTDIR TOKEN
 *     a coordinator (JobRuntime and its HTTP server, as `ringtrain coordinator` runs
 *     them) for the built-in Iris job on 127.0.0.1, its log (warn) on stderr
 *   node --expose-gc --import tsx fuzz-targets.ts ring TOKEN
 *     a worker's ring endpoint (libs/allreduce `listen`, with the token, as a worker
 *     creates it), waiting as rank 1 of 2 for its predecessor of generation 1
 *
 * Over IPC each says `{ type: 'ready', port }`, and answers `{ type: 'memory' }` with
 * its memory after full garbage collections, so that the test can check that what the
 * fuzzing allocated was given back. The ring target also reports every link a ring
 * handshake completed (`{ type: 'linked', generation }`), closes it, and then waits
 * for the next generation's predecessor.
 */
import { pino } from 'pino';
import { listen, type RingLogger } from '@ringtrain/allreduce';
import { JobRuntime, startServer } from '@ringtrain/coordinator';
import { selectBackend } from '@ringtrain/model';
import { openJob, validateJobSpec } from '@ringtrain/train';
import { RING_HANDSHAKE_MS, RING_SEGMENT_BYTES, type TargetMessage } from './fuzz-target-protocol.js';

const send = (m: TargetMessage): void => void process.send!(m);

async function memory(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  // Several rounds, with turns of the event loop between, so that finalizers and weak callbacks run.
  for (let i = 0; i < 4; i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const m = process.memoryUsage();
  send({ type: 'memory', heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, rss: m.rss });
}

async function coordinator(outDir: string, token: string): Promise<void> {
  const log = pino({ level: 'warn' }, pino.destination(2));
  await selectBackend('cpu');
  // Hundreds of generations form and break here on purpose (each fuzzing worker is lost at
  // once): the livelock guard would rightly stop the job after the fifth, so it is off.
  const spec = validateJobSpec({ name: 'fuzz', data: { source: 'builtin:iris' }, training: { epochs: 2 }, cluster: { maxFailedGenerations: 0 } });
  const job = await openJob(spec, null);
  const runtime = new JobRuntime({ job, outDir, log, backend: 'cpu', token });
  const server = await startServer({ runtime, token, host: '127.0.0.1', port: 0, log });
  send({ type: 'ready', port: server.port, pid: process.pid });
}

async function ring(token: string): Promise<void> {
  const log = pino({ level: 'warn' }, pino.destination(2)) as unknown as RingLogger;
  const endpoint = await listen({ host: '127.0.0.1', port: 0, token, handshakeTimeoutMs: RING_HANDSHAKE_MS, maxPendingConnections: 64, logger: log });
  let generation = 1;
  const expect = (): void => {
    // What createRing registers for rank 1 of 2 (RingEndpoint.expectSuccessor), without dialing a successor.
    endpoint
      .expectSuccessor({ generation, rank: 1, world: 2, segmentBytes: RING_SEGMENT_BYTES, token: Buffer.from(token), heartbeat: { intervalMs: 1000, timeoutMs: 5000 }, logger: log })
      .then((link) => {
        send({ type: 'linked', generation });
        link.close();
        endpoint.release(generation);
        generation++;
        expect();
      })
      .catch(() => {});
  };
  expect();
  send({ type: 'ready', port: endpoint.port, pid: process.pid, generation });
}

const [kind, ...args] = process.argv.slice(2);
process.on('message', (m: { type: string }) => {
  if (m.type === 'memory') void memory();
});
if (kind === 'coordinator') await coordinator(args[0]!, args[1]!);
else if (kind === 'ring') await ring(args[0]!);
else throw new Error(`unknown fuzz target ${kind}`);
