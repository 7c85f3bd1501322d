/** Messages between the tests and their rank processes (tests/allreduce-rank.ts), over the IPC channel. */
import type { RingMembership } from '@ringtrain/allreduce';
import type { DataKind } from './allreduce-data.js';

export interface RingTuning {
  readonly opTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  readonly heartbeatTimeoutMs: number;
  readonly segmentBytes?: number;
}

export type ToRank =
  | { readonly type: 'form'; readonly membership: RingMembership; readonly tuning: RingTuning }
  | { readonly type: 'allReduce'; readonly kind: DataKind; readonly seed: number; readonly length: number }
  | { readonly type: 'loop'; readonly length: number }
  | { readonly type: 'close' };

export type FromRank =
  | { readonly type: 'listening'; readonly port: number }
  | { readonly type: 'formed' }
  | { readonly type: 'reduced'; readonly ok: boolean; readonly digest: string }
  | { readonly type: 'loopEnded'; readonly code: string; readonly at: number; readonly ops: number }
  | { readonly type: 'closed' }
  | { readonly type: 'error'; readonly code: string; readonly message: string };
