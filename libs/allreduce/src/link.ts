/**
 * One authenticated WebSocket between two ring neighbours, after the handshake. It
 * carries data frames, heartbeats (WebSocket ping/pong, because a partitioned TCP
 * connection goes silent instead of closing), and reports exactly once, as a
 * RingError, when it goes down for any reason other than our own close().
 */
import type WebSocket from 'ws';
import { closeWith, errorForClose } from './close.js';
import { RingError } from './errors.js';
import { FastReceiver, type Placer } from './fast-receive.js';
import { FastSender } from './fast-send.js';
import { decodeHandshake, encodeHandshake, HANDSHAKE_VERSION } from './handshake.js';
import type { RingLogger } from './logger.js';

export interface HeartbeatOptions {
  /** How often to ping the peer. */
  readonly intervalMs: number;
  /** How long the peer may stay silent (no frame, ping or pong) before it counts as lost. */
  readonly timeoutMs: number;
}

/**
 * A data frame and how to hand its buffer back for reuse (a no-op for a frame ws
 * assembled); `placed` is 0, or the payload's length when the Placer given to bind took
 * it (fast-receive.ts): `frame` is then only the ring header.
 */
export type FrameHandler = (frame: Buffer, release: () => void, placed: number) => void;

const noop = (): void => {};

export interface LinkOptions {
  readonly peer: number;
  readonly heartbeat: HeartbeatOptions;
  readonly logger: RingLogger;
  /**
   * The handshake's last message (handshake.ts): 'send' for the dialer, which says
   * `ready` once this link listens; 'await' for the endpoint's side, whose first message
   * from the peer must be that `ready` (`whenReady` resolves on it). Default: neither.
   */
  readonly ready?: 'send' | 'await';
}

export class Link {
  readonly peer: number;
  private readonly ws: WebSocket;
  private readonly log: RingLogger;
  private readonly heartbeat: HeartbeatOptions;
  private timer: NodeJS.Timeout | undefined;
  private lastSeen = Date.now();
  private lastTick = Date.now();
  private wsError: Error | undefined;
  private done = false;
  private paused = false;
  // Until bind(), frames and a down event are held, so nothing that arrives between
  // the handshake and the ring taking the link over is lost.
  private early: { frame: Buffer; release: () => void }[] = [];
  private earlyDown: RingError | undefined;
  private onFrame: FrameHandler = (frame, release) => this.early.push({ frame, release });
  private onDown: (err: RingError) => void = (err) => (this.earlyDown = err);
  /** Set while the peer's `ready` is awaited. */
  private awaiting: { resolve: () => void; reject: (err: RingError) => void } | null = null;
  /**
   * How this link reads: 'relay', each read landing where the parser says (a plain dial);
   * 'data-events', parsed from Node's reads; 'ws', ws's own receiver (where its internals
   * were not as fast-receive.ts expects). Logged with the ring, and checked by tests.
   */
  get reads(): 'relay' | 'data-events' | 'ws' {
    return this.fast?.reads ?? 'ws';
  }

  private readonly fast: FastReceiver | null;
  private readonly fastSend: FastSender | null;

  /** Reads of a relayed link that did not land where its parser asked, and were copied (fast-receive.ts). */
  get misplacedReads(): number {
    return this.fast?.misplacedReads ?? 0;
  }
  /** Resolves once the peer said `ready` (at once without options.ready = 'await'); rejects if the link goes down first. */
  readonly whenReady: Promise<void>;

  constructor(ws: WebSocket, options: LinkOptions) {
    this.ws = ws;
    this.peer = options.peer;
    this.log = options.logger;
    this.heartbeat = options.heartbeat;
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data, isBinary) => {
      this.lastSeen = Date.now();
      if (!isBinary || !Buffer.isBuffer(data)) {
        this.fail(new RingError('RING_BAD_FRAME', `text frame from rank ${this.peer}`, { peer: this.peer }));
        return;
      }
      this.deliver(data, noop, 0);
    });
    // Data frames straight into reused buffers where ws allows it (fast-receive.ts).
    const fast = FastReceiver.attach(
      ws,
      (frame, release, placed) => this.deliver(frame, release, placed),
      () => (this.lastSeen = Date.now()),
    );
    this.fast = fast;
    this.fastSend = FastSender.attach(ws);
    this.whenReady =
      options.ready === 'await'
        ? new Promise<void>((resolve, reject) => (this.awaiting = { resolve, reject }))
        : Promise.resolve();
    this.whenReady.catch(() => {}); // a link that goes down first reports it through onDown too
    if (options.ready === 'send') ws.send(encodeHandshake({ type: 'ready', v: HANDSHAKE_VERSION }));
    ws.on('ping', () => (this.lastSeen = Date.now()));
    ws.on('pong', () => (this.lastSeen = Date.now()));
    ws.on('error', (err) => (this.wsError = err));
    ws.on('close', (code, reason) => {
      this.stopHeartbeat();
      if (this.done) return;
      this.done = true;
      this.down(errorForClose(code, reason.toString('utf8'), this.peer, this.wsError));
    });
    this.timer = setInterval(() => this.tick(), this.heartbeat.intervalMs);
    this.timer.unref();
  }

  /** A frame from the peer: its `ready` while one is awaited, else the ring's. */
  private deliver(frame: Buffer, release: () => void, placed: number): void {
    const awaiting = this.awaiting;
    if (!awaiting) {
      this.onFrame(frame, release, placed);
      return;
    }
    this.awaiting = null;
    let ok = false;
    try {
      ok = decodeHandshake(frame).type === 'ready';
    } catch {
      ok = false;
    }
    release();
    if (ok) {
      awaiting.resolve();
      return;
    }
    const err = new RingError('RING_BAD_FRAME', `rank ${this.peer} sent something other than ready after the welcome`, { peer: this.peer });
    awaiting.reject(err);
    this.fail(err);
  }

  /** Reports the link down: to the ring, and to whoever awaits the peer's ready. */
  private down(err: RingError): void {
    const awaiting = this.awaiting;
    this.awaiting = null;
    awaiting?.reject(err);
    this.onDown(err);
  }

  /**
   * Sets the handlers; frames and the down event go to the last ones set. A frame's
   * `release` says its buffer may be reused: call it once the frame is no longer read or
   * written (never calling it is safe, only slower). Frames that come from then on may
   * have their payload read where `placer` says (fast-receive.ts).
   */
  bind(onFrame: FrameHandler, onDown: (err: RingError) => void, placer?: Placer): void {
    this.onFrame = onFrame;
    this.onDown = onDown;
    if (this.fast && placer) this.fast.placer = placer;
    const early = this.early;
    this.early = [];
    for (const { frame, release } of early) onFrame(frame, release, 0);
    if (this.earlyDown) onDown(this.earlyDown);
  }

  /**
   * For a link being closed: the frame being read, if it is being placed, is no longer to
   * be, and its rest is dropped. If one was, the link stops reading at once, so that no
   * read already armed to land in the placer's memory ever happens (the close frame still
   * goes out; the socket is killed after the close grace, close.ts).
   */
  cancelPlacement(): void {
    if (this.fast?.cancelPlacement()) this.ws.pause();
  }

  get isOpen(): boolean {
    return !this.done && this.ws.readyState === this.ws.OPEN;
  }

  /** Bytes queued in ws and the socket, not yet handed to the kernel. */
  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  /** Sends one binary frame without copying it; `cb` runs once it is written or failed. */
  send(frame: Buffer, cb?: (err?: Error) => void): void {
    this.ws.send(frame, { binary: true, compress: false, fin: true }, cb);
  }

  /**
   * Sends one binary frame made of `head` then `payload`, without copying them together
   * where ws allows it (fast-send.ts); `cb` runs once it is written or failed.
   */
  sendParts(head: Buffer, payload: Buffer, cb: (err?: Error | null) => void): void {
    if (this.fastSend?.send(head, payload, cb)) return;
    this.ws.send(Buffer.concat([head, payload]), { binary: true, compress: false, fin: true }, cb);
  }

  /** How sendParts writes: 'parts' (no copy, fast-send.ts) or 'ws' (copied into one buffer for ws.send). */
  get sends(): 'parts' | 'ws' {
    return this.fastSend ? 'parts' : 'ws';
  }

  /** Stops reading (TCP backpressure reaches the peer). Silence is not judged while paused. */
  pause(): void {
    this.paused = true;
    this.ws.pause();
  }

  resume(): void {
    this.paused = false;
    this.ws.resume();
  }

  /** Closes the link; with an error the peer learns its code. Never reports onDown. */
  close(err?: RingError): void {
    if (this.done) return;
    this.done = true;
    const awaiting = this.awaiting;
    this.awaiting = null;
    awaiting?.reject(err ?? new RingError('RING_CLOSED', 'the link was closed before its peer was ready', { peer: this.peer }));
    this.stopHeartbeat();
    closeWith(this.ws, err);
  }

  /** Kills the connection at once, as a cut cable would (tests and shutdown). */
  terminate(): void {
    this.ws.terminate();
  }

  private fail(err: RingError): void {
    if (this.done) return;
    this.log.warn({ err, peer: this.peer }, 'ring link failed');
    this.close(err);
    this.down(err);
  }

  private tick(): void {
    const now = Date.now();
    // If our own event loop was blocked, the peer's pings may be waiting unread in the
    // socket: give it a fresh window rather than blaming it.
    if (this.paused || now - this.lastTick > 2 * this.heartbeat.intervalMs) this.lastSeen = now;
    this.lastTick = now;
    const silent = now - this.lastSeen;
    if (silent > this.heartbeat.timeoutMs) {
      this.fail(new RingError('RING_PEER_LOST', `rank ${this.peer} silent for ${silent} ms`, { peer: this.peer, silentMs: silent }));
      return;
    }
    if (this.ws.readyState === this.ws.OPEN) this.ws.ping();
  }

  private stopHeartbeat(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
