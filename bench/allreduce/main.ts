/**
 * All-reduce benchmark: W rank processes on loopback for W = 2 and 4 and 1, 16 and
 * 64 MiB. Prints one JSON line per configuration: world, bytes, median ms (of the
 * slowest rank, per iteration), bus bandwidth in GB/s (2(W-1)/W x bytes / s, as NCCL
 * reports it), the raw TCP throughput between two Node processes measured in the same
 * run, and their ratio; then, per operation and rank, CPU user and system ms and minor
 * page faults (see the Performance section of docs/allreduce.md).
 *
 *   npm run allreduce -w bench [-- --worlds 2,4 --sizes 1,16,64 --iterations 20 --segment 1048576 --slots 8]
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { busBytes, DEFAULT_SEGMENT_BYTES } from '@ringtrain/allreduce';
import type { FromRank, FromTcp, ToRank } from './protocol.js';

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

const tcpGBps = await tcpThroughput(1024 * MiB);
for (const world of worlds) {
  const ranks = Array.from({ length: world }, () => spawn('rank.ts', [], rankFlags));
  const ports = await Promise.all(ranks.map((r) => next<Extract<FromRank, { type: 'listening' }>>(r, 'listening')));
  const peers = ports.map((p, rank) => ({ rank, host: '127.0.0.1', port: p.port }));
  const sendTo = (r: ChildProcess, msg: ToRank): void => void r.send(msg);
  const formed = ranks.map((r) => next(r, 'formed'));
  ranks.forEach((r, rank) => sendTo(r, { type: 'form', segmentBytes, sendSlots, membership: { generation: 1, rank, world, peers, token: 'bench-token' } }));
  await Promise.all(formed);
  for (const bytes of sizes) {
    const results = ranks.map((r) => next<Extract<FromRank, { type: 'times' }>>(r, 'times'));
    ranks.forEach((r) => sendTo(r, { type: 'run', bytes, warmup, iterations }));
    const reports = await Promise.all(results);
    const times = reports.map((t) => t.ms);
    const slowest = Array.from({ length: iterations }, (_, i) => Math.max(...times.map((t) => t[i]!)));
    const ms = median(slowest);
    const busGBps = busBytes(bytes, world) / (ms / 1000) / 1e9;
    // CPU time and minor page faults of one operation in one rank process (median over
    // iterations, mean over ranks).
    const perRank = (pick: (t: (typeof reports)[number]) => readonly number[]): number => +(reports.reduce((sum, t) => sum + median(pick(t)), 0) / world).toFixed(2);
    console.log(JSON.stringify({
      world, bytes, segmentBytes, sendSlots, medianMs: +ms.toFixed(2), busGBps: +busGBps.toFixed(3), tcpGBps: +tcpGBps.toFixed(3), ratio: +(busGBps / tcpGBps).toFixed(3),
      userMs: perRank((t) => t.userMs), systemMs: perRank((t) => t.systemMs), pageFaults: Math.round(perRank((t) => t.faults)),
    }));
  }
  ranks.forEach((r) => sendTo(r, { type: 'exit' }));
  await Promise.all(ranks.map((r) => new Promise((resolve) => r.once('exit', resolve))));
}
