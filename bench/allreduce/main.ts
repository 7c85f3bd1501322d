/**
 * All-reduce benchmark: W rank processes on loopback for W = 2, 3 and 4 and 1, 16, 64
 * and 256 MiB. Prints one JSON line per configuration: world, bytes, median ms (of the
 * slowest rank, per iteration), bus bandwidth in GB/s (2(W-1)/W x bytes / s, as NCCL
 * reports it), the raw TCP throughput between two Node processes measured in the same
 * run, and their ratio; per operation and rank, CPU user and system ms and minor page
 * faults (see the Performance section of docs/allreduce.md); and `peers`: the same
 * all-reduce by PyTorch's gloo and Open MPI over TCP, timed the same way right after
 * ringtrain's ring at that world, with ringtrain's ratio to each (peers.ts; a first line
 * says which peers were found, and how to install the others).
 *
 * The ranks run with the glibc settings a worker gets (--malloc worker, the default;
 * --malloc default for glibc's own).
 *
 * --profile runs the ranks under V8's CPU profiler and prints, per world, where their
 * CPU time went (profile.ts: reduction, copies, syscalls, framing, gc, other); the
 * profiler slows them, so the timings of such a run are not comparable with others.
 *
 * --float64 also times, for each size, an all-reduce of the same number of elements as
 * float64 (twice the bytes: the exact, same-bits reduction's wire format), right after
 * the float32 one: `float64.medianMs`, `float64.busGBps` (on its own bytes), CPU times,
 * and `float64.glooPerElementRatio`: gloo's float32 time over ringtrain's float64 time
 * for the same elements (above 1: ringtrain's float64 is the faster per parameter).
 *
 * --tls also forms a second ring of the same rank processes over TLS (certificates made
 * with openssl for the run, tests/tls-certs.ts) and, for each size, times it right after
 * the plain one: `tlsMedianMs`, `tlsBusGBps`, `tlsRatio` (TLS over plain bus bandwidth)
 * and the TLS ring's CPU time per operation and rank.
 *
 *   npm run allreduce -w bench [-- --worlds 2,3,4 --sizes 1,16,64,256 --iterations 20 --segment 1048576 --slots 8 --peers auto|none --malloc worker|default --profile --tls --float64]
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { busBytes, DEFAULT_SEGMENT_BYTES } from '@ringtrain/allreduce';
import { makeCerts } from '../../tests/tls-certs.js';
import { findPeers, measurePeer } from './peers.js';
import { profileShares } from './profile.js';
import type { FromRank, FromTcp, ToRank, Transport } from './protocol.js';

const { values } = parseArgs({
  options: {
    worlds: { type: 'string', default: '2,3,4' },
    sizes: { type: 'string', default: '1,16,64,256' },
    iterations: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '3' },
    segment: { type: 'string', default: String(DEFAULT_SEGMENT_BYTES) },
    slots: { type: 'string', default: '8' },
    // Extra node flags for the rank processes, e.g. '--cpu-prof --cpu-prof-dir=prof'.
    'rank-flags': { type: 'string', default: '' },
    tls: { type: 'boolean', default: false },
    float64: { type: 'boolean', default: false },
    peers: { type: 'string', default: 'auto' },
    profile: { type: 'boolean', default: false },
    malloc: { type: 'string', default: 'worker' },
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
if (values.peers !== 'auto' && values.peers !== 'none') throw new Error(`--peers: auto or none, got "${values.peers}"`);
if (values.malloc !== 'worker' && values.malloc !== 'default') throw new Error(`--malloc: worker or default, got "${values.malloc}"`);
/**
 * The ranks run with a worker's glibc settings (what `ringtrain local` and the images give
 * their workers: apps/cli/src/commands/local.ts, deploy/docker), so that the bench measures
 * the ring as it runs there; `--malloc default` leaves glibc's own.
 */
const rankEnv: NodeJS.ProcessEnv = values.malloc === 'worker' ? { ...process.env, MALLOC_TRIM_THRESHOLD_: '268435456', MALLOC_MMAP_THRESHOLD_: '33554432' } : process.env;
const certs = values.tls ? makeCerts() : undefined;
const rankArgs = certs ? [certs.cert, certs.key, certs.ca] : [];

function spawn(file: string, args: string[] = [], flags: string[] = []): ChildProcess {
  const child = fork(here(file), args, { execArgv: ['--import', 'tsx', ...flags], env: rankEnv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

/** The child's next message of `type`; rejects on an error message or its exit. Leaves no listener behind. */
function next<T>(child: ChildProcess, type: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const done = (): void => {
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    const onMessage = (msg: { type: string; message?: string }): void => {
      if (msg.type === type) {
        done();
        resolve(msg as T);
      } else if (msg.type === 'error') {
        done();
        reject(new Error(msg.message));
      }
    };
    const onExit = (code: number | null): void => {
      done();
      reject(new Error(`child exited with ${code}`));
    };
    child.on('message', onMessage);
    child.once('exit', onExit);
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
async function measure(ranks: readonly ChildProcess[], transport: Transport, bytes: number, float64 = false): Promise<Times[]> {
  const results = ranks.map((r) => next<Times>(r, 'times'));
  ranks.forEach((r) => r.send({ type: 'run', transport, bytes, warmup, iterations, float64 } satisfies ToRank));
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

const peers = values.peers === 'none' ? { found: [], missing: [] } : findPeers();
console.log(JSON.stringify({ peers: peers.found, missing: peers.missing }));
const tcpGBps = await tcpThroughput(1024 * MiB);
const bus = (ms: number, world: number, bytes: number): number => +(busBytes(bytes, world) / (ms / 1000) / 1e9).toFixed(3);
for (const world of worlds) {
  const profileDir = values.profile ? mkdtempSync(join(tmpdir(), 'allreduce-prof-')) : null;
  const flags = profileDir ? [...rankFlags, '--cpu-prof', `--cpu-prof-dir=${profileDir}`] : rankFlags;
  const ranks = Array.from({ length: world }, () => spawn('rank.ts', rankArgs, flags));
  const ports = await Promise.all(ranks.map((r) => next<Extract<FromRank, { type: 'listening' }>>(r, 'listening')));
  const transports: Transport[] = certs ? ['plain', 'tls'] : ['plain'];
  for (const transport of transports) {
    const peersOfRing = ports.map((p, rank) => ({ rank, host: '127.0.0.1', port: transport === 'tls' ? p.tlsPort! : p.port }));
    const formed = ranks.map((r) => next(r, 'formed'));
    ranks.forEach((r, rank) => r.send({ type: 'form', transport, segmentBytes, sendSlots, membership: { generation: 1, rank, world, peers: peersOfRing, token: 'bench-token' } } satisfies ToRank));
    await Promise.all(formed);
  }
  const lines: Record<string, unknown>[] = [];
  for (const bytes of sizes) {
    const { medianMs, busGBps, userMs, systemMs, pageFaults } = summary(await measure(ranks, 'plain', bytes), world, bytes);
    const tls = certs ? summary(await measure(ranks, 'tls', bytes), world, bytes) : undefined;
    const f64 = values.float64 ? summary(await measure(ranks, 'plain', bytes, true), world, 2 * bytes) : undefined;
    lines.push({
      world, bytes, segmentBytes, sendSlots, malloc: values.malloc, medianMs, busGBps, tcpGBps: +tcpGBps.toFixed(3), ratio: +(busGBps / tcpGBps).toFixed(3), userMs, systemMs, pageFaults,
      ...(tls ? { tlsMedianMs: tls.medianMs, tlsBusGBps: tls.busGBps, tlsRatio: +(tls.busGBps / busGBps).toFixed(3), tlsUserMs: tls.userMs, tlsSystemMs: tls.systemMs } : {}),
      ...(f64 ? { float64: { bytes: 2 * bytes, medianMs: f64.medianMs, busGBps: f64.busGBps, userMs: f64.userMs, systemMs: f64.systemMs } } : {}),
    });
  }
  ranks.forEach((r) => r.send({ type: 'exit' } satisfies ToRank));
  await Promise.all(ranks.map((r) => new Promise((resolve) => r.once('exit', resolve))));
  // The peers run after ringtrain's ranks have exited, so that nothing else competes for the cores.
  const peerMs = new Map<string, Map<number, number>>();
  for (const peer of peers.found) peerMs.set(peer.name, await measurePeer(peer.name, world, sizes, iterations, warmup));
  for (const line of lines) {
    const bytes = line['bytes'] as number;
    const theirs = Object.fromEntries(
      [...peerMs].map(([name, ms]) => {
        const peerBus = bus(ms.get(bytes)!, world, bytes);
        return [name, { medianMs: +ms.get(bytes)!.toFixed(2), busGBps: peerBus, ringtrainRatio: +((line['busGBps'] as number) / peerBus).toFixed(2) }];
      }),
    );
    const f64 = line['float64'] as { medianMs: number } | undefined;
    const glooMs = peerMs.get('gloo')?.get(bytes);
    if (f64 && glooMs !== undefined) Object.assign(f64, { glooPerElementRatio: +(glooMs / f64.medianMs).toFixed(2) });
    console.log(JSON.stringify({ ...line, ...(peerMs.size ? { peers: theirs } : {}) }));
  }
  if (profileDir) {
    const files = readdirSync(profileDir).map((f) => join(profileDir, f));
    const ms = profileShares(files);
    const total = Object.values(ms).reduce((a, b) => a + b, 0);
    const shares = Object.fromEntries(Object.entries(ms).map(([k, v]) => [k, +(v / total).toFixed(3)]));
    console.log(JSON.stringify({ profile: { world, sizes: sizes.map((b) => b / MiB), ranks: files.length, cpuMs: Math.round(total), shares } }));
    rmSync(profileDir, { recursive: true, force: true });
  }
}
