/**
 * Ring all-reduce (sum) of a Float32Array or Float64Array, in place.
 *
 * The W ranks form a ring; each sends only to its successor and receives only from
 * its predecessor, over one TCP connection each way round. The buffer is cut into W
 * contiguous chunks (sizes differ by at most one element) and each chunk into segments
 * of `segmentBytes` (see schedule.ts).
 *
 * Reduce-scatter, W-1 steps: at step 0 rank r sends its own chunk r. At step s it
 * receives chunk (r-s-1) from its predecessor, adds its own values of that chunk into
 * the received frame and, for s < W-2, forwards the frame as step s+1. At the last step
 * (s = W-2) the sum in the frame is complete: it is the chunk r+1 that rank r "owns".
 * Chunk c is therefore always summed in the same order, x_c + x_c+1 + ... + x_c-1, by
 * the same ranks, so the result does not depend on timing.
 *
 * All-gather, W-1 steps: rank r writes its owned chunk into its buffer and sends the
 * same frame on as all-gather step 0; at step s it receives chunk (r-s) into its buffer
 * (read there straight from the socket, see place) and forwards it unchanged but for the
 * step, except at the last step.
 * Every rank ends with the bytes the owner computed: results are bit-identical.
 *
 * Each rank sends and receives 2(W-1)/W of the buffer, the minimum for an all-reduce
 * ("bandwidth-optimal"). Segments pipeline the steps: a frame is summed and forwarded as
 * soon as it arrives, while the kernel moves the next one, so sending, receiving and
 * adding overlap, and the latency of a step is one segment, not one chunk.
 *
 * Copies: the first step sends chunk r straight from the caller's buffer, behind a
 * header of its own (send-window.ts). After that, a received reduce-scatter frame is the
 * send buffer: the sum is computed in place in its pooled frame (in WebAssembly SIMD when
 * the frame is in the arena, frame-arena.ts, with the caller's values copied in beside it
 * first), the header's stage is rewritten and the same bytes go out. At the last
 * reduce-scatter step the completed sums are also stored into the caller's buffer. The
 * all-gather's payloads are read from the socket straight into the caller's buffer where
 * the link allows it (place; elsewhere they are copied there from a pooled frame) and
 * forwarded from there, the operation finishing only once those writes are done. A frame
 * whose payload is not aligned to its element goes through an aligned scratch buffer.
 *
 * Length 0 still sends one empty segment per chunk, so an all-reduce of nothing is a
 * barrier; W = 1 is a no-op and never gets here.
 */
import type { OpContext, RingOp } from './ring-op.js';
import { RingError, RingFrameError } from './errors.js';
import { FRAME_HEADER_BYTES as H, OpKind, Phase, writeHeader, writeStage, type FrameHeader } from './frame.js';
import {
  allGatherRecvChunk,
  chunkLength,
  chunkStart,
  reduceScatterRecvChunk,
  segmentCount,
  segmentLength,
} from './schedule.js';
import type { SlotSource } from './send-window.js';
import { arenaOf } from './frame-arena.js';

/**
 * How many segments of its own chunk a rank sends at the first step ahead of those it has
 * received from its predecessor at that step. Without a limit a rank sends its whole
 * chunk at once, and when a neighbour falls behind (three or four ranks on two cores are
 * descheduled in turn) the frames waiting to be forwarded piled up past the receive pool
 * (fast-receive.ts): at W = 3, 256 MiB, 18% of frames went to fresh buffers and the add in
 * JavaScript (bench/allreduce). Ahead by 4 that fell to 0.3%, by 2 to none, with the links
 * still busy: the predecessor's segments arrive at the pace ours go out, so a credit never
 * waits on a round trip.
 */
const INJECT_AHEAD = 2;

export class AllReduceOp implements RingOp, SlotSource {
  private readonly ctx: OpContext;
  private readonly data: Float32Array | Float64Array;
  /** Bytes per element: 4, or 8 for float64. */
  private readonly size: number;
  private readonly bytes: Buffer;
  private readonly kind: OpKind;
  private readonly seg: number;
  private readonly scratch: ArrayBuffer;
  /** Next segment index expected per (phase, ring step): [rs0..rsW-2, ag0..agW-2]. */
  private readonly next: Int32Array;
  private remaining: number;
  /** Next segment of chunk r to send at reduce-scatter step 0. */
  private firstSent = 0;
  private readonly firstSegments: number;

  /** `scratch`: a segment's bytes, for a frame whose payload is not aligned. */
  constructor(ctx: OpContext, data: Float32Array | Float64Array, kind: OpKind, scratch: ArrayBuffer) {
    this.ctx = ctx;
    this.data = data;
    this.bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    this.kind = kind;
    this.size = data.BYTES_PER_ELEMENT;
    this.seg = Math.floor(ctx.segmentBytes / this.size);
    this.scratch = scratch;
    const w = ctx.world;
    this.next = new Int32Array(2 * (w - 1));
    this.firstSegments = segmentCount(chunkLength(data.length, w, ctx.rank), this.seg);
    // Done when every frame addressed to this rank has been handled, in both phases:
    // all-gather frames can all arrive before the last reduce-scatter ones, which this
    // rank must still sum and forward.
    let frames = 0;
    for (let s = 0; s < w - 1; s++) {
      frames += segmentCount(chunkLength(data.length, w, reduceScatterRecvChunk(ctx.rank, w, s)), this.seg);
      frames += segmentCount(chunkLength(data.length, w, allGatherRecvChunk(ctx.rank, w, s)), this.seg);
    }
    this.remaining = frames;
  }

  start(): void {
    this.ctx.window.drain(this);
  }

  hasNext(): boolean {
    return this.firstSent < this.firstSegments && this.firstSent < (this.next[0] ?? 0) + INJECT_AHEAD;
  }

  fill(head: Buffer): Buffer {
    const { rank, world } = this.ctx;
    const n = this.data.length;
    const j = this.firstSent++;
    const offset = chunkStart(n, world, rank) + j * this.seg;
    const count = segmentLength(chunkLength(n, world, rank), this.seg, j);
    this.header(head, rank, offset);
    // Sent from the caller's buffer as it is: chunk r is next written at all-gather step
    // 0, whose frames exist only once the successor has received these (send-window.ts).
    return this.bytes.subarray(offset * this.size, (offset + count) * this.size);
  }

  /**
   * Where the frame with header `h` sits in the schedule: its phase, ring step, the slot
   * of `next` that counts its segments, and its elements. Throws where it does not fit.
   */
  private locate(h: FrameHeader): { gather: boolean; s: number; slot: number; offset: number; count: number } {
    const { rank, world } = this.ctx;
    const n = this.data.length;
    if (h.kind !== this.kind || h.total !== n || h.step !== this.ctx.step) {
      throw new RingError('RING_OP_MISMATCH', `rank ${rank} runs kind ${this.kind} of ${n} elements at step ${this.ctx.step}; the predecessor sent kind ${h.kind} of ${h.total} at step ${h.step}`, { op: this.ctx.op });
    }
    const s = h.ringStep;
    if (s > world - 2) throw new RingFrameError('RING_BAD_FRAME', `ring step ${s} in a ring of ${world}`);
    const gather = h.phase === Phase.allGather;
    const chunk = gather ? allGatherRecvChunk(rank, world, s) : reduceScatterRecvChunk(rank, world, s);
    const slot = gather ? world - 1 + s : s;
    const j = this.next[slot] ?? 0;
    const clen = chunkLength(n, world, chunk);
    if (h.chunk !== chunk || j >= segmentCount(clen, this.seg)) {
      throw new RingFrameError('RING_BAD_FRAME', `unexpected chunk ${h.chunk} segment ${j} at ${gather ? 'all-gather' : 'reduce-scatter'} step ${s}`);
    }
    const offset = chunkStart(n, world, chunk) + j * this.seg;
    const count = segmentLength(clen, this.seg, j);
    if (h.offset !== offset || h.count !== count) {
      throw new RingFrameError('RING_BAD_FRAME', `segment at ${h.offset}+${h.count}, expected ${offset}+${count}`);
    }
    return { gather, s, slot, offset, count };
  }

  /**
   * An all-gather frame's payload is read straight into our buffer, where onFrame would
   * copy it: the one copy of the phase saved (fast-receive.ts). Only a frame that fits the
   * schedule as the next of its step; reduce-scatter frames are summed in their pooled
   * frame (in WebAssembly, frame-arena.ts), so they stay there.
   */
  place(h: FrameHeader): Buffer | null {
    if (h.phase !== Phase.allGather) return null;
    let at: { offset: number; count: number };
    try {
      at = this.locate(h);
    } catch {
      return null; // onFrame reports it, once it has arrived
    }
    return this.bytes.subarray(at.offset * this.size, (at.offset + at.count) * this.size);
  }

  onFrame(frame: Buffer, h: FrameHeader, placed = false): void {
    const world = this.ctx.world;
    const { gather, s, slot, offset, count } = this.locate(h);
    this.next[slot] = (this.next[slot] ?? 0) + 1;
    // A reduce-scatter step-0 frame from the predecessor is a credit for one more of ours.
    if (slot === 0 && this.firstSent < this.firstSegments) this.ctx.window.drain(this);
    const bytes = count * this.size;
    if (!gather) {
      if (placed) throw new RingFrameError('RING_BAD_FRAME', `a reduce-scatter frame was placed`); // place() never does
      // At the last reduce-scatter step the sum is complete: it is also stored into our
      // buffer, in the same pass, and the frame starts the all-gather.
      const last = s === world - 2;
      this.add(frame, offset, count, last);
      writeStage(frame, last ? Phase.allGather : Phase.reduceScatter, last ? 0 : s + 1);
      this.ctx.send(frame);
    } else {
      if (!placed) frame.copy(this.bytes, offset * this.size, H, H + bytes);
      if (s < world - 2) {
        writeStage(frame, Phase.allGather, s + 1);
        if (placed) this.ctx.send(frame, this.bytes.subarray(offset * this.size, offset * this.size + bytes));
        else this.ctx.send(frame);
      }
    }
    if (--this.remaining === 0) this.ctx.finished();
  }

  /**
   * frame payload += data[offset .. offset + count], in place in the frame; with `keep`
   * the sums are also stored into data.
   */
  private add(frame: Buffer, offset: number, count: number, keep: boolean): void {
    if (count === 0) return;
    const d = this.data.subarray(offset, offset + count);
    const at = frame.byteOffset + H;
    const arena = arenaOf(frame.buffer);
    if (arena) {
      arena.add(at, d, keep); // in WebAssembly SIMD, the same bits (frame-arena.ts)
      return;
    }
    const size = this.size;
    const typed = (buffer: ArrayBufferLike, offset: number): Float32Array | Float64Array => (size === 8 ? new Float64Array(buffer, offset, count) : new Float32Array(buffer, offset, count));
    if (at % size === 0) {
      addInto(typed(frame.buffer, at), d, keep);
      return;
    }
    const p = typed(this.scratch, 0);
    const view = Buffer.from(this.scratch, 0, count * size);
    frame.copy(view, 0, H, H + count * size);
    addInto(p, d, keep);
    view.copy(frame, H, 0, count * size);
  }

  private header(target: Buffer, chunk: number, offset: number): void {
    const c = this.ctx;
    writeHeader(target, {
      kind: this.kind,
      generation: c.generation,
      op: c.op,
      phase: Phase.reduceScatter,
      ringStep: 0,
      step: c.step,
      chunk,
      offset,
      total: this.data.length,
      root: 0,
    });
  }
}

/**
 * p += d elementwise (in the arrays' type: the same rounding as one add per element);
 * with `keep` also d = p. Four elements per iteration: about a quarter faster than one.
 * Frames outside the arena only (frame-arena.ts adds the others in SIMD).
 */
function addInto(p: Float32Array | Float64Array, d: Float32Array | Float64Array, keep: boolean): void {
  const n = p.length;
  const n4 = n & ~3;
  let i = 0;
  if (keep) {
    for (; i < n4; i += 4) {
      d[i] = p[i] = p[i]! + d[i]!;
      d[i + 1] = p[i + 1] = p[i + 1]! + d[i + 1]!;
      d[i + 2] = p[i + 2] = p[i + 2]! + d[i + 2]!;
      d[i + 3] = p[i + 3] = p[i + 3]! + d[i + 3]!;
    }
    for (; i < n; i++) d[i] = p[i] = p[i]! + d[i]!;
    return;
  }
  for (; i < n4; i += 4) {
    p[i] = p[i]! + d[i]!;
    p[i + 1] = p[i + 1]! + d[i + 1]!;
    p[i + 2] = p[i + 2]! + d[i + 2]!;
    p[i + 3] = p[i + 3]! + d[i + 3]!;
  }
  for (; i < n; i++) p[i] = p[i]! + d[i]!;
}
