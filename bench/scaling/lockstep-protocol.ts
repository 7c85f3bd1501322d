/** Messages between bench/scaling's lockstep driver (lockstep.ts) and its ranks (lockstep-rank.ts), over the fork IPC channel. */

/**
 * single: one process, the whole batch (`ringtrain train`). independent: each rank its
 * share of every batch, nobody waits for anybody. barrier: the same, but every step ends
 * in a ring barrier (lockstep with no data moved). allreduce: the gradient buffer is
 * summed by the ring, as a cluster's workers do, without a coordinator.
 */
export type LockstepMode = 'single' | 'independent' | 'barrier' | 'allreduce';

export interface StepTiming {
  readonly epoch: number;
  /** performance.now() when the step finished. */
  readonly at: number;
  readonly samples: number;
  readonly computeMs: number;
  /** The collective's time, waiting included. */
  readonly commMs: number;
  readonly waitMs: number;
}

export type ToRank =
  | { readonly type: 'start'; readonly spec: unknown; readonly mode: LockstepMode; readonly rank: number; readonly world: number }
  | { readonly type: 'form'; readonly ports: readonly number[]; readonly token: string }
  | { readonly type: 'go' };

export type FromRank =
  | { readonly type: 'listening'; readonly port: number }
  | { readonly type: 'ready' }
  | { readonly type: 'steps'; readonly steps: readonly StepTiming[] };
