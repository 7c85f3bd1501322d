/**
 * What one operation's algorithm (AllReduceOp, BroadcastOp) needs from the ring it runs
 * on (`OpContext`), and what it offers the ring (`RingOp`).
 *
 * Named `RingOp`, not `Collective`: in this project a `Collective` is libs/train's view
 * of the whole ring from a training step (rank, world, allReduce); a `RingOp` is one
 * running operation inside the ring, fed its frames one at a time. The ring (ring.ts)
 * owns the links, deadlines and operation numbers; a RingOp owns only its schedule.
 */
import type { FrameHeader } from './frame.js';
import type { SendWindow } from './send-window.js';

export interface OpContext {
  readonly rank: number;
  readonly world: number;
  readonly generation: number;
  /** Sequence number of this operation within the ring, from 1. */
  readonly op: number;
  /** The caller's step tag, carried in every frame and checked on receipt. */
  readonly step: number;
  /** Payload bytes per frame. */
  readonly segmentBytes: number;
  /** Buffers for frames whose payload is copied out of the caller's buffer. */
  readonly window: SendWindow;
  /** Forwards a frame to the successor as is (no copy): it must not be touched afterwards. */
  send(frame: Buffer): void;
  /**
   * Called once when this rank's part of the operation is complete, which must not be
   * before every member has called the operation: the ring holds early frames of one
   * operation ahead only.
   */
  finished(): void;
}

/** One running operation of a ring: an all-reduce, a barrier or a broadcast. */
export interface RingOp {
  /** Sends what this rank can send before receiving anything. */
  start(): void;
  /**
   * Handles a frame of this operation from the predecessor; `h` is its decoded header
   * (generation and op already match). Throws a RingError when the frame does not fit
   * the schedule. May modify and forward `frame`.
   */
  onFrame(frame: Buffer, h: FrameHeader): void;
}
