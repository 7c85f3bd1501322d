/**
 * Ring broadcast of a byte buffer from any root, pipelined.
 *
 * The root cuts the buffer into segments of `segmentBytes` and sends them, in order, to
 * its successor through the reusable send slots. Every other rank copies each segment
 * into its output as it arrives and forwards the same frame, untouched, to its own
 * successor, unless that successor is the root. So the root sends the buffer once, not
 * W-1 times; each link carries it once, and with many segments the time is about one
 * buffer's transfer plus W-2 segments, whatever W is.
 *
 * Receivers learn the length from the first frame (every frame carries it). A receiver
 * may pass a buffer of exactly that length to be filled in place; otherwise one is
 * allocated, up to the ring's `maxBroadcastBytes`. An empty buffer still sends one empty
 * segment, so every rank learns that it is empty.
 */
import type { Collective, OpContext } from './collective.js';
import { RingError, RingFrameError } from './errors.js';
import { FRAME_HEADER_BYTES as H, OpKind, Phase, writeHeader, type FrameHeader } from './frame.js';
import { segmentCount, segmentLength } from './schedule.js';
import type { SlotSource } from './send-window.js';

export class BroadcastOp implements Collective, SlotSource {
  private readonly ctx: OpContext;
  private readonly root: number;
  private readonly maxBytes: number;
  private out: Buffer | undefined;
  private result: Uint8Array | undefined;
  private segments = 0;
  private sent = 0;
  private received = 0;
  private readonly forward: boolean;

  /** `data` is the root's buffer, or a receiver's buffer to fill (or undefined). */
  constructor(ctx: OpContext, data: Uint8Array | undefined, root: number, maxBytes: number) {
    this.ctx = ctx;
    this.root = root;
    this.maxBytes = maxBytes;
    this.forward = (ctx.rank + 1) % ctx.world !== root;
    if (data) this.use(data);
    if (ctx.rank === root) {
      if (!data) throw new RingError('RING_INVALID_ARGUMENT', 'the broadcast root must pass its buffer');
      this.segments = segmentCount(data.length, ctx.segmentBytes);
    }
  }

  /** The broadcast bytes, once finished. */
  get value(): Uint8Array {
    return this.result ?? new Uint8Array(0);
  }

  start(): void {
    if (this.ctx.rank === this.root) this.ctx.window.drain(this);
  }

  hasNext(): boolean {
    return this.sent < this.segments;
  }

  fill(slot: Buffer): number {
    const out = this.out!;
    const seg = this.ctx.segmentBytes;
    const j = this.sent++;
    const count = segmentLength(out.length, seg, j);
    const c = this.ctx;
    writeHeader(slot, { kind: OpKind.broadcast, generation: c.generation, op: c.op, phase: Phase.broadcast, ringStep: 0, step: c.step, chunk: 0, offset: j * seg, total: out.length, root: this.root });
    out.copy(slot, H, j * seg, j * seg + count);
    if (this.sent === this.segments) queueMicrotask(() => this.ctx.finished());
    return H + count;
  }

  onFrame(frame: Buffer, h: FrameHeader): void {
    const c = this.ctx;
    if (h.kind !== OpKind.broadcast || h.root !== this.root || h.step !== c.step || c.rank === this.root) {
      throw new RingError('RING_OP_MISMATCH', `rank ${c.rank} runs a broadcast from ${this.root} at step ${c.step}; the predecessor sent kind ${h.kind} from ${h.root} at step ${h.step}`, { op: c.op });
    }
    if (!this.out) {
      if (h.total > this.maxBytes) throw new RingFrameError('RING_FRAME_TOO_LARGE', `broadcast of ${h.total} bytes exceeds ${this.maxBytes}`);
      this.use(Buffer.allocUnsafe(h.total));
    }
    const out = this.out!;
    if (h.total !== out.length) {
      throw new RingError('RING_OP_MISMATCH', `broadcast of ${h.total} bytes into a buffer of ${out.length}`, { op: c.op });
    }
    const seg = c.segmentBytes;
    const j = this.received;
    const count = segmentLength(out.length, seg, j);
    if (j >= this.segments || h.offset !== j * seg || h.count !== count) {
      throw new RingFrameError('RING_BAD_FRAME', `broadcast segment at ${h.offset}+${h.count}, expected ${j * seg}+${count}`);
    }
    this.received = j + 1;
    frame.copy(out, h.offset, H, H + count);
    if (this.forward) c.send(frame);
    if (this.received === this.segments) c.finished();
  }

  private use(buf: Uint8Array): void {
    this.result = buf;
    this.out = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
    this.segments = segmentCount(buf.length, this.ctx.segmentBytes);
  }
}
