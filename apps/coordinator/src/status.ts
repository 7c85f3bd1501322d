/**
 * What the coordinator tells the world about its job: the HTTP API's /api/status and
 * /api/metrics bodies, the WebSocket stream's updates, and the Prometheus gauges all
 * come from these shapes.
 */
import type { EpochReport, Timing } from '@ringtrain/protocol';
import type { RecordKind } from './membership.js';

/**
 * `finishing`: the job is over (completed or stopped) and its outputs are being written;
 * `completed` and `stopped` only once they all are. A job that cannot go on stops
 * (`stopped`, its reason in `reason`); there is no failed state.
 */
export const JOB_STATES = ['waiting', 'running', 'recovering', 'paused', 'finishing', 'completed', 'stopped'] as const;
export type JobState = (typeof JOB_STATES)[number];

export interface WorkerStatus {
  readonly id: string;
  /** Rank in the current generation; null when not in the ring. */
  readonly rank: number | null;
  readonly address: string;
  readonly backend: string;
  /** Committed steps of the state it holds or is training. */
  readonly step: number | null;
  /** Mean step times over its last heartbeat period. */
  readonly timing: Timing | null;
  /** Its memory by its last heartbeat; null before its job is set up, or from a worker too old to say. */
  readonly memory: WorkerMemory | null;
  /** Milliseconds since its last message. */
  readonly lastHeartbeatMs: number;
}

/** A worker's memory, in bytes: its resident set (now, and its peak), its job's memory plan, and the limit the plan was checked against (null: none). */
export interface WorkerMemory {
  readonly rss: number;
  readonly peak?: number;
  readonly planned: number;
  readonly limit: number | null;
}

export interface JobEvent {
  readonly time: string;
  /** Membership's (what its decisions record), or the job's own: a checkpoint written, the job completed or stopped, an output that failed. */
  readonly kind: RecordKind | 'checkpoint' | 'completed' | 'stopped' | 'error';
  readonly generation: number;
  readonly message: string;
}

export interface CheckpointInfo {
  readonly step: number;
  readonly epoch: number;
  readonly reason: string;
  readonly time: string;
  readonly dir: string;
  readonly bytes: number;
  /** Its manifest's SHA-256 sums were checked after writing. */
  readonly verified: boolean;
}

/** Why a job stopped itself, when it did: a stable code (docs/errors.md) and its message. */
export interface JobStopError {
  readonly code: string;
  readonly message: string;
}

export interface JobStatus {
  readonly job: string;
  readonly state: JobState;
  readonly reason: string;
  /** Set once the job has stopped itself with a coded error (GENERATION_LIVELOCK: its generations kept failing); null otherwise, a stop asked for included. */
  readonly error: JobStopError | null;
  readonly generation: number;
  /** Committed global steps (0-based count). */
  readonly step: number;
  /** 1-based epoch in progress. */
  readonly epoch: number;
  readonly epochs: number;
  readonly stepsPerEpoch: number;
  readonly startedAt: string;
  readonly elapsedSeconds: number;
  readonly etaSeconds: number | null;
  readonly samplesPerSecond: number | null;
  readonly workers: readonly WorkerStatus[];
  /** Member ids of the current generation, by rank. */
  readonly ring: readonly string[];
  readonly checkpoints: readonly CheckpointInfo[];
  /** Messages received from workers, by type: the hot path has none per step but heartbeats. */
  readonly messages: Readonly<Record<string, number>>;
  readonly events: readonly JobEvent[];
  readonly spec: unknown;
  /** Path of the trained model once written. */
  readonly model: string | null;
}

export interface MetricHistory {
  /** [global step, mean loss of the step's batch], in step order. */
  readonly steps: readonly (readonly [number, number])[];
  readonly epochs: readonly EpochReport[];
  /** Steps at which a new generation began. */
  readonly generations: readonly { readonly generation: number; readonly step: number; readonly time: string; readonly world: number }[];
}
