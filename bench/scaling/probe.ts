/**
 * What bench/scaling watches while a run goes on, outside the run itself:
 *
 * - StepSplit: the workers' step-time split from the coordinator's /api/status. Each
 *   worker's `timing` is its mean per step over its last heartbeat period, and the
 *   coordinator keeps the last one until a new heartbeat replaces it, so a poll every
 *   500 ms sees most periods twice: a period counts once, when its values change, and
 *   weighs by its `steps`.
 * - cpuTicks: CPU time (user + system) of a process and its children from /proc, read
 *   twice to give each process's CPU share over a window (Linux only; null elsewhere);
 *   and busyTicks, the whole machine's, so that what other processes took in the same
 *   window shows (on a shared machine they can halve the cluster's speed).
 */
import { readdirSync, readFileSync } from 'node:fs';

export interface Timing {
  readonly steps: number;
  readonly computeMs: number;
  readonly commMs: number;
  readonly waitMs: number;
}

interface WorkerView {
  readonly id: string;
  readonly timing: Timing | null;
}

export interface StatusView {
  readonly state: string;
  readonly generation: number;
  readonly workers: readonly WorkerView[];
  readonly events: readonly { readonly kind: string; readonly message: string }[];
}

/** Sums of ms x steps per worker; `split()` gives the steps-weighted means. */
export class StepSplit {
  private readonly last = new Map<string, string>();
  private readonly sums = new Map<string, { steps: number; compute: number; comm: number; wait: number }>();

  /** Takes one poll's workers; `counting` false only remembers what was seen. */
  add(workers: readonly WorkerView[], counting: boolean): void {
    for (const w of workers) {
      if (!w.timing || w.timing.steps === 0) continue;
      const key = JSON.stringify(w.timing);
      if (this.last.get(w.id) === key) continue;
      this.last.set(w.id, key);
      if (!counting) continue;
      const s = this.sums.get(w.id) ?? { steps: 0, compute: 0, comm: 0, wait: 0 };
      const n = w.timing.steps;
      s.steps += n;
      s.compute += w.timing.computeMs * n;
      s.comm += w.timing.commMs * n;
      s.wait += w.timing.waitMs * n;
      this.sums.set(w.id, s);
    }
  }

  /** Per worker: steps counted and mean compute, communication and waiting ms per step. */
  perWorker(): { id: string; steps: number; computeMs: number; commMs: number; waitMs: number }[] {
    return [...this.sums].map(([id, s]) => ({ id, steps: s.steps, computeMs: s.compute / s.steps, commMs: s.comm / s.steps, waitMs: s.wait / s.steps }));
  }

  /** The mean over workers of each worker's mean split; null before any period counted. */
  mean(): { computeMs: number; commMs: number; waitMs: number } | null {
    const ws = this.perWorker();
    if (ws.length === 0) return null;
    const avg = (pick: (w: (typeof ws)[number]) => number): number => ws.reduce((a, w) => a + pick(w), 0) / ws.length;
    return { computeMs: avg((w) => w.computeMs), commMs: avg((w) => w.commMs), waitMs: avg((w) => w.waitMs) };
  }
}

/** Polls `url`/api/status every `everyMs` until stopped; a failed poll is skipped (the server may not be up yet). */
export function pollStatus(url: string, everyMs: number, onStatus: (s: StatusView) => void): () => void {
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    fetch(`${url}/api/status`, { signal: AbortSignal.timeout(everyMs * 4) })
      .then(async (res) => (res.ok ? onStatus((await res.json()) as StatusView) : undefined))
      .catch(() => {})
      .finally(() => (busy = false));
  }, everyMs);
  return () => clearInterval(timer);
}

/** CPU ticks (user + system) by pid of `root` and its direct children; null without /proc. */
export function cpuTicks(root: number): Map<number, { name: string; ticks: number }> | null {
  const read = (pid: number): { ppid: number; name: string; ticks: number } | null => {
    try {
      const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const close = text.lastIndexOf(')');
      // After "pid (comm) ": state ppid ... utime is field 14, stime field 15 (1-based).
      const f = text.slice(close + 2).split(' ');
      return { ppid: Number(f[1]), name: text.slice(text.indexOf('(') + 1, close), ticks: Number(f[11]) + Number(f[12]) };
    } catch {
      return null;
    }
  };
  const self = read(root);
  if (!self) return null;
  const out = new Map([[root, { name: self.name, ticks: self.ticks }]]);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const p = read(Number(entry));
    if (p && p.ppid === root) out.set(Number(entry), { name: p.name, ticks: p.ticks });
  }
  return out;
}

/** Each process's CPU share (1 = one core) between two cpuTicks readings `seconds` apart. */
export function cpuShares(
  before: ReadonlyMap<number, { ticks: number }>,
  after: ReadonlyMap<number, { ticks: number }>,
  seconds: number,
  ticksPerSecond = 100,
): Map<number, number> {
  const out = new Map<number, number>();
  for (const [pid, a] of after) {
    const b = before.get(pid);
    if (b) out.set(pid, (a.ticks - b.ticks) / ticksPerSecond / seconds);
  }
  return out;
}

/** CPU ticks the whole machine spent busy (user, nice, system, irq, softirq, steal); null without /proc. */
export function busyTicks(): number | null {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    return f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!;
  } catch {
    return null;
  }
}
