/** Rank processes for the cross-process all-reduce tests: spawn, drive, and always clean up. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { RingMembership } from '@ringtrain/allreduce';
import type { FromRank, RingTuning, ToRank } from './allreduce-protocol.js';

const RANK_FILE = fileURLToPath(new URL('./allreduce-rank.ts', import.meta.url));
export const TOKEN = 'cross-process-test-token';

type Reply<T extends FromRank['type']> = Extract<FromRank, { type: T }>;

export class RankProcess {
  readonly child: ChildProcess;
  port = 0;
  private readonly inbox: FromRank[] = [];
  private waiter: (() => void) | undefined;

  constructor() {
    this.child = spawn(process.execPath, ['--import', 'tsx', RANK_FILE], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (msg: FromRank) => {
      this.inbox.push(msg);
      this.waiter?.();
    });
    this.child.on('exit', () => this.waiter?.());
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  send(msg: ToRank): void {
    this.child.send(msg);
  }

  /** The next message of `type`; an 'error' message or the deadline rejects. */
  async next<T extends FromRank['type']>(type: T, timeoutMs = 30_000): Promise<Reply<T>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.inbox.findIndex((m) => m.type === type || m.type === 'error');
      if (i >= 0) {
        const msg = this.inbox.splice(i, 1)[0]!;
        if (msg.type === 'error') throw Object.assign(new Error(msg.message), { code: msg.code });
        return msg as Reply<T>;
      }
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`rank process ${this.pid} exited`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${type} from rank process ${this.pid} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }
}

export async function spawnRanks(n: number): Promise<RankProcess[]> {
  const procs = Array.from({ length: n }, () => new RankProcess());
  await Promise.all(procs.map(async (p) => (p.port = (await p.next('listening')).port)));
  return procs;
}

/** Kills every process (SIGCONT first, so a stopped one can die) and waits for them. */
export async function killAll(procs: readonly RankProcess[]): Promise<void> {
  await Promise.all(
    procs.map(async (p) => {
      if (p.child.exitCode !== null || p.child.signalCode !== null) return;
      const exited = new Promise((resolve) => p.child.once('exit', resolve));
      p.kill('SIGCONT');
      p.kill('SIGKILL');
      await exited;
    }),
  );
}

/** Forms a ring of `procs` (in rank order) for `generation`; `ports` may route a rank through a proxy. */
export async function form(procs: readonly RankProcess[], generation: number, tuning: RingTuning, ports?: readonly number[]): Promise<void> {
  const peers = procs.map((p, rank) => ({ rank, host: '127.0.0.1', port: ports?.[rank] ?? p.port }));
  procs.forEach((p, rank) => {
    const membership: RingMembership = { generation, rank, world: procs.length, peers, token: TOKEN };
    p.send({ type: 'form', membership, tuning });
  });
  await Promise.all(procs.map((p) => p.next('formed')));
}

/** Runs one all-reduce on every process; returns the replies. */
export async function allReduce(procs: readonly RankProcess[], kind: 'int' | 'float', seed: number, length: number): Promise<Array<Reply<'reduced'>>> {
  procs.forEach((p) => p.send({ type: 'allReduce', kind, seed, length }));
  return Promise.all(procs.map((p) => p.next('reduced', 60_000)));
}

export async function closeRing(procs: readonly RankProcess[]): Promise<void> {
  procs.forEach((p) => p.send({ type: 'close' }));
  await Promise.all(procs.map((p) => p.next('closed')));
}
