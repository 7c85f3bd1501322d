/**
 * A ring of W members for one generation: formation, the collectives' lifecycle,
 * deadlines and failure.
 *
 * Each member listens on its endpoint and dials its predecessor (it receives on the link
 * it dials, sends on the one its successor dialed: fast-receive.ts); when both links are
 * up, authenticated and the dialer has said `ready`, the ring is formed. Operations run one at a time and are numbered
 * from 1; every frame carries (generation, op, step), so a frame of an older operation
 * or generation is dropped, never summed. A predecessor may already be sending the next
 * operation while this member is still busy; those frames wait (up to
 * `maxQueuedBytes`, then reading pauses) until the operation is called here. It can be
 * no further ahead: every collective finishes on a rank only once every member has
 * called it (a broadcast through its acknowledgement, see broadcast-ring.ts), so a
 * frame two or more operations ahead is a protocol violation (RING_BAD_FRAME).
 *
 * Every operation has a deadline. Any failure (a deadline, a lost or silent neighbour,
 * a bad frame, abort()) fails the whole ring: the pending operation rejects with the
 * coded error, both links close carrying that code so the neighbours fail with it too,
 * and it travels round the ring within milliseconds. A failed ring stays failed: form a
 * new ring with the next generation.
 */
import { endianness } from 'node:os';
import { AllReduceOp } from './allreduce-ring.js';
import { BroadcastOp } from './broadcast-ring.js';
import type { OpContext, RingOp } from './ring-op.js';
import { dial } from './connect.js';
import { isRingError, RingError, RingFrameError } from './errors.js';
import { decodeFrame, decodeHeader, emptyHeader, FRAME_HEADER_BYTES, MAX_U32, OpKind, type FrameHeader } from './frame.js';
import { tokenBytes, type Token } from './handshake.js';
import { listen, type RingEndpoint } from './endpoint.js';
import type { HeartbeatOptions, Link } from './link.js';
import { silentLogger, type RingLogger } from './logger.js';
import { SendWindow } from './send-window.js';
import type { RingTls } from './tls.js';

export interface RingPeer {
  readonly rank: number;
  readonly host: string;
  readonly port: number;
}

/** Who is in the ring, as the coordinator hands it out; valid for one generation. */
export interface RingMembership {
  readonly generation: number;
  readonly rank: number;
  readonly world: number;
  /** One entry per rank 0..world-1, in any order. */
  readonly peers: readonly RingPeer[];
  /** The job's shared secret; never sent, only proven. */
  readonly token: Token;
}

export interface RingOptions {
  readonly membership: RingMembership;
  /** The endpoint peers connect to; without one, the ring listens on its own peers[rank] address and closes it on close(). */
  readonly endpoint?: RingEndpoint;
  /** TLS for a ring without `endpoint` (it listens with it and dials with it); with one, the endpoint's TLS applies. */
  readonly tls?: RingTls;
  /** Payload bytes per frame; a multiple of 4; the same on every member. Default 1 MiB (see docs/allreduce.md, Performance). */
  readonly segmentBytes?: number;
  /** Reusable send buffers for the first step and broadcast roots. Default 8. */
  readonly sendSlots?: number;
  /** Deadline for forming the ring. Default 30 s. */
  readonly connectTimeoutMs?: number;
  /** Default deadline of every operation. Default 60 s. */
  readonly opTimeoutMs?: number;
  /** Ping interval on idle and busy links. Default 1 s. */
  readonly heartbeatIntervalMs?: number;
  /** Silence after which a neighbour counts as lost. Must exceed the longest time this process blocks its event loop. Default 15 s. */
  readonly heartbeatTimeoutMs?: number;
  /** Bytes of early frames (of an operation not yet called here) held before reading pauses. Default 64 MiB. */
  readonly maxQueuedBytes?: number;
  /** Largest broadcast a receiver allocates for. Default 2^32 - 1. */
  readonly maxBroadcastBytes?: number;
  readonly logger?: RingLogger;
}

export interface OpOptions {
  /** The caller's step tag, checked on every frame; the same on every member. Default 0. */
  readonly step?: number;
  /** Deadline for this operation; default the ring's opTimeoutMs. */
  readonly timeoutMs?: number;
}

export type RingState = 'open' | 'failed' | 'closed';

export interface RingStats {
  /** Operations completed. */
  readonly ops: number;
  /** Frames of older operations or generations dropped. */
  readonly framesDropped: number;
  readonly framesSent: number;
  readonly framesReceived: number;
  /** Of those received, frames whose payload was read straight into the caller's array (all-gather, fast-receive.ts). */
  readonly framesPlaced: number;
  /**
   * Of the last completed operation, milliseconds from its call here to its first frame
   * from the predecessor: time spent waiting for slower peers rather than moving data
   * (0 when the predecessor was ahead and its frames were already queued).
   */
  readonly lastOpWaitMs: number;
}

export interface Ring {
  readonly generation: number;
  readonly rank: number;
  readonly world: number;
  readonly state: RingState;
  /** Why the ring failed, once it has. */
  readonly failure: RingError | undefined;
  readonly stats: RingStats;
  /**
   * Sums `data` across the ring, in place; every member ends with the same bits. float32
   * or float64 (the frames then carry float64: every member must pass the same type).
   */
  allReduce(data: Float32Array | Float64Array, options?: OpOptions): Promise<void>;
  /** Sends `root`'s bytes to every member; others may pass a buffer of the right length to fill, or nothing. */
  broadcast(data: Uint8Array | undefined, root: number, options?: OpOptions): Promise<Uint8Array>;
  /** Resolves once every member has called barrier(). */
  barrier(options?: OpOptions): Promise<void>;
  /** Fails the ring here and on every member with RING_ABORTED. */
  abort(reason?: string): void;
  /** Closes the links (and the endpoint if the ring opened it). A pending operation rejects with RING_CLOSED. */
  close(): Promise<void>;
}

export const DEFAULT_SEGMENT_BYTES = 1024 * 1024;

interface Settings {
  readonly segmentBytes: number;
  readonly sendSlots: number;
  readonly connectTimeoutMs: number;
  readonly opTimeoutMs: number;
  readonly heartbeat: HeartbeatOptions;
  readonly maxQueuedBytes: number;
  readonly maxBroadcastBytes: number;
}

function invalid(message: string): never {
  throw new RingError('RING_INVALID_ARGUMENT', message);
}

function positiveInt(name: string, v: number | undefined, fallback: number): number {
  const value = v ?? fallback;
  if (!Number.isSafeInteger(value) || value <= 0) invalid(`${name} must be a positive integer, got ${String(v)}`);
  return value;
}

function u32(name: string, v: number, max = MAX_U32): number {
  if (!Number.isInteger(v) || v < 0 || v > max) invalid(`${name} must be an integer in 0..${max}, got ${String(v)}`);
  return v;
}

function settingsOf(o: RingOptions): Settings {
  const segmentBytes = positiveInt('segmentBytes', o.segmentBytes, DEFAULT_SEGMENT_BYTES);
  if (segmentBytes % 4 !== 0) invalid(`segmentBytes must be a multiple of 4, got ${segmentBytes}`);
  const heartbeat = {
    intervalMs: positiveInt('heartbeatIntervalMs', o.heartbeatIntervalMs, 1000),
    timeoutMs: positiveInt('heartbeatTimeoutMs', o.heartbeatTimeoutMs, 15_000),
  };
  if (heartbeat.timeoutMs <= heartbeat.intervalMs) invalid('heartbeatTimeoutMs must exceed heartbeatIntervalMs');
  return {
    segmentBytes,
    sendSlots: positiveInt('sendSlots', o.sendSlots, 8),
    connectTimeoutMs: positiveInt('connectTimeoutMs', o.connectTimeoutMs, 30_000),
    opTimeoutMs: positiveInt('opTimeoutMs', o.opTimeoutMs, 60_000),
    heartbeat,
    maxQueuedBytes: positiveInt('maxQueuedBytes', o.maxQueuedBytes, 64 * 1024 * 1024),
    maxBroadcastBytes: u32('maxBroadcastBytes', o.maxBroadcastBytes ?? MAX_U32),
  };
}

/** Checks a membership and returns the peers indexed by rank. */
export function validateMembership(m: RingMembership): RingPeer[] {
  u32('generation', m.generation);
  u32('world', m.world, 0xffff);
  if (m.world < 1) invalid('world must be at least 1');
  u32('rank', m.rank, m.world - 1);
  if (m.peers.length !== m.world) invalid(`${m.peers.length} peers for a world of ${m.world}`);
  const byRank: RingPeer[] = [];
  for (const p of m.peers) {
    u32('peer rank', p.rank, m.world - 1);
    if (byRank[p.rank]) invalid(`rank ${p.rank} appears twice`);
    if (typeof p.host !== 'string' || p.host === '') invalid(`rank ${p.rank} has no host`);
    u32(`port of rank ${p.rank}`, p.port, 65535);
    byRank[p.rank] = p;
  }
  tokenBytes(m.token);
  return byRank;
}

/** Forms the ring of one generation: listens (unless given an endpoint), dials the predecessor, authenticates both links. */
export async function createRing(options: RingOptions): Promise<Ring> {
  if (endianness() !== 'LE') invalid('the ring wire format needs a little-endian host');
  const m = options.membership;
  const peers = validateMembership(m);
  const settings = settingsOf(options);
  const token = tokenBytes(m.token);
  const log = (options.logger ?? silentLogger).child({ component: 'ring', generation: m.generation, rank: m.rank, world: m.world });
  const me = peers[m.rank]!;
  if (options.endpoint && options.tls) invalid('tls is set on the endpoint when one is given, not on the ring');
  const endpoint = options.endpoint ?? (await listen({ host: me.host, port: me.port, maxSegmentBytes: Math.max(settings.segmentBytes, 4), logger: options.logger, ...(options.tls ? { tls: options.tls } : {}) }));
  const owned = options.endpoint === undefined;
  if (settings.segmentBytes > endpoint.maxSegmentBytes) {
    if (owned) await endpoint.close();
    invalid(`segmentBytes ${settings.segmentBytes} exceeds the endpoint's maxSegmentBytes ${endpoint.maxSegmentBytes}`);
  }
  if (m.world === 1) return new RingImpl(m, settings, log, endpoint, owned, undefined, undefined);

  // Rank r receives from its predecessor on the connection it dials (it reads from a
  // socket it created: fast-receive.ts), and sends to its successor on the one its
  // successor dialed to it.
  const predecessor = peers[(m.rank + m.world - 1) % m.world]!;
  const successorRank = (m.rank + 1) % m.world;
  const deadline = Date.now() + settings.connectTimeoutMs;
  let stop: RingError | undefined;
  const outbound = endpoint.expectSuccessor({
    generation: m.generation, rank: m.rank, world: m.world, segmentBytes: settings.segmentBytes, token, heartbeat: settings.heartbeat, logger: log,
  });
  const inbound = dial({
    host: predecessor.host, port: predecessor.port, generation: m.generation, from: m.rank, to: predecessor.rank, world: m.world,
    segmentBytes: settings.segmentBytes, token, deadline, heartbeat: settings.heartbeat, logger: log, cancelled: () => stop, tls: endpoint.dialTls(predecessor.host),
  });
  let timer: NodeJS.Timeout | undefined;
  const outboundByDeadline = new Promise<Link>((resolve, reject) => {
    timer = setTimeout(
      () => reject(new RingError('RING_TIMEOUT', `rank ${successorRank} did not connect within ${settings.connectTimeoutMs} ms`, { peer: successorRank, generation: m.generation })),
      settings.connectTimeoutMs,
    );
    outbound.then(resolve, reject);
  });
  const [inb, outb] = await Promise.allSettled([
    inbound.catch((err: unknown) => {
      stop ??= asRingError(err);
      endpoint.release(m.generation);
      throw err;
    }),
    outboundByDeadline.catch((err: unknown) => {
      stop ??= asRingError(err);
      throw err;
    }),
  ]);
  clearTimeout(timer);
  if (inb.status === 'fulfilled' && outb.status === 'fulfilled') {
    return new RingImpl(m, settings, log, endpoint, owned, inb.value, outb.value);
  }
  endpoint.release(m.generation);
  if (inb.status === 'fulfilled') inb.value.close(stop);
  if (outb.status === 'fulfilled') outb.value.close(stop);
  if (owned) await endpoint.close();
  // A predecessor this rank could not reach at all says the most about what went wrong.
  const unreachable = inb.status === 'rejected' && isRingError(inb.reason) && inb.reason.details.unreachable ? inb.reason : null;
  const failure = unreachable ?? stop ?? new RingError('RING_TIMEOUT', 'ring formation failed');
  log.warn({ err: failure }, 'ring formation failed');
  throw failure;
}

function asRingError(err: unknown): RingError {
  return isRingError(err) ? err : new RingError('RING_PEER_LOST', String(err), {}, { cause: err });
}

interface Pending {
  readonly algorithm: RingOp;
  readonly op: number;
  readonly resolve: () => void;
  readonly reject: (err: RingError) => void;
  readonly timer: NodeJS.Timeout;
  /** Its part is done, but frames it forwarded from the caller's array are still being written. */
  finished?: boolean;
}

class RingImpl implements Ring {
  readonly generation: number;
  readonly rank: number;
  readonly world: number;
  private readonly settings: Settings;
  private readonly log: RingLogger;
  private readonly endpoint: RingEndpoint;
  private readonly ownsEndpoint: boolean;
  private readonly inbound: Link | undefined;
  private readonly outbound: Link | undefined;
  private readonly window: SendWindow;
  private readonly header = emptyHeader();
  /** The header of a frame whose payload is being placed (see place). */
  private readonly placing = emptyHeader();
  /** Forwarded frames whose payload, in the caller's array, is not yet written. */
  private callerWrites = 0;
  private readonly scratch: ArrayBuffer;
  private readonly early: { frame: Buffer; release: () => void }[] = [];
  /** The inbound frame being handled, and whether the operation forwarded it (its buffer is then released once written). */
  private handling: { frame: Buffer; release: () => void; forwarded: boolean } | null = null;
  private earlyBytes = 0;
  private opSeq = 0;
  private active: Pending | undefined;
  private _state: RingState = 'open';
  private _failure: RingError | undefined;
  private readonly counters = { ops: 0, framesDropped: 0, framesSent: 0, framesReceived: 0, framesPlaced: 0, lastOpWaitMs: 0 };
  /** performance.now() when the active operation was called; null once its first frame came. */
  private opCalledAt: number | null = null;
  private readonly sendDone = (err?: Error | null): void => {
    if (err) this.log.debug({ err }, 'send failed');
  };

  constructor(m: RingMembership, settings: Settings, log: RingLogger, endpoint: RingEndpoint, ownsEndpoint: boolean, inbound: Link | undefined, outbound: Link | undefined) {
    this.generation = m.generation;
    this.rank = m.rank;
    this.world = m.world;
    this.settings = settings;
    this.log = log;
    this.endpoint = endpoint;
    this.ownsEndpoint = ownsEndpoint;
    this.inbound = inbound;
    this.outbound = outbound;
    this.scratch = new ArrayBuffer(settings.segmentBytes);
    this.window = new SendWindow(FRAME_HEADER_BYTES, settings.sendSlots, (head, payload, done) => this.transmit(head, payload, done));
    inbound?.bind(
      (frame, release, placed) => this.onInbound(frame, release, placed),
      (err) => this.fail(err),
      (head, payloadLength) => this.place(head, payloadLength),
    );
    outbound?.bind(
      () => this.fail(new RingFrameError('RING_BAD_FRAME', `rank ${outbound.peer} sent data the wrong way round the ring`, { peer: outbound.peer })),
      (err) => this.fail(err),
    );
    log.info({ segmentBytes: settings.segmentBytes, reads: inbound?.reads }, 'ring formed');
  }

  get state(): RingState {
    return this._state;
  }

  get failure(): RingError | undefined {
    return this._failure;
  }

  get stats(): RingStats {
    return { ...this.counters };
  }

  allReduce(data: Float32Array | Float64Array, options: OpOptions = {}): Promise<void> {
    if (!(data instanceof Float32Array) && !(data instanceof Float64Array)) return Promise.reject(new RingError('RING_INVALID_ARGUMENT', 'allReduce takes a Float32Array or a Float64Array'));
    if (data.length > MAX_U32) return Promise.reject(new RingError('RING_INVALID_ARGUMENT', `allReduce of ${data.length} elements exceeds 2^32 - 1`));
    if (data instanceof Float64Array && this.settings.segmentBytes < 8) return Promise.reject(new RingError('RING_INVALID_ARGUMENT', `a float64 allReduce needs segmentBytes of at least 8, got ${this.settings.segmentBytes}`));
    const kind = data instanceof Float64Array ? OpKind.allReduce64 : OpKind.allReduce;
    return this.run(options, (ctx) => new AllReduceOp(ctx, data, kind, this.scratch)).then(() => undefined);
  }

  barrier(options: OpOptions = {}): Promise<void> {
    return this.run(options, (ctx) => new AllReduceOp(ctx, new Float32Array(0), OpKind.barrier, this.scratch)).then(() => undefined);
  }

  async broadcast(data: Uint8Array | undefined, root: number, options: OpOptions = {}): Promise<Uint8Array> {
    if (!Number.isInteger(root) || root < 0 || root >= this.world) throw new RingError('RING_INVALID_ARGUMENT', `root ${root} is not a rank of a world of ${this.world}`);
    if (data !== undefined && !(data instanceof Uint8Array)) throw new RingError('RING_INVALID_ARGUMENT', 'broadcast takes a Uint8Array');
    if (data && data.length > MAX_U32) throw new RingError('RING_INVALID_ARGUMENT', `broadcast of ${data.length} bytes exceeds 2^32 - 1`);
    if (this.rank === root && !data) throw new RingError('RING_INVALID_ARGUMENT', 'the broadcast root must pass its buffer');
    if (this.world === 1) {
      await this.run(options, undefined);
      return data ?? new Uint8Array(0);
    }
    let op: BroadcastOp | undefined;
    await this.run(options, (ctx) => (op = new BroadcastOp(ctx, data, root, this.settings.maxBroadcastBytes)));
    return op!.value;
  }

  abort(reason = 'aborted'): void {
    this.fail(new RingError('RING_ABORTED', reason, { generation: this.generation }));
  }

  async close(): Promise<void> {
    if (this._state !== 'closed') {
      const err = new RingError('RING_CLOSED', 'the ring was closed', { generation: this.generation });
      const wasOpen = this._state === 'open';
      this._state = 'closed';
      this._failure ??= err;
      this.rejectActive(err);
      if (wasOpen) {
        this.inbound?.close();
        this.outbound?.close();
      }
      this.endpoint.release(this.generation);
      this.log.info({}, 'ring closed');
    }
    if (this.ownsEndpoint) await this.endpoint.close();
  }

  /** Runs one collective; `make` is undefined where there is nothing to exchange (W = 1). */
  private run(options: OpOptions, make: ((ctx: OpContext) => RingOp) | undefined): Promise<void> {
    const step = options.step ?? 0;
    const timeoutMs = options.timeoutMs ?? this.settings.opTimeoutMs;
    if (!Number.isSafeInteger(step) || step < 0) return Promise.reject(new RingError('RING_INVALID_ARGUMENT', `step must be a non-negative safe integer, got ${String(step)}`));
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) return Promise.reject(new RingError('RING_INVALID_ARGUMENT', `timeoutMs must be a positive integer, got ${String(timeoutMs)}`));
    if (this._state !== 'open') {
      const cause = this._failure;
      const code = cause?.code ?? 'RING_CLOSED';
      return Promise.reject(new RingError(code, `the ring is ${this._state}: ${cause?.message ?? ''}`, { generation: this.generation }, { cause }));
    }
    if (this.active) return Promise.reject(new RingError('RING_BUSY', `operation ${this.active.op} is still pending`, { op: this.active.op }));
    if (this.opSeq >= MAX_U32) return Promise.reject(new RingError('RING_INVALID_ARGUMENT', 'operation sequence exhausted; form a new ring'));
    const op = ++this.opSeq;
    if (!make || this.world === 1) {
      this.counters.ops++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const ctx: OpContext = {
        rank: this.rank,
        world: this.world,
        generation: this.generation,
        op,
        step,
        segmentBytes: this.settings.segmentBytes,
        window: this.window,
        send: (frame, payload) => this.forward(frame, payload),
        finished: () => this.finish(op),
      };
      const timer = setTimeout(
        () => this.fail(new RingError('RING_TIMEOUT', `operation ${op} (step ${step}) did not complete within ${timeoutMs} ms`, { generation: this.generation, op })),
        timeoutMs,
      );
      try {
        this.active = { algorithm: make(ctx), op, resolve, reject, timer };
      } catch (err) {
        clearTimeout(timer);
        reject(asRingError(err));
        return;
      }
      this.opCalledAt = performance.now();
      this.active.algorithm.start();
      this.drainEarly();
    });
  }

  private finish(op: number): void {
    const a = this.active;
    if (!a || a.op !== op) return;
    if (this.callerWrites > 0) {
      a.finished = true; // once the caller's bytes it forwards are written (dataWritten)
      return;
    }
    this.active = undefined;
    clearTimeout(a.timer);
    this.counters.ops++;
    a.resolve();
  }

  private rejectActive(err: RingError): void {
    const a = this.active;
    if (!a) return;
    // No more of a frame being read goes into the caller's array, which is the caller's again.
    this.inbound?.cancelPlacement();
    this.active = undefined;
    clearTimeout(a.timer);
    a.reject(err);
  }

  private fail(err: RingError): void {
    if (this._state !== 'open') return;
    this._state = 'failed';
    this._failure = err;
    // An abort is how a member ends a generation on purpose (and travels round the ring as
    // the same code): expected, so not a warning.
    if (err.code === 'RING_ABORTED') this.log.info({ code: err.code, reason: err.message }, 'ring aborted');
    else this.log.warn({ err, code: err.code }, 'ring failed');
    this.rejectActive(err);
    this.inbound?.close(err);
    this.outbound?.close(err);
    this.endpoint.release(this.generation);
    this.early.length = 0;
  }

  /** Sends one frame: `head`, then `payload` unless it is null (the frame is all in `head`). */
  private transmit(head: Buffer, payload: Buffer | null, done: (err?: Error | null) => void): void {
    const link = this.outbound;
    if (!link || this._state !== 'open') {
      queueMicrotask(() => done(new RingError('RING_CLOSED', 'link closed')));
      return;
    }
    this.counters.framesSent++;
    if (payload) link.sendParts(head, payload, done);
    else link.send(head, done);
  }

  /**
   * Sends a frame on as is. The inbound frame being handled keeps its buffer until it is
   * written (a pooled buffer, fast-receive.ts), then hands it back for reuse.
   */
  private forward(frame: Buffer, payload?: Buffer): void {
    if (payload) this.callerWrites++;
    const h = this.handling;
    const own = h !== null && !h.forwarded && frame.buffer === h.frame.buffer && frame.byteOffset === h.frame.byteOffset;
    if (own) h.forwarded = true;
    if (!own && !payload) {
      this.transmit(frame, null, this.sendDone);
      return;
    }
    const release = own ? h.release : null;
    this.transmit(frame, payload ?? null, (err) => {
      release?.();
      if (payload) this.callerWritten();
      this.sendDone(err);
    });
  }

  /** A forwarded frame's payload from the caller's array is written: the operation may now finish. */
  private callerWritten(): void {
    this.callerWrites--;
    const a = this.active;
    if (this.callerWrites === 0 && a?.finished) this.finish(a.op);
  }

  /**
   * Where the payload of the frame being read goes (fast-receive.ts's Placer): the active
   * operation's say, for a valid header of it; anything else is received pooled, and
   * onInbound then judges it as always.
   */
  private place(head: Buffer, payloadLength: number): Buffer | null {
    const a = this.active;
    if (this._state !== 'open' || !a?.algorithm.place) return null;
    let h: FrameHeader;
    try {
      h = decodeHeader(head, payloadLength - FRAME_HEADER_BYTES, this.settings.segmentBytes, this.placing);
    } catch {
      return null;
    }
    if (h.generation !== this.generation || h.op !== a.op) return null;
    return a.algorithm.place(h);
  }

  private onInbound(frame: Buffer, release: () => void, placed = 0): void {
    if (this._state !== 'open') return;
    this.counters.framesReceived++;
    if (placed > 0) this.counters.framesPlaced++;
    let h;
    try {
      h = placed > 0 ? decodeHeader(frame, placed - FRAME_HEADER_BYTES, this.settings.segmentBytes, this.header) : decodeFrame(frame, this.settings.segmentBytes, this.header);
    } catch (err) {
      this.fail(asRingError(err));
      return;
    }
    if (h.generation !== this.generation) {
      if (h.generation < this.generation) this.counters.framesDropped++;
      else this.fail(new RingFrameError('RING_BAD_FRAME', `frame of generation ${h.generation} in a ring of generation ${this.generation}`));
      return;
    }
    const a = this.active;
    if (a && h.op === a.op) {
      if (this.opCalledAt !== null) {
        this.counters.lastOpWaitMs = performance.now() - this.opCalledAt;
        this.opCalledAt = null;
      }
      const handling = (this.handling = { frame, release, forwarded: false });
      try {
        a.algorithm.onFrame(frame, h, placed > 0);
      } catch (err) {
        this.fail(asRingError(err));
      } finally {
        this.handling = null;
        if (!handling.forwarded) release();
      }
      return;
    }
    if (h.op === this.opSeq + 1) {
      this.early.push({ frame, release });
      this.earlyBytes += frame.length;
      if (this.earlyBytes > this.settings.maxQueuedBytes) this.inbound?.pause();
      return;
    }
    if (h.op <= this.opSeq) {
      this.counters.framesDropped++;
      release();
      return;
    }
    this.fail(new RingFrameError('RING_BAD_FRAME', `frame of operation ${h.op} while at operation ${this.opSeq}`));
  }

  private drainEarly(): void {
    if (this.early.length === 0) return;
    const frames = this.early.splice(0);
    this.earlyBytes = 0;
    for (const { frame, release } of frames) {
      this.counters.framesReceived--;
      this.onInbound(frame, release);
    }
    this.inbound?.resume();
  }
}
