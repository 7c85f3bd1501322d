/** Messages between the benchmark driver and its rank and TCP processes (over the IPC channel). */
import type { RingMembership } from '@ringtrain/allreduce';

export type ToRank =
  | { readonly type: 'form'; readonly membership: RingMembership; readonly segmentBytes: number; readonly sendSlots: number }
  | { readonly type: 'run'; readonly bytes: number; readonly warmup: number; readonly iterations: number }
  | { readonly type: 'exit' };

export type FromRank =
  | { readonly type: 'listening'; readonly port: number }
  | { readonly type: 'formed' }
  | { readonly type: 'times'; readonly ms: readonly number[]; readonly userMs: readonly number[]; readonly systemMs: readonly number[]; readonly faults: readonly number[] }
  | { readonly type: 'error'; readonly message: string };

export type FromTcp = { readonly type: 'listening'; readonly port: number } | { readonly type: 'done'; readonly bytes: number; readonly ms: number };
