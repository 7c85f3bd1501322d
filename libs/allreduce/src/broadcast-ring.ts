/**
 * Ring broadcast of a byte buffer from any root, pipelined, acknowledged round the ring.
 *
 * The root cuts the buffer into segments of `segmentBytes` and sends them, in order, to
 * its successor straight from its buffer, each behind a header in one of the reusable
 * send slots (send-window.ts). Every other rank copies each segment
 * into its output as it arrives and forwards the same frame, untouched, to its own
 * successor, unless that successor is the root. So the root sends the buffer once, not
 * W-1 times; each link carries it once, and with many segments the time is about one
 * buffer's transfer plus W-2 segments, whatever W is.
 *
 * Acknowledgement. The ring (ring.ts) holds frames of the next operation until it is
 * called here, and treats a frame two or more operations ahead as a protocol violation;
 * that keeps its queue to one operation and makes any frame out of place detectable.
 * It relies on every collective finishing on a rank only once every member has called
 * it, so that no rank can send frames of operation N+1 to a successor that has not yet
 * called N. An all-reduce has that by nature (each rank needs every rank's data); a
 * bare broadcast does not: the root has nothing to wait for, and a receiver has its
 * copy before the ranks after it have called broadcast. Either could go on to the next
 * operation and send its frames to a successor still two operations behind. So when
 * the root's predecessor, the last to receive the data, has every segment, it sends an
 * empty acknowledgement frame (phase `broadcastAck`, same generation, op, step, root
 * and length) to the root, which forwards it round the ring as far as the rank before
 * the predecessor; the root and every receiver but the last finish when the
 * acknowledgement arrives, the last when it has sent it. By then every member has
 * called the broadcast: the data and the acknowledgement passed through each of them,
 * and a rank handles frames of an operation only once it is called there. (An
 * acknowledgement that stopped at the root would not do for W > 2: a receiver between
 * the root and a late member would still run ahead.) The cost is one 40-byte frame per
 * link and W-1 hops of latency after the data; broadcasts are rare (state for joining
 * workers). The alternative, queueing frames of any later operation, would make that
 * queue span an unbounded number of operations and a frame out of place undetectable.
 *
 * Receivers learn the length from the first frame (every frame carries it). A receiver
 * may pass a buffer of exactly that length to be filled in place; otherwise one is
 * allocated, up to the ring's `maxBroadcastBytes`. An empty buffer still sends one empty
 * segment, so every rank learns that it is empty.
 */
import type { OpContext, RingOp } from './ring-op.js';
import { RingError, RingFrameError } from './errors.js';
import { FRAME_HEADER_BYTES as H, OpKind, Phase, writeHeader, type FrameHeader } from './frame.js';
import { segmentCount, segmentLength } from './schedule.js';
import type { SlotSource } from './send-window.js';

export class BroadcastOp implements RingOp, SlotSource {
  private readonly ctx: OpContext;
  private readonly root: number;
  private readonly maxBytes: number;
  private out: Buffer | undefined;
  private result: Uint8Array | undefined;
  private segments = 0;
  private sent = 0;
  private received = 0;
  /** Whether data frames go on to the successor (not when it is the root). */
  private readonly forward: boolean;
  /** The root's predecessor: the last rank to get the data, which starts the acknowledgement. */
  private readonly acknowledger: number;
  /** Whether the acknowledgement goes on to the successor (not when it is the acknowledger). */
  private readonly forwardAck: boolean;

  /** `data` is the root's buffer, or a receiver's buffer to fill (or undefined). */
  constructor(ctx: OpContext, data: Uint8Array | undefined, root: number, maxBytes: number) {
    this.ctx = ctx;
    this.root = root;
    this.maxBytes = maxBytes;
    const successor = (ctx.rank + 1) % ctx.world;
    this.forward = successor !== root;
    this.acknowledger = (root + ctx.world - 1) % ctx.world;
    this.forwardAck = ctx.rank !== this.acknowledger && successor !== this.acknowledger;
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

  fill(head: Buffer): Buffer {
    const out = this.out!;
    const seg = this.ctx.segmentBytes;
    const j = this.sent++;
    const count = segmentLength(out.length, seg, j);
    const c = this.ctx;
    writeHeader(head, { kind: OpKind.broadcast, generation: c.generation, op: c.op, phase: Phase.broadcast, ringStep: 0, step: c.step, chunk: 0, offset: j * seg, total: out.length, root: this.root });
    // The root's buffer itself: it finishes only on the acknowledgement, after every rank has it.
    return out.subarray(j * seg, j * seg + count);
  }

  onFrame(frame: Buffer, h: FrameHeader): void {
    const c = this.ctx;
    if (h.kind !== OpKind.broadcast || h.root !== this.root || h.step !== c.step || (c.rank === this.root && h.phase !== Phase.broadcastAck)) {
      throw new RingError('RING_OP_MISMATCH', `rank ${c.rank} runs a broadcast from ${this.root} at step ${c.step}; the predecessor sent kind ${h.kind} from ${h.root} at step ${h.step}`, { op: c.op });
    }
    if (h.phase === Phase.broadcastAck) {
      this.onAck(frame, h);
      return;
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
    if (this.received === this.segments && c.rank === this.acknowledger) {
      const ack = Buffer.alloc(H);
      writeHeader(ack, { kind: OpKind.broadcast, generation: c.generation, op: c.op, phase: Phase.broadcastAck, ringStep: 0, step: c.step, chunk: 0, offset: 0, total: out.length, root: this.root });
      c.send(ack);
      c.finished();
    }
  }

  /** The acknowledgement: every member has called this broadcast and the data has gone round. */
  private onAck(frame: Buffer, h: FrameHeader): void {
    const c = this.ctx;
    const complete = c.rank === this.root ? this.sent === this.segments : this.out !== undefined && this.received === this.segments;
    if (c.rank === this.acknowledger || !complete || h.total !== this.out?.length) {
      throw new RingFrameError('RING_BAD_FRAME', `broadcast acknowledgement for ${h.total} bytes at rank ${c.rank}, which has ${c.rank === this.root ? 'sent' : 'received'} ${c.rank === this.root ? this.sent : this.received} of ${this.segments} segments`, { op: c.op });
    }
    if (this.forwardAck) c.send(frame);
    c.finished();
  }

  private use(buf: Uint8Array): void {
    this.result = buf;
    this.out = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
    this.segments = segmentCount(buf.length, this.ctx.segmentBytes);
  }
}
