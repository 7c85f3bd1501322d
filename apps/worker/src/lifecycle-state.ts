/**
 * The vocabulary of the worker's lifecycle (lifecycle.ts decides): its state, the
 * events it takes (the coordinator's messages, and what the executor reports), the
 * actions it returns, and its timings. Like lifecycle.ts, it imports nothing.
 */
/** The coordinator's `job` message, as far as the lifecycle reads it. */
export interface JobOrder {
  readonly type: 'job';
  readonly jobId: string;
  readonly heartbeatMs: number;
}

/** A `generation` message, as far as the lifecycle reads it. */
export interface GenerationOrder {
  readonly type: 'generation';
  readonly generation: number;
}

/** The other coordinator messages the lifecycle takes (`rows` go to the fetcher). */
export type ControlMessage =
  | { readonly type: 'stop'; readonly generation: number; readonly reason: string }
  | { readonly type: 'reject'; readonly code: string; readonly reason: string }
  | { readonly type: 'upload'; readonly generation: number }
  | { readonly type: 'finished'; readonly reason: string };

/** Whom a stopped generation blames: the rank it could not connect to, or whose state did not verify. */
export interface Blame {
  readonly unreachable?: number;
  readonly invalidSource?: number;
}

export type WorkerEvent<J extends JobOrder = JobOrder, G extends GenerationOrder = GenerationOrder> =
  | J
  | G
  | ControlMessage
  /** The worker's run began: connect. */
  | { readonly type: 'start' }
  | { readonly type: 'connected' }
  /** The connection closed, or never opened; `fatal` when retrying cannot help. */
  | { readonly type: 'disconnected'; readonly error: Error; readonly fatal: boolean }
  /** The backoff after a lost connection has run out. */
  | { readonly type: 'retry' }
  | { readonly type: 'job-ready'; readonly jobId: string; readonly heartbeatMs: number }
  | { readonly type: 'job-failed'; readonly error: Error }
  | { readonly type: 'ring-formed' }
  /** The source's state is verified and taken: training begins. */
  | { readonly type: 'synced' }
  /** A step committed. */
  | { readonly type: 'step' }
  /** Training completed. */
  | { readonly type: 'trained' }
  /** The generation is over and its ring closed; `code` and `reason` say why it stopped (unused when it had completed). */
  | ({ readonly type: 'generation-ended'; readonly code: string; readonly reason: string } & Blame)
  /** The clock moved: heartbeats are due. */
  | { readonly type: 'tick' }
  /** SIGTERM. */
  | { readonly type: 'leave' };

export type GenerationPhase = 'forming' | 'syncing' | 'training' | 'completed';

export type Link =
  /** No connection; `due` once the backoff has run out (it reconnects when nothing runs). */
  | { readonly kind: 'down'; readonly due: boolean }
  | { readonly kind: 'connecting' }
  /** Open; `jobId`: the job the coordinator on it runs, once its `job` message came. */
  | { readonly kind: 'up'; readonly jobId: string | null };

export type Work =
  | { readonly kind: 'idle' }
  | { readonly kind: 'setup'; readonly jobId: string }
  | {
      readonly kind: 'generation';
      readonly generation: number;
      readonly phase: GenerationPhase;
      /** Why it must end, once it must; applied to the ring as soon as there is one. */
      readonly stop: string | null;
      /** A step has committed in it. */
      readonly stepped: boolean;
    };

/** Work that waits its turn: a job's setup, a generation, or the report of a generation stopped before it started. */
export type Queued<J, G> = { readonly kind: 'job'; readonly order: J } | { readonly kind: 'generation'; readonly order: G } | { readonly kind: 'cancelled'; readonly generation: number };

export interface WorkerState<J extends JobOrder = JobOrder, G extends GenerationOrder = GenerationOrder> {
  readonly link: Link;
  readonly work: Work;
  /** What the coordinator sent while something ran, in order. */
  readonly queue: readonly Queued<J, G>[];
  /** The job set up here, if any. */
  readonly job: { readonly id: string; readonly heartbeatMs: number } | null;
  /** The newest generation heard of (-1: none); the coordinator numbers on above it. */
  readonly newestGeneration: number;
  /** Generations told to stop before they started here, up to this one. */
  readonly cancelledUpTo: number;
  /** The newest generation reported stopped. */
  readonly reportedUpTo: number;
  readonly leaving: boolean;
  /** Set once the worker must end: it exits with `code` once its work has stopped and its link is down. */
  readonly exit: { readonly code: number; readonly error: Error | null } | null;
  /** `exit` was given: nothing more happens. */
  readonly ended: boolean;
  /** The wait before the next connection attempt. */
  readonly backoffMs: number;
  readonly lastBeatAt: number;
  /** Since when no coordinator has answered (from the start, or since the link was lost); null while the link is up. */
  readonly unreachableSince: number | null;
}

/**
 * Which progress a message carries: the live one (counting a generation in progress), the
 * state held, or none (the coordinator's job is not the one set up here, or not known yet).
 */
export type ProgressKind = 'live' | 'held' | 'none';

export type Action<J extends JobOrder = JobOrder, G extends GenerationOrder = GenerationOrder> =
  | { readonly type: 'connect' }
  | { readonly type: 'register'; readonly generation: number }
  | { readonly type: 'close-channel'; readonly reason: string }
  | { readonly type: 'schedule-retry'; readonly delayMs: number }
  | { readonly type: 'setup-job'; readonly order: J }
  | { readonly type: 'start-generation'; readonly order: G }
  | { readonly type: 'abort-ring'; readonly generation: number; readonly reason: string }
  /** A completed generation's ring may close. */
  | { readonly type: 'release-ring'; readonly generation: number }
  /** Requests in flight fail: the connection they were asked on is gone. */
  | { readonly type: 'cancel-fetches'; readonly reason: string }
  | { readonly type: 'send-heartbeat'; readonly generation: number; readonly progress: ProgressKind }
  /** A heartbeat with the last `count` step records again. */
  | { readonly type: 'replay'; readonly count: number; readonly generation: number; readonly progress: ProgressKind }
  /** `code`: why, as a stable code (docs/errors.md; GENERATION_CANCELLED and GENERATION_STALE are the lifecycle's own). */
  | ({ readonly type: 'report-stopped'; readonly generation: number; readonly code: string; readonly reason: string; readonly progress: ProgressKind } & Blame)
  | { readonly type: 'send-done'; readonly generation: number }
  | { readonly type: 'send-leave'; readonly progress: ProgressKind }
  | { readonly type: 'upload-state'; readonly generation: number }
  | { readonly type: 'log'; readonly level: 'debug' | 'info' | 'warn' | 'error'; readonly msg: string; readonly fields: Readonly<Record<string, unknown>> }
  | { readonly type: 'exit'; readonly code: number; readonly error: Error | null };

export interface Decision<J extends JobOrder = JobOrder, G extends GenerationOrder = GenerationOrder> {
  readonly state: WorkerState<J, G>;
  readonly actions: readonly Action<J, G>[];
}

export interface Policy {
  readonly minBackoffMs: number;
  readonly maxBackoffMs: number;
  /**
   * --coordinator-timeout: give up (exit EXIT.noCoordinator) once no coordinator has
   * answered for this long; null: retry for ever. A Kubernetes Job needs it: a worker
   * pod started just as its coordinator finished and exited would otherwise wait for
   * ever, holding its GPU (deploy/k8s).
   */
  readonly coordinatorTimeoutMs: number | null;
}

/** Reconnection backoff: 0.25 s, doubling to 5 s (docs/cluster.md). */
export const MIN_BACKOFF_MS = 250;
export const MAX_BACKOFF_MS = 5000;
/** Heartbeats before a job says how often (its cluster.heartbeatMs). */
export const DEFAULT_HEARTBEAT_MS = 1000;
/** Step records replayed when a generation starts: a coordinator restarted after a crash, or rank 0 lost before its next heartbeat, loses none. */
export const REPLAY_STEPS = 2_000;
/**
 * Step records sent again with each `stopped` report: when a ring breaks, a rank other
 * than rank 0 may have committed the last step alone, and if the job then stops rather
 * than regroups, no generation start would ever replay it.
 */
export const STOPPED_REPLAY_STEPS = 16;

export const DEFAULT_POLICY: Policy = { minBackoffMs: MIN_BACKOFF_MS, maxBackoffMs: MAX_BACKOFF_MS, coordinatorTimeoutMs: null };

export function initialWorker<J extends JobOrder = JobOrder, G extends GenerationOrder = GenerationOrder>(policy: Policy = DEFAULT_POLICY): WorkerState<J, G> {
  return {
    link: { kind: 'down', due: false },
    work: { kind: 'idle' },
    queue: [],
    job: null,
    newestGeneration: -1,
    cancelledUpTo: -1,
    reportedUpTo: -1,
    leaving: false,
    exit: null,
    ended: false,
    backoffMs: policy.minBackoffMs,
    lastBeatAt: 0,
    unreachableSince: null,
  };
}
