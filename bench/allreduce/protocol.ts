/** Messages between the benchmark driver and its rank and TCP processes (over the IPC channel). */
import type { RingMembership } from '@ringtrain/allreduce';

/** Which of a rank's two rings an operation runs on: plain WebSockets, or the same over TLS (--tls). */
export type Transport = 'plain' | 'tls';

export type ToRank =
  | { readonly type: 'form'; readonly transport: Transport; readonly membership: RingMembership; readonly segmentBytes: number; readonly sendSlots: number }
  /** `float64`: the same number of elements as `bytes` of float32, as float64 (twice the bytes). */
  | { readonly type: 'run'; readonly transport: Transport; readonly bytes: number; readonly warmup: number; readonly iterations: number; readonly float64?: boolean }
  | { readonly type: 'exit' };

export type FromRank =
  /** `tlsPort` when the rank was started with certificate files: a second endpoint, serving TLS. */
  | { readonly type: 'listening'; readonly port: number; readonly tlsPort?: number }
  | { readonly type: 'formed' }
  | { readonly type: 'times'; readonly ms: readonly number[]; readonly userMs: readonly number[]; readonly systemMs: readonly number[]; readonly faults: readonly number[] }
  | { readonly type: 'error'; readonly message: string };

export type FromTcp = { readonly type: 'listening'; readonly port: number } | { readonly type: 'done'; readonly bytes: number; readonly ms: number };
