/**
 * What a worker tells the coordinator between steps, by heartbeat: its step times
 * (compute, communication, waiting), its memory (resident now, the job's plan, the
 * limit), and on rank 0 the step losses and epoch records since the last heartbeat. Every rank also keeps a record of recent step losses (the
 * all-reduced sums are the same on every rank) and replays its tail when a generation
 * starts and when it reports a stopped one (lifecycle.ts says when and how many), so a
 * coordinator restarted after a crash, the death of rank 0 before its next heartbeat, or
 * a stop right after a broken step loses no step's record while a worker survives.
 */
import type { EpochReport, Progress, StepReport, WorkerMessage } from '@ringtrain/protocol';

/** Step records kept for replays. */
export const HISTORY_STEPS = 10_000;

type Heartbeat = Extract<WorkerMessage, { type: 'heartbeat' }>;

/** One committed step, as the training loop reports it, and how long the ring made it wait for the slowest peer. */
export interface StepDone {
  readonly globalStep: number;
  readonly epoch: number;
  readonly stepLoss: number;
  readonly stepSamples: number;
  readonly computeMs: number;
  readonly commMs: number;
  readonly ringWaitMs: number;
}

const NO_TIME = { steps: 0, computeMs: 0, commMs: 0, waitMs: 0 };

/** The job's memory plan as heartbeats report it (job.ts): its total and the process limit it was checked against, in bytes. */
export interface MemoryBudget {
  readonly planned: number;
  readonly limit: number | null;
}

/** The resident set size of this process, in bytes. */
const residentBytes = (): number => process.memoryUsage.rss();
/** The most resident memory this process has had (maxRSS is in KiB). */
const peakBytes = (): number => process.resourceUsage().maxRSS * 1024;

export class StepRecords {
  private readonly history = new Map<number, StepReport>();
  private steps: StepReport[] = [];
  private epochs: EpochReport[] = [];
  private timing = { ...NO_TIME };

  /** A committed step; rank 0 also reports it. */
  step(p: StepDone, rank0: boolean): void {
    const t = this.timing;
    t.steps += 1;
    // The all-reduce's time splits into waiting for the slowest peer to arrive and moving data.
    const waited = Math.min(p.commMs, p.ringWaitMs);
    t.computeMs += p.computeMs;
    t.commMs += p.commMs - waited;
    t.waitMs += waited;
    const report = { step: p.globalStep, epoch: p.epoch, loss: p.stepLoss, samples: p.stepSamples };
    this.history.set(report.step, report);
    if (this.history.size > HISTORY_STEPS) this.history.delete(this.history.keys().next().value!);
    if (rank0) this.steps.push(report);
  }

  /** An epoch recorded; rank 0 reports it. */
  epoch(r: EpochReport, rank0: boolean): void {
    if (rank0) this.epochs.push(r);
  }

  /** Time spent waiting for rows. */
  waited(ms: number): void {
    this.timing.waitMs += ms;
  }

  /**
   * The heartbeat that reports everything since the last one (and forgets it); with the
   * job's memory `budget`, also the process's resident memory now (`rss`) beside it.
   */
  heartbeat(generation: number, backend: string | null, progress: Progress | null, budget: MemoryBudget | null = null, rss: () => number = residentBytes): Heartbeat {
    const t = this.timing;
    const n = Math.max(1, t.steps);
    const m: Heartbeat = {
      type: 'heartbeat',
      generation,
      ...(backend ? { backend } : {}),
      ...(budget ? { memory: { rss: rss(), peak: peakBytes(), planned: budget.planned, limit: budget.limit } } : {}),
      progress,
      timing: { steps: t.steps, computeMs: t.computeMs / n, commMs: t.commMs / n, waitMs: t.waitMs / n },
      steps: this.steps,
      epochs: this.epochs,
    };
    this.steps = [];
    this.epochs = [];
    this.timing = { ...NO_TIME };
    return m;
  }

  /** A heartbeat with the last `count` step records again, or null when there are none. */
  replay(count: number, generation: number, backend: string | null, progress: Progress | null): Heartbeat | null {
    if (this.history.size === 0) return null;
    const steps = [...this.history.values()].slice(-count);
    return { type: 'heartbeat', generation, ...(backend ? { backend } : {}), progress, timing: { ...NO_TIME }, steps, epochs: [] };
  }
}
