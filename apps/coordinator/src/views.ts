/**
 * What the coordinator shows of its job (status.ts's shapes): /api/status, /api/metrics,
 * the stream and /metrics all read these. Pure functions of the parts' state, with the
 * time passed in; and the throughput estimate they show.
 */
import { stepsPerEpoch } from '@ringtrain/data';
import type { StepReport } from '@ringtrain/protocol';
import type { JobSpec } from '@ringtrain/train';
import { unhandled } from './errors.js';
import type { RunHistory } from './history.js';
import type { MembershipState } from './membership.js';
import type { CheckpointInfo, JobEvent, JobState, JobStatus, MetricHistory, WorkerStatus } from './status.js';

/**
 * Samples per second, from rank 0's step reports as they arrive (a heartbeat's worth at
 * a time): each report gives the rate since the one before, and the estimate follows it
 * smoothed, the newest weighing NEWEST_WEIGHT. Heartbeats arrive every second or so, and
 * a step's time varies with the batch's rows and its peers; 0.3 settles within a few
 * heartbeats and keeps the ETA from jumping with each.
 */
export const NEWEST_WEIGHT = 0.3;

export class RateEstimate {
  private last: { step: number; time: number } | null = null;
  private rate: number | null = null;

  /** Steps committed by `now` (ms), in step order. */
  observe(steps: readonly StepReport[], now: number): void {
    const newest = steps.at(-1);
    if (!newest) return;
    if (this.last && newest.step > this.last.step && now > this.last.time) {
      const perStep = steps.reduce((a, s) => a + s.samples, 0) / steps.length;
      const instant = ((newest.step - this.last.step) * perStep * 1000) / (now - this.last.time);
      this.rate = this.rate === null ? instant : (1 - NEWEST_WEIGHT) * this.rate + NEWEST_WEIGHT * instant;
    }
    this.last = { step: newest.step, time: now };
  }

  /** Samples per second; null before two reports. */
  get value(): number | null {
    return this.rate;
  }
}

/** What the job is in: membership's phase, and for a job that is over, whether its outputs are all written (`settled`). */
export function jobStateOf(phase: MembershipState['phase'], settled: 'completed' | 'stopped' | null): JobState {
  switch (phase) {
    case 'waiting':
      return 'waiting';
    case 'training':
      return 'running';
    case 'stopping':
      return 'recovering';
    case 'paused':
      return 'paused';
    case 'done':
      return settled ?? 'finishing';
    default:
      return unhandled(phase);
  }
}

/** A registered worker's connection, as the status shows it: `lastSeen` (ms) instead of its age, and no rank (the ring gives it). */
export type WorkerView = Pick<WorkerStatus, 'id' | 'address' | 'backend' | 'step' | 'timing' | 'memory'> & { readonly lastSeen: number };

export interface StatusInput {
  readonly spec: JobSpec;
  readonly trainRows: number;
  readonly membership: MembershipState;
  /** The job's outcome once every output is written. */
  readonly settled: 'completed' | 'stopped' | null;
  /** Steps of the coordinator's own state (its latest checkpoint, or the start). */
  readonly baselineStep: number;
  /** Members of the newest ring formed: only their reports are the job's progress. */
  readonly members: ReadonlySet<string>;
  readonly workers: readonly WorkerView[];
  readonly rate: number | null;
  readonly started: number;
  readonly now: number;
  readonly checkpoints: readonly CheckpointInfo[];
  readonly messages: Readonly<Record<string, number>>;
  readonly events: readonly JobEvent[];
  readonly model: string | null;
}

export function statusOf(i: StatusInput): JobStatus {
  const { spec, membership: s } = i;
  const perEpoch = stepsPerEpoch(i.trainRows, spec.training.batchSize);
  const ring = s.phase === 'training' ? s.ring : [];
  // The job's progress: the coordinator's own state, and what the newest ring's members report (a worker's claim outside it is no progress of the job).
  let step = i.baselineStep;
  for (const w of i.workers) if (w.step !== null && i.members.has(w.id)) step = Math.max(step, w.step);
  const total = perEpoch * spec.training.epochs;
  const state = jobStateOf(s.phase, i.settled);
  const reason = s.phase === 'training' ? `training with ${ring.length} worker${ring.length === 1 ? '' : 's'}` : s.reason;
  const workers: WorkerStatus[] = i.workers.map((w) => ({
    id: w.id,
    rank: ring.indexOf(w.id) >= 0 ? ring.indexOf(w.id) : null,
    address: w.address,
    backend: w.backend,
    step: w.step,
    timing: w.timing,
    memory: w.memory,
    lastHeartbeatMs: i.now - w.lastSeen,
  }));
  workers.sort((a, b) => (a.rank ?? Number.MAX_SAFE_INTEGER) - (b.rank ?? Number.MAX_SAFE_INTEGER));
  const rate = state === 'running' ? i.rate : null;
  return {
    job: spec.name,
    state,
    reason,
    error: s.phase === 'done' && s.error ? { code: s.error.code, message: s.error.message } : null,
    generation: s.generation,
    step,
    epoch: Math.min(spec.training.epochs, Math.floor(step / perEpoch) + 1),
    epochs: spec.training.epochs,
    stepsPerEpoch: perEpoch,
    startedAt: new Date(i.started).toISOString(),
    elapsedSeconds: (i.now - i.started) / 1000,
    etaSeconds: rate ? ((total - step) * spec.training.batchSize) / rate : null,
    samplesPerSecond: rate,
    workers,
    ring,
    checkpoints: [...i.checkpoints],
    messages: { ...i.messages },
    events: [...i.events],
    spec,
    model: i.model,
  };
}

export function metricsOf(history: RunHistory): MetricHistory {
  return { steps: history.steps(), epochs: history.epochs(), generations: history.generations() };
}
