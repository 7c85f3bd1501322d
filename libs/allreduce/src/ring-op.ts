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
  /**
   * Forwards a frame to the successor as is (no copy): it must not be touched afterwards.
   * With `payload`, `frame` is only the header and the payload follows it from there (a
   * placed frame's, in the caller's array): the operation then finishes only once that
   * is written, so that the caller cannot change the bytes before they are sent.
   */
  send(frame: Buffer, payload?: Buffer): void;
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
   * the schedule. May modify and forward `frame`. `placed`: the payload is already where
   * place() said, and `frame` is only the header.
   */
  onFrame(frame: Buffer, h: FrameHeader, placed: boolean): void;
  /**
   * Where the payload of the next frame, whose header `h` has arrived, should be read to
   * (exactly h.count elements' bytes), or null to receive it in a pooled frame. Asked
   * only for the frame that comes next, before any later one; it must check `h` against
   * the schedule as onFrame would, and may return memory only the frame's payload is
   * meant for. Operations without it receive every frame pooled.
   */
  place?(h: FrameHeader): Buffer | null;
}
