/**
 * Receiving a ring link's data frames into reused buffers.
 *
 * ws assembles every message into a new Buffer (Buffer.allocUnsafe of its length, then
 * a copy of the socket's pieces into it). At a 1 MiB segment that is an allocation of
 * 1 MiB per frame, hundreds per all-reduce, and the garbage collector then ran for a
 * fifth of the ring's CPU time (bench/allreduce, measured with --cpu-prof). Here a
 * link's socket is read by a small RFC 6455 frame parser instead: a whole, unfragmented
 * binary frame, masked as its direction requires and within the maximum payload, is
 * copied (and unmasked) straight into a buffer from a pool, which returns to the pool
 * when the ring has done with it (release: after it was read, or after it was forwarded
 * and written). That is the one frame kind the ring sends.
 *
 * Everything else (control frames, fragmented or text messages, reserved bits, wrong
 * masking, a frame over the limit) is handed, byte for byte, to ws's own receiver, which
 * answers pings, reads close codes and refuses protocol errors exactly as before: the
 * fast path only ever takes frames ws would have delivered as one message.
 *
 * It reaches into ws's private fields (_socket, _receiver and the receiver's state), so
 * FastReceiver.attach checks what it needs and leaves the connection to ws where
 * anything is not as expected (the ws path is always correct, only slower); link.spec.ts
 * checks that binary frames do come through the pool, so a ws upgrade that changes those
 * fields fails a test rather than quietly losing the speed.
 */
import { connect, type NetConnectOpts, type Socket } from 'node:net';
import type { Writable } from 'node:stream';
import type WebSocket from 'ws';
import { arenaOf, FrameArena } from './frame-arena.js';
import { FRAME_HEADER_BYTES } from './frame.js';

/**
 * How a socket a ring dialed with relayedConnection reads: until a FastReceiver takes it
 * over, into one scratch buffer whose bytes go to ws as 'data' events; after, wherever
 * the receiver says the next bytes belong (`pull`).
 */
interface Relay {
  pull: FastReceiver | null;
}
const relays = new WeakMap<Socket, Relay>();

/** The scratch buffer a relayed socket reads into before the takeover (the HTTP upgrade and the handshake). */
export const RELAY_READ_BYTES = 64 * 1024;

/**
 * ws's `createConnection` for a plain (not TLS) ring dial: a socket that reads into memory
 * it is given (net.Socket's `onread`) instead of a new 64 KiB Buffer per read, which Node
 * allocates and the collector then frees. Until a FastReceiver attaches, each read is
 * copied and emitted as a 'data' event, so the HTTP upgrade and ws's handshake read it as
 * from any socket. After, each read goes where the receiver asks for the next bytes
 * (FastReceiver.nextBuffer): a frame's header into a small buffer, its payload straight
 * into the pooled frame it will be delivered in, so a data frame is never copied in
 * JavaScript on the way in.
 */
export function relayedConnection(options: NetConnectOpts & { socketPath?: string }): Socket {
  const relay: Relay = { pull: null };
  const scratch = Buffer.allocUnsafeSlow(RELAY_READ_BYTES);
  const socket = connect({
    ...options,
    ...(options.socketPath ? { path: options.socketPath } : {}),
    onread: {
      // Called before every read: the memory the next read may fill, and at most how much.
      buffer: (): Uint8Array => relay.pull?.nextBuffer() ?? scratch,
      callback: (n: number, buf: Uint8Array): boolean => {
        if (relay.pull) relay.pull.onRead(n, buf);
        else socket.emit('data', Buffer.from(buf.subarray(0, n)));
        return true; // pausing is the socket's own (pause()), as for any socket
      },
    },
  } as NetConnectOpts);
  relays.set(socket, relay);
  return socket;
}

/**
 * A frame delivered from the pool; `release` hands its buffer back (once the ring is done
 * with it). `placed` is 0, or the payload length when a Placer took the payload: `frame`
 * is then only its first PLACE_AFTER bytes.
 */
export type PooledFrameHandler = (frame: Buffer, release: () => void, placed: number) => void;

/** Bytes of a data frame's payload read before its Placer is asked: the ring's frame header. */
export const PLACE_AFTER = 40;

/**
 * Asked when the first PLACE_AFTER bytes of a data frame's payload (`head`) are in, the
 * payload being `payloadLength` bytes: the memory the rest should be read into (exactly
 * payloadLength - PLACE_AFTER bytes), or null to read it into the pooled frame as usual.
 * The ring places an all-gather's payload straight into the caller's array.
 */
export type Placer = (head: Buffer, payloadLength: number) => Buffer | null;

interface WsReceiverInternals extends Writable {
  _maxPayload: number;
  _bufferedBytes: number;
  _state: number;
  _fragments: unknown[];
}

interface WsInternals {
  _socket?: Socket;
  _receiver?: WsReceiverInternals;
  _isServer?: boolean;
}

/**
 * Buffers kept for reuse (each at most a frame: a segment and its header); more in use at
 * once are allocated and left to the collector. A worker's memory plan counts them with
 * receivePoolBytes.
 */
export const RECEIVE_POOL_FRAMES = 32;

/** The most memory a link's receive pool holds at `segmentBytes`: its arena's slots and stage (frame-arena.ts). */
export function receivePoolBytes(segmentBytes: number): number {
  return FrameArena.bytesFor(FRAME_HEADER_BYTES + segmentBytes, RECEIVE_POOL_FRAMES);
}
/**
 * Frames from this size go into the WebAssembly arena, where the all-reduce adds in SIMD;
 * smaller ones (barriers, handshakes) into plain buffers, so that a link that only ever
 * sees those never reserves an arena.
 */
const ARENA_MIN_FRAME = 4096;
const noop = (): void => {};

export class FastReceiver {
  /** The frame header read so far (at most 2 + 8 + 4 bytes). */
  private readonly head = Buffer.alloc(14);
  private headLength = 0;
  private headNeed = 2;
  /** 'head': reading a header; 'fast': a payload into `message`; 'delegate': a frame's bytes to ws's receiver. */
  private mode: 'head' | 'fast' | 'delegate' = 'head';
  private left = 0;
  private message: Buffer | null = null;
  private length = 0;
  private filled = 0;
  private readonly mask = Buffer.alloc(4);
  private masked = false;
  /** ws's receiver holds part of a fragmented message: every frame goes to it until the message ends. */
  private fragmented = false;
  /** Plain buffers for reuse, while there is no arena. */
  private readonly free: Buffer[] = [];
  /** Where data frames go, made at the first one (null: none to be had, or not yet). */
  private arena: FrameArena | null = null;
  private arenaTried = false;
  /** Where the current frame's payload beyond PLACE_AFTER goes, when placed. */
  private target: Buffer | null = null;
  /** Whether the current frame's Placer has been asked (or need not be). */
  private asked = true;
  /** The current frame was placed and its placement cancelled: it is read, then dropped. */
  private discard = false;

  /** Set by the link's owner: where data frames' payloads go (see Placer). */
  placer: Placer | null = null;

  /** How the socket's reads reach this parser: where it says (a relayed dial, nextBuffer), or as Node's 'data' events. */
  reads: 'relay' | 'data-events' = 'data-events';

  private constructor(
    private readonly receiver: WsReceiverInternals,
    private readonly isServer: boolean,
    private readonly onFrame: PooledFrameHandler,
    private readonly onActivity: () => void,
  ) {}

  /**
   * Takes over reading `ws`'s socket, or returns null (ws keeps it) when ws's internals
   * are not as this version expects or its receiver is partway through a frame.
   */
  static attach(ws: WebSocket, onFrame: PooledFrameHandler, onActivity: () => void): FastReceiver | null {
    const w = ws as unknown as WsInternals;
    const socket = w._socket;
    const receiver = w._receiver;
    if (!socket || !receiver || typeof receiver._maxPayload !== 'number' || typeof w._isServer !== 'boolean') return null;
    // Only at a frame boundary with nothing buffered: the handshake has just ended, and
    // the peer sends nothing before it has our reply (handshake.ts).
    if (receiver._bufferedBytes !== 0 || receiver._state !== 0 || !Array.isArray(receiver._fragments) || receiver._fragments.length !== 0) return null;
    const wsReaders = socket.listeners('data').filter((l) => (l as { name?: string }).name === 'socketOnData');
    if (wsReaders.length !== 1 || socket.listenerCount('data') !== 1) return null;
    const fast = new FastReceiver(receiver, w._isServer, onFrame, onActivity);
    socket.removeListener('data', wsReaders[0] as (chunk: Buffer) => void);
    const relay = relays.get(socket);
    if (relay) {
      relay.pull = fast;
      fast.reads = 'relay';
    } else {
      socket.on('data', (chunk: Buffer) => fast.feed(chunk));
    }
    return fast;
  }

  /** Scratch for a delegated frame's bytes read in pull mode (they are copied to ws's receiver). */
  private delegateScratch: Buffer | null = null;
  /** The view nextBuffer last handed out: a read that lands in it needs no copy. */
  private expected: Uint8Array | null = null;
  /** Reads of a relayed socket that landed elsewhere and were copied (the first after the takeover: its buffer was chosen before). */
  misplacedReads = 0;

  /**
   * Where the next read should go (a relayed socket asks before every read): the rest of
   * the header into the header buffer, a fast frame's payload straight into its pooled
   * buffer, a delegated frame's bytes into a scratch buffer. Each is exactly what the
   * current piece still needs, so a read never spans two frames.
   */
  nextBuffer(): Uint8Array {
    let view: Uint8Array;
    if (this.mode === 'head') {
      view = this.head.subarray(this.headLength, this.headNeed);
    } else if (this.mode === 'fast') {
      if (!this.asked) view = this.message!.subarray(this.filled, PLACE_AFTER);
      else if (this.target) view = this.target.subarray(this.filled - PLACE_AFTER, this.length - PLACE_AFTER);
      else view = this.message!.subarray(this.filled, this.length);
    } else {
      this.delegateScratch ??= Buffer.allocUnsafeSlow(RELAY_READ_BYTES);
      view = this.delegateScratch.subarray(0, Math.min(this.left, RELAY_READ_BYTES));
    }
    this.expected = view;
    return view;
  }

  /** `n` bytes were read into `buf`: where nextBuffer said (no copy), or, if anywhere else, parsed as a chunk. */
  onRead(n: number, buf: Uint8Array): void {
    const expected = this.expected;
    this.expected = null;
    if (!expected || buf.buffer !== expected.buffer || buf.byteOffset !== expected.byteOffset || n > expected.length) {
      this.misplacedReads++;
      this.feed(Buffer.from(buf.buffer, buf.byteOffset, n));
      return;
    }
    if (this.closed) return;
    this.onActivity();
    if (this.mode === 'head') this.headArrived(n);
    else this.payloadArrived(n, buf.subarray(0, n));
  }

  /**
   * Parses `chunk`, which may hold any part of any number of frames. It is read before
   * this returns and never kept: a relayed socket reads the next piece into the same memory.
   */
  feed(chunk: Buffer): void {
    if (this.closed) return;
    this.onActivity();
    let at = 0;
    while (at < chunk.length) {
      if (this.mode === 'head') {
        const n = Math.min(this.headNeed - this.headLength, chunk.length - at);
        chunk.copy(this.head, this.headLength, at, at + n);
        at += n;
        this.headArrived(n);
        continue;
      }
      let n = Math.min(this.left, chunk.length - at);
      if (this.mode === 'fast') {
        if (!this.asked) n = Math.min(n, PLACE_AFTER - this.filled);
        if (this.target) chunk.copy(this.target, this.filled - PLACE_AFTER, at, at + n);
        else chunk.copy(this.message!, this.filled, at, at + n);
      }
      this.payloadArrived(n, chunk.subarray(at, at + n));
      at += n;
    }
  }

  /**
   * The owner of the memory the current frame is being placed into no longer wants it
   * there (its operation failed): whatever of it is still parsed goes to the pooled frame,
   * which is dropped. Returns whether a placement was under way: the socket's next read
   * may then already be armed to land in that memory (Node asks for the next buffer right
   * after each read), so the caller must stop reading the socket.
   */
  cancelPlacement(): boolean {
    if (!this.target) return false;
    this.target = null;
    this.discard = true;
    this.message = Buffer.allocUnsafe(this.length); // somewhere for the rest, to be dropped
    return true;
  }

  /** ws has failed or closed the connection: nothing more is read. */
  private get closed(): boolean {
    const r = this.receiver;
    return r.destroyed || r.writableEnded || r.writableFinished;
  }

  /** `n` more header bytes are in `head`. */
  private headArrived(n: number): void {
    this.headLength += n;
    if (this.headLength === this.headNeed) this.onHeadBytes();
  }

  /**
   * `n` more payload bytes arrived: for a fast frame already in place at message[filled]
   * (unmasked here), for a delegated one in `bytes`, which go to ws's receiver.
   */
  private payloadArrived(n: number, bytes: Uint8Array): void {
    if (this.mode === 'fast') {
      if (this.masked) {
        const m = this.message!;
        const k = this.mask;
        for (let i = this.filled, end = this.filled + n; i < end; i++) m[i] = m[i]! ^ k[i & 3]!;
      }
      this.filled += n;
      if (!this.asked && this.filled === PLACE_AFTER) {
        this.asked = true;
        const target = this.placer?.(this.message!.subarray(0, PLACE_AFTER), this.length) ?? null;
        if (target && target.length === this.length - PLACE_AFTER) {
          // Only the header stays with the frame: its pooled buffer is free again at once.
          this.target = target;
          const slot = this.message!;
          this.message = Buffer.from(slot.subarray(0, PLACE_AFTER));
          this.giveBack(slot);
        }
      }
    } else if (!this.closed) {
      this.receiver.write(Buffer.from(bytes)); // a copy: ws keeps what it is given
    }
    this.left -= n;
    if (this.left === 0) this.endFrame();
  }

  /** A header is complete so far: grow it to its full length, or decide how its payload goes. */
  private onHeadBytes(): void {
    const h = this.head;
    const len7 = h[1]! & 0x7f;
    const masked = (h[1]! & 0x80) !== 0;
    const full = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (masked ? 4 : 0);
    if (this.headLength < full) {
      this.headNeed = full;
      return;
    }
    let length: number;
    if (len7 === 126) length = h.readUInt16BE(2);
    else if (len7 === 127) length = h.readUInt32BE(2) * 2 ** 32 + h.readUInt32BE(6);
    else length = len7;
    const fin = (h[0]! & 0x80) !== 0;
    const rsv = h[0]! & 0x70;
    const opcode = h[0]! & 0x0f;
    const fast = !this.fragmented && opcode === 0x2 && fin && rsv === 0 && masked === this.isServer && (this.receiver._maxPayload === 0 || length <= this.receiver._maxPayload);
    if (opcode <= 0x2) this.fragmented = !fin; // a data frame (0 continuation, 1 text, 2 binary): a message open or closed
    this.left = length;
    if (fast) {
      this.mode = 'fast';
      this.masked = masked && (h[full - 4]! | h[full - 3]! | h[full - 2]! | h[full - 1]!) !== 0;
      if (this.masked) h.copy(this.mask, 0, full - 4, full);
      this.length = length;
      this.filled = 0;
      this.message = this.take(length);
      // Masked frames (the control way) are never placed: their unmasking runs in the frame.
      this.asked = this.placer === null || this.masked || length <= PLACE_AFTER;
      this.target = null;
      this.discard = false;
    } else {
      // ws's receiver reads this frame as it always did (and refuses it, if it must).
      this.mode = 'delegate';
      this.receiver.write(Buffer.from(h.subarray(0, full)));
    }
    this.headLength = 0;
    this.headNeed = 2;
    if (length === 0) this.endFrame();
  }

  private endFrame(): void {
    const mode = this.mode;
    this.mode = 'head';
    if (mode !== 'fast') return;
    const buf = this.message!;
    this.message = null;
    const placed = this.target ? this.length : 0;
    this.target = null;
    let released = false;
    // A placed frame's header is its own small buffer, left to the collector.
    const release = buf.length === 0 || placed ? noop : (): void => {
      if (released) return;
      released = true;
      this.giveBack(buf);
    };
    if (this.discard) {
      release();
      return;
    }
    this.onFrame(buf.subarray(0, placed ? PLACE_AFTER : this.length), release, placed);
  }

  /** Returns a buffer `take` handed out to the arena or the free list (or to the collector, when full). */
  private giveBack(buf: Buffer): void {
    if (this.arena && arenaOf(buf.buffer) === this.arena) this.arena.give(buf);
    else if (!this.arena && this.free.length < RECEIVE_POOL_FRAMES) this.free.push(buf);
  }

  /**
   * A buffer of at least `n` bytes: an arena slot, a free plain buffer, or a new one (left
   * to the collector once released, when the arena is full).
   */
  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    if (n >= ARENA_MIN_FRAME && !this.arenaTried) {
      this.arenaTried = true;
      // ws refuses frames over its maximum payload, so every fast frame fits a slot of it.
      if (this.receiver._maxPayload > 0) this.arena = FrameArena.create(this.receiver._maxPayload, RECEIVE_POOL_FRAMES);
      if (this.arena) this.free.length = 0;
    }
    if (this.arena) return this.arena.take(n) ?? Buffer.allocUnsafeSlow(n);
    for (let i = 0; i < this.free.length; i++) {
      const b = this.free[i]!;
      if (b.length >= n) {
        this.free[i] = this.free[this.free.length - 1]!;
        this.free.pop();
        return b;
      }
    }
    // Its own ArrayBuffer (not a slice of Node's shared pool), so the payload after the
    // 40-byte ring header is 4-byte aligned and can be viewed as float32 in place.
    return Buffer.allocUnsafeSlow(n);
  }
}
