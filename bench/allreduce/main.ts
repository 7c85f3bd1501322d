/**
 * All-reduce benchmark: W rank processes on loopback for W = 2 and 4 and 1, 16 and
 * 64 MiB. Prints one JSON line per configuration: world, bytes, median ms (of the
 * slowest rank, per iteration), bus bandwidth in GB/s (2(W-1)/W x bytes / s, as NCCL
 * reports it), the raw TCP throughput between two Node processes measured in the same
 * run, and their ratio; then, per operation and rank, CPU user and system ms and minor
 * page faults (see the Performance section of docs/allreduce.md).
 *
 * --tls also forms a second ring of the same rank processes over TLS (certificates made
 * with openssl for the run, tests/tls-certs.ts) and, for each size, times it right after
 * the plain one: `tlsMedianMs`, `tlsBusGBps`, `tlsRatio` (TLS over plain bus bandwidth)
 * and the TLS ring's CPU time per operation and rank.
 *
 *   npm run allreduce -w bench [-- --worlds 2,4 --sizes 1,16,64 --iterations 20 --segment 1048576 --slots 8 --tls]
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { busBytes, DEFAULT_SEGMENT_BYTES } from '@ringtrain/allreduce';
import { makeCerts } from '../../tests/tls-certs.js';
import type { FromRank, FromTcp, ToRank, Transport } from './protocol.js';

const { values } = parseArgs({
  options: {
    worlds: { type: 'string', default: '2,4' },
    sizes: { type: 'string', default: '1,16,64' },
    iterations: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '3' },
    segment: { type: 'string', default: String(DEFAULT_SEGMENT_BYTES) },
    slots: { type: 'string', default: '8' },
    // Extra node flags for the rank processes, e.g. '--cpu-prof --cpu-prof-dir=prof'.
    'rank-flags': { type: 'string', default: '' },
    tls: { type: 'boolean', default: false },
  },
});
const worlds = values.worlds.split(',').map(Number);
const sizes = values.sizes.split(',').map((s) => Number(s) * 1024 * 1024);
const iterations = Number(values.iterations);
const warmup = Number(values.warmup);
const segmentBytes = Number(values.segment);
const sendSlots = Number(values.slots);
const MiB = 1024 * 1024;

const here = (file: string): string => fileURLToPath(new URL(file, import.meta.url));
const children = new Set<ChildProcess>();
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));

const rankFlags = values['rank-flags'].split(' ').filter((f) => f !== '');
const certs = values.tls ? makeCerts() : undefined;
const rankArgs = certs ? [certs.cert, certs.key, certs.ca] : [];

function spawn(file: string, args: string[] = [], flags: string[] = []): ChildProcess {
  const child = fork(here(file), args, { execArgv: ['--import', 'tsx', ...flags], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

function next<T>(child: ChildProcess, type: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (msg: { type: string; message?: string }): void => {
      if (msg.type === type) {
        child.off('message', onMessage);
        resolve(msg as T);
      } else if (msg.type === 'error') reject(new Error(msg.message));
    };
    child.on('message', onMessage);
    child.once('exit', (code) => reject(new Error(`child exited with ${code}`)));
  });
}

async function tcpThroughput(bytes: number): Promise<number> {
  const server = spawn('tcp.ts', ['server']);
  const { port } = await next<Extract<FromTcp, { type: 'listening' }>>(server, 'listening');
  const done = next<Extract<FromTcp, { type: 'done' }>>(server, 'done');
  spawn('tcp.ts', ['client', String(port), String(bytes)]);
  const r = await done;
  return r.bytes / (r.ms / 1000) / 1e9;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

type Times = Extract<FromRank, { type: 'times' }>;

/** One configuration on one transport: every rank's times for `iterations` all-reduces of `bytes`. */
async function measure(ranks: readonly ChildProcess[], transport: Transport, bytes: number): Promise<Times[]> {
  const results = ranks.map((r) => next<Times>(r, 'times'));
  ranks.forEach((r) => r.send({ type: 'run', transport, bytes, warmup, iterations } satisfies ToRank));
  return Promise.all(results);
}

/** The median of the slowest rank per iteration, its bus bandwidth, and CPU time and minor faults per operation and rank (median over iterations, mean over ranks). */
function summary(reports: readonly Times[], world: number, bytes: number) {
  const slowest = Array.from({ length: iterations }, (_, i) => Math.max(...reports.map((t) => t.ms[i]!)));
  const ms = median(slowest);
  const perRank = (pick: (t: Times) => readonly number[]): number => +(reports.reduce((sum, t) => sum + median(pick(t)), 0) / world).toFixed(2);
  return {
    medianMs: +ms.toFixed(2),
    busGBps: +(busBytes(bytes, world) / (ms / 1000) / 1e9).toFixed(3),
    userMs: perRank((t) => t.userMs),
    systemMs: perRank((t) => t.systemMs),
    pageFaults: Math.round(perRank((t) => t.faults)),
  };
}

const tcpGBps = await tcpThroughput(1024 * MiB);
for (const world of worlds) {
  const ranks = Array.from({ length: world }, () => spawn('rank.ts', rankArgs, rankFlags));
  const ports = await Promise.all(ranks.map((r) => next<Extract<FromRank, { type: 'listening' }>>(r, 'listening')));
  const transports: Transport[] = certs ? ['plain', 'tls'] : ['plain'];
  for (const transport of transports) {
    const peers = ports.map((p, rank) => ({ rank, host: '127.0.0.1', port: transport === 'tls' ? p.tlsPort! : p.port }));
    const formed = ranks.map((r) => next(r, 'formed'));
    ranks.forEach((r, rank) => r.send({ type: 'form', transport, segmentBytes, sendSlots, membership: { generation: 1, rank, world, peers, token: 'bench-token' } } satisfies ToRank));
    await Promise.all(formed);
  }
  for (const bytes of sizes) {
    const { medianMs, busGBps, userMs, systemMs, pageFaults } = summary(await measure(ranks, 'plain', bytes), world, bytes);
    const tls = certs ? summary(await measure(ranks, 'tls', bytes), world, bytes) : undefined;
    console.log(JSON.stringify({
      world, bytes, segmentBytes, sendSlots, medianMs, busGBps, tcpGBps: +tcpGBps.toFixed(3), ratio: +(busGBps / tcpGBps).toFixed(3), userMs, systemMs, pageFaults,
      ...(tls ? { tlsMedianMs: tls.medianMs, tlsBusGBps: tls.busGBps, tlsRatio: +(tls.busGBps / busGBps).toFixed(3), tlsUserMs: tls.userMs, tlsSystemMs: tls.systemMs } : {}),
    }));
  }
  ranks.forEach((r) => r.send({ type: 'exit' } satisfies ToRank));
  await Promise.all(ranks.map((r) => new Promise((resolve) => r.once('exit', resolve))));
}
