/**
 * `ringtrain local` keeps its N worker processes running, as a Kubernetes Job
 * keeps its `parallelism` pods or torchrun (`--max-restarts`) its workers. Without it, a worker
 * that died before the first generation left the job waiting for N forever, and one
 * that died mid-run left it at N-1.
 *
 * Each worker is a slot with a fixed id (`local-0` ...). A process that exits while
 * the job runs is started again under the same id, after a delay that doubles with
 * each restart of the slot (1 s, 2 s, 4 s, ... at most 30 s). The coordinator sees a
 * worker that was lost join again: the members regroup, the newest state goes to
 * everyone, and the world is N again. The same id keeps `local`'s workers named by
 * slot in the status, the events and cluster.json, however often they restart.
 *
 * Given up, the job stops with a coded error (and `local` saves a checkpoint first):
 *  - a slot exited more than `maxRestarts` times in a row (CLI_WORKER_RESTARTS). A
 *    process that ran `stableMs` (10 minutes) before exiting had recovered: its slot's
 *    count starts afresh, as Kubernetes resets its back-off, so a long job survives
 *    occasional crashes and only a crash loop ends it;
 *  - a worker exited with code 2 (CLI_WORKERS_EXITED): a coded error, printed above by
 *    the worker itself (a backend that cannot load, a job it cannot run, a refusal such
 *    as PEER_UNREACHABLE), which a restart would only repeat.
 * Exits once the job is over (the coordinator releases its workers) or while `local`
 * itself stops (Ctrl-C) are not failures and start nothing.
 *
 * `decideRestart` is the decision, pure and tested with fake times; `WorkerSupervisor`
 * carries it out (processes, timers, logs).
 */
import type { ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';
import { EXIT_USAGE, WorkerRestartsError, WorkersExitedError } from './errors.js';

export interface RestartPolicy {
  /** Restarts of one slot in a row; the next exit gives up. */
  readonly maxRestarts: number;
  /** The first restart's delay; each next one doubles, up to maxDelayMs. */
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  /** A process that ran this long before it exited had recovered: its slot's count starts afresh. */
  readonly stableMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = { maxRestarts: 3, baseDelayMs: 1000, maxDelayMs: 30_000, stableMs: 10 * 60_000 };

/** One worker slot: its id stays, its processes come and go. */
export interface Slot {
  readonly id: string;
  /** Restarts in a row so far. */
  readonly restarts: number;
  /** When its current process was started. */
  readonly startedAt: number;
}

export interface WorkerExit {
  readonly code: number | null;
  readonly signal: string | null;
  /** The job is over, or `local` is stopping: nothing is restarted. */
  readonly jobOver: boolean;
}

export type RestartDecision =
  | { readonly kind: 'ignore' }
  | { readonly kind: 'restart'; readonly attempt: number; readonly delayMs: number }
  | { readonly kind: 'give-up'; readonly code: 'CLI_WORKERS_EXITED' | 'CLI_WORKER_RESTARTS'; readonly reason: string };

export function describeExit(exit: Pick<WorkerExit, 'code' | 'signal'>): string {
  return exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
}

/** What to do when `slot`'s process exits at `now`. */
export function decideRestart(slot: Slot, exit: WorkerExit, now: number, policy: RestartPolicy): RestartDecision {
  if (exit.jobOver) return { kind: 'ignore' };
  if (exit.signal === null && exit.code === EXIT_USAGE) {
    return {
      kind: 'give-up',
      code: 'CLI_WORKERS_EXITED',
      reason: `worker ${slot.id} exited with code 2 before the job completed: a coded error (its message is above), which a restart would repeat`,
    };
  }
  const before = now - slot.startedAt >= policy.stableMs ? 0 : slot.restarts;
  if (before >= policy.maxRestarts) {
    return {
      kind: 'give-up',
      code: 'CLI_WORKER_RESTARTS',
      reason: `worker ${slot.id} exited with ${describeExit(exit)} after ${before} restart${before === 1 ? '' : 's'} in a row (--max-restarts ${policy.maxRestarts})`,
    };
  }
  const attempt = before + 1;
  return { kind: 'restart', attempt, delayMs: Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1)) };
}

export interface SupervisorOptions {
  readonly ids: readonly string[];
  /** Starts the worker process of slot `id`. */
  readonly spawn: (id: string) => ChildProcess;
  readonly policy: RestartPolicy;
  readonly log: Logger;
  /** Whether the job is over: exits from then on are expected. */
  readonly jobOver: () => boolean;
  readonly now?: () => number;
}

/** Keeps one process per slot running until stopped or given up. */
export class WorkerSupervisor {
  /** Rejects with a coded error when a slot is given up; never resolves. */
  readonly failed: Promise<never>;
  private fail!: (err: Error) => void;
  private readonly slots = new Map<string, Slot>();
  private readonly live = new Set<ChildProcess>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;
  private readonly now: () => number;

  constructor(private readonly o: SupervisorOptions) {
    this.now = o.now ?? Date.now;
    this.failed = new Promise<never>((_, reject) => (this.fail = reject));
    this.failed.catch(() => {}); // the caller races it; no unhandled rejection if it never looks
    for (const id of o.ids) this.slots.set(id, { id, restarts: 0, startedAt: this.now() });
    for (const id of o.ids) this.start(id);
  }

  /** No more restarts (the job is over, or `local` stops); restarts waiting are cancelled. */
  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  /** Waits at most `ms` for the running processes to exit. */
  async exited(ms: number): Promise<void> {
    const deadline = new Promise<void>((r) => setTimeout(r, ms).unref());
    await Promise.race([Promise.all([...this.live].map((c) => new Promise<void>((r) => c.once('exit', () => r())))), deadline]);
  }

  /** Stops restarting and kills whatever still runs. */
  kill(): void {
    this.stop();
    for (const c of this.live) c.kill('SIGKILL');
  }

  private start(id: string): void {
    const child = this.o.spawn(id);
    const slot = { ...this.slots.get(id)!, startedAt: this.now() };
    this.slots.set(id, slot);
    if (slot.restarts > 0) this.o.log.info({ worker: id, workerPid: child.pid, attempt: slot.restarts }, `worker ${id} restarted`);
    this.live.add(child);
    let handled = false;
    const onExit = (code: number | null, signal: string | null) => {
      this.live.delete(child);
      if (handled) return;
      handled = true;
      this.exitedSlot(id, { code, signal, jobOver: this.stopped || this.o.jobOver() });
    };
    child.once('exit', onExit);
    // Could not be started at all (no 'exit' follows then): a failure like any other.
    child.once('error', (err) => {
      this.o.log.error({ worker: id, err }, 'cannot start a worker process');
      if (child.exitCode === null && child.signalCode === null && child.pid === undefined) onExit(null, null);
    });
  }

  private exitedSlot(id: string, exit: WorkerExit): void {
    const slot = this.slots.get(id)!;
    const d = decideRestart(slot, exit, this.now(), this.o.policy);
    switch (d.kind) {
      case 'ignore':
        return;
      case 'give-up':
        this.o.log.error({ worker: id, code: exit.code, signal: exit.signal, restarts: slot.restarts }, `giving up: ${d.reason}`);
        this.stop();
        this.fail(d.code === 'CLI_WORKERS_EXITED' ? new WorkersExitedError(d.reason) : new WorkerRestartsError(d.reason));
        return;
      case 'restart': {
        this.slots.set(id, { ...slot, restarts: d.attempt });
        this.o.log.warn(
          { worker: id, code: exit.code, signal: exit.signal, attempt: d.attempt, maxRestarts: this.o.policy.maxRestarts, delayMs: d.delayMs },
          `worker ${id} exited with ${describeExit(exit)}; restart ${d.attempt} of ${this.o.policy.maxRestarts} in ${d.delayMs} ms`,
        );
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          if (this.stopped || this.o.jobOver()) return;
          this.start(id);
        }, d.delayMs);
        this.timers.add(timer);
        return;
      }
    }
  }
}
