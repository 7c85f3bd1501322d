/**
 * The listening side of a ring member: one WebSocket server per worker, created before
 * membership is known (its port goes to the coordinator) and reused by every ring the
 * worker joins. Each incoming connection must complete the HMAC handshake (see
 * handshake.ts) for a generation that a ring has registered here; it is then handed to
 * that ring as the link to its successor (which dials to receive the data). A connection for a generation not yet
 * registered waits, up to the handshake timeout, for its ring; one for a generation
 * older than the newest registered is refused with RING_STALE_GENERATION.
 *
 * At most `maxPendingConnections` connections may be unauthenticated at once, whether
 * still in the handshake or parked waiting for their ring; more are refused with
 * RING_BUSY. An endpoint given the job's `token` checks a hello's proof before parking
 * it, so that only token holders can wait for a ring (and hold a pending slot past the
 * handshake); it also answers probes (a `probe` in place of the hello, handshake.ts):
 * it proves it holds the token and closes, and the connection never reaches a ring.
 * Refusals are logged at most once per REFUSAL_LOG_MS, with the count of the others. close() has a deadline: connections that have not ended after
 * CLOSE_GRACE_MS (a client that never sends its HTTP upgrade, one that ignores the
 * close frame) are destroyed.
 *
 * With `tls` the endpoint serves wss (a TLS handshake has the same deadline as the ring
 * handshake), and the rings using it dial their successors over wss (tls.ts).
 */
import { createServer } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo, Server, Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { closeWith } from './close.js';
import { RingError } from './errors.js';
import { FRAME_HEADER_BYTES } from './frame.js';
import { encodeHandshake, HANDSHAKE_VERSION, newNonce, probeFields, proof, proofMatches, type HandshakeMessage, type ProofFields, type Token, tokenBytes } from './handshake.js';
import { nextHandshake } from './handshake-io.js';
import { Link, type HeartbeatOptions } from './link.js';
import { silentLogger, type RingLogger } from './logger.js';
import { dialOptions, type RingTls, type TlsDialOptions, validateTls } from './tls.js';

export interface EndpointOptions {
  /** Interface to bind; default 127.0.0.1. */
  readonly host?: string;
  /** Port; default 0 (chosen by the OS, read it back from `endpoint.port`). */
  readonly port?: number;
  /** Largest segment payload a ring using this endpoint may send; default 4 MiB. */
  readonly maxSegmentBytes?: number;
  /** Deadline for an incoming connection to authenticate and find its ring; default 10 s. */
  readonly handshakeTimeoutMs?: number;
  /** Unauthenticated connections allowed at once (mid-handshake, or parked waiting for their ring); more are refused with RING_BUSY. Default 64. */
  readonly maxPendingConnections?: number;
  /** The job's token, to answer probes (probeEndpoint); without it a probe is refused with RING_AUTH_FAILED. Rings bring their own. */
  readonly token?: Token;
  /** Serve wss with this certificate, and dial peers over wss verified as it says; default plain ws. */
  readonly tls?: RingTls;
  readonly logger?: RingLogger;
}

type Hello = Extract<HandshakeMessage, { type: 'hello' }>;

interface Pending {
  readonly ws: WebSocket;
  readonly hello: Hello;
  readonly nonce: Buffer;
  readonly timer: NodeJS.Timeout;
}

interface Registration {
  readonly generation: number;
  readonly rank: number;
  readonly world: number;
  readonly segmentBytes: number;
  readonly token: Buffer;
  readonly heartbeat: HeartbeatOptions;
  readonly logger: RingLogger;
  readonly resolve: (link: Link) => void;
  readonly reject: (err: RingError) => void;
  taken: boolean;
}

export const DEFAULT_MAX_SEGMENT_BYTES = 4 * 1024 * 1024;

/** How long close() lets open connections end by themselves before destroying them. */
export const CLOSE_GRACE_MS = 1000;

/** At most one refusal is logged per this interval; the next line counts those left out. */
export const REFUSAL_LOG_MS = 10_000;

export class RingEndpoint {
  readonly host: string;
  readonly port: number;
  readonly maxSegmentBytes: number;
  private readonly server: WebSocketServer;
  private readonly http: Server;
  /** Every TCP connection the HTTP server accepted and that has not closed yet. */
  private readonly sockets = new Set<Socket>();
  private readonly log: RingLogger;
  private readonly handshakeTimeoutMs: number;
  private readonly maxPending: number;
  private readonly registrations = new Map<number, Registration>();
  private readonly parked = new Set<Pending>();
  private handshaking = 0;
  private newest = -1;
  private closed = false;
  private readonly tlsOptions: RingTls | undefined;
  private readonly token: Buffer | undefined;
  /** When a refusal was last logged, and how many were not logged since. */
  private refusalLog = { at: -Infinity, unlogged: 0 };

  /** Use `listen()`. */
  constructor(server: WebSocketServer, http: Server, host: string, options: EndpointOptions) {
    this.server = server;
    this.http = http;
    this.host = host;
    this.port = (http.address() as AddressInfo).port;
    this.maxSegmentBytes = options.maxSegmentBytes ?? DEFAULT_MAX_SEGMENT_BYTES;
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? 10_000;
    this.maxPending = options.maxPendingConnections ?? 64;
    this.tlsOptions = options.tls;
    this.token = options.token === undefined ? undefined : tokenBytes(options.token);
    this.log = (options.logger ?? silentLogger).child({ component: 'ring-endpoint', port: this.port });
    server.on('connection', (ws) => void this.onConnection(ws));
    http.on('connection', (socket: Socket) => {
      if (this.closed) {
        socket.destroy();
        return;
      }
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Whether this endpoint serves TLS (and its rings dial over it). */
  get tls(): boolean {
    return this.tlsOptions !== undefined;
  }

  /** How a ring using this endpoint dials `host`: over TLS with these options, or plain. Internal to the library. */
  dialTls(host: string): TlsDialOptions | undefined {
    return this.tlsOptions && dialOptions(this.tlsOptions, host);
  }

  /**
   * Registers a ring of `generation` at `rank` and resolves with the authenticated link
   * from its successor, which dials this rank to receive its data, once the successor
   * said it is ready. Internal to the library: `createRing` calls it.
   */
  expectSuccessor(r: Omit<Registration, 'resolve' | 'reject' | 'taken'>): Promise<Link> {
    if (this.closed) return Promise.reject(new RingError('RING_CLOSED', 'the endpoint is closed'));
    if (r.generation < this.newest) {
      return Promise.reject(new RingError('RING_STALE_GENERATION', `generation ${r.generation} is older than ${this.newest}`, { generation: r.generation }));
    }
    if (this.registrations.has(r.generation)) {
      return Promise.reject(new RingError('RING_INVALID_ARGUMENT', `a ring of generation ${r.generation} already uses this endpoint`, { generation: r.generation }));
    }
    return new Promise<Link>((resolve, reject) => {
      const reg: Registration = { ...r, resolve, reject, taken: false };
      this.registrations.set(r.generation, reg);
      this.newest = Math.max(this.newest, r.generation);
      for (const p of this.parked) {
        if (p.hello.generation === r.generation) this.verify(p, reg);
        else if (p.hello.generation < this.newest) this.refuse(p, new RingError('RING_STALE_GENERATION', `generation ${p.hello.generation} is stale`));
      }
    });
  }

  /** Forgets a generation's registration (the ring closed or failed to form). */
  release(generation: number): void {
    const reg = this.registrations.get(generation);
    if (!reg) return;
    this.registrations.delete(generation);
    if (!reg.taken) reg.reject(new RingError('RING_CLOSED', `registration for generation ${generation} released`, { generation }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const gen of [...this.registrations.keys()]) this.release(gen);
    for (const p of this.parked) this.refuse(p, new RingError('RING_CLOSED', 'the endpoint is closing'));
    for (const ws of this.server.clients) ws.terminate();
    this.server.close();
    // Connections still open after the grace period (say, a client that never sent its
    // HTTP upgrade) are destroyed, so that close() has a deadline.
    await new Promise<void>((resolve) => {
      const grace = setTimeout(() => {
        for (const socket of this.sockets) socket.destroy();
      }, CLOSE_GRACE_MS);
      this.http.close(() => {
        clearTimeout(grace);
        resolve();
      });
    });
  }

  /** Connections not yet authenticated: in the handshake or parked waiting for their ring. */
  private get unauthenticated(): number {
    return this.handshaking + this.parked.size;
  }

  private async onConnection(ws: WebSocket): Promise<void> {
    // A protocol error must never become an uncaught 'error' event; the close that
    // follows it is what the owner of the socket acts on.
    ws.on('error', (err) => this.log.debug({ err }, 'incoming connection error'));
    if (this.closed || this.unauthenticated >= this.maxPending) {
      closeWith(ws, new RingError(this.closed ? 'RING_CLOSED' : 'RING_BUSY', 'too many pending connections'));
      return;
    }
    this.handshaking++;
    const started = Date.now();
    try {
      const nonce = newNonce();
      ws.send(encodeHandshake({ type: 'challenge', v: HANDSHAKE_VERSION, nonce }));
      const msg = await nextHandshake(ws, this.handshakeTimeoutMs, -1);
      if (msg.type === 'probe') {
        this.answerProbe(ws, msg, nonce);
        return;
      }
      if (msg.type !== 'hello') {
        closeWith(ws, new RingError('RING_BAD_FRAME', `handshake: expected hello, got ${msg.type}`));
        return;
      }
      if (msg.generation < this.newest) {
        closeWith(ws, new RingError('RING_STALE_GENERATION', `generation ${msg.generation} is older than ${this.newest}`));
        return;
      }
      if (this.token !== undefined && !proofMatches(proof(this.token, 'hello', helloFields(nonce, msg)), msg.mac)) {
        this.logRefusal(new RingError('RING_AUTH_FAILED', 'bad proof of the job token'), msg);
        closeWith(ws, new RingError('RING_AUTH_FAILED', 'bad proof of the job token'));
        return;
      }
      const remaining = this.handshakeTimeoutMs - (Date.now() - started);
      const pending: Pending = {
        ws,
        hello: msg,
        nonce,
        timer: setTimeout(() => this.refuse(pending, new RingError('RING_TIMEOUT', `no ring of generation ${msg.generation} here`)), Math.max(0, remaining)),
      };
      this.parked.add(pending);
      ws.once('close', () => this.unpark(pending));
      const reg = this.registrations.get(msg.generation);
      if (reg) this.verify(pending, reg);
    } catch (err) {
      this.log.debug({ err }, 'incoming handshake failed');
    } finally {
      this.handshaking--;
    }
  }

  /** A prober holding the token learns that this endpoint holds it too; the connection then closes. */
  private answerProbe(ws: WebSocket, msg: Extract<HandshakeMessage, { type: 'probe' }>, nonce: Buffer): void {
    const fields = probeFields(nonce, msg.nonce);
    if (this.token === undefined || !proofMatches(proof(this.token, 'probe', fields), msg.mac)) {
      closeWith(ws, new RingError('RING_AUTH_FAILED', this.token === undefined ? 'this endpoint answers no probes' : 'bad proof of the job token'));
      return;
    }
    ws.send(encodeHandshake({ type: 'welcome', v: HANDSHAKE_VERSION, mac: proof(this.token, 'probe-welcome', fields) }));
    closeWith(ws);
  }

  private unpark(p: Pending): boolean {
    clearTimeout(p.timer);
    return this.parked.delete(p);
  }

  private refuse(p: Pending, err: RingError): void {
    if (!this.unpark(p)) return;
    this.logRefusal(err, p.hello);
    closeWith(p.ws, err);
  }

  /** Logs a refused connection, at most once per REFUSAL_LOG_MS: a flood of bad peers must not flood the log. */
  private logRefusal(err: RingError, hello: Hello): void {
    const now = Date.now();
    if (now - this.refusalLog.at < REFUSAL_LOG_MS) {
      this.refusalLog.unlogged++;
      return;
    }
    const unlogged = this.refusalLog.unlogged;
    this.refusalLog = { at: now, unlogged: 0 };
    this.log.warn({ err, from: hello.from, generation: hello.generation, ...(unlogged > 0 ? { unlogged } : {}) }, 'ring connection refused');
  }

  private verify(p: Pending, reg: Registration): void {
    const h = p.hello;
    const fields = helloFields(p.nonce, h);
    if (!proofMatches(proof(reg.token, 'hello', fields), h.mac)) {
      this.refuse(p, new RingError('RING_AUTH_FAILED', 'bad proof of the job token'));
      return;
    }
    // The successor dials: it is the rank this one sends to (ring.ts).
    const successor = (reg.rank + 1) % reg.world;
    if (h.to !== reg.rank || h.world !== reg.world || h.from !== successor || reg.taken) {
      const why = reg.taken ? 'the successor is already connected' : `expected rank ${successor} -> ${reg.rank} of ${reg.world}`;
      this.refuse(p, new RingError('RING_AUTH_FAILED', `not a member of this ring: ${why}`));
      return;
    }
    if (h.segmentBytes !== reg.segmentBytes) {
      this.refuse(p, new RingError('RING_OP_MISMATCH', `segment size ${h.segmentBytes} differs from ours, ${reg.segmentBytes}`));
      return;
    }
    if (!this.unpark(p)) return;
    reg.taken = true;
    p.ws.send(encodeHandshake({ type: 'welcome', v: HANDSHAKE_VERSION, mac: proof(reg.token, 'welcome', fields) }));
    // The link is the ring's once the successor says it listens (its `ready`).
    const link = new Link(p.ws, { peer: h.from, heartbeat: reg.heartbeat, logger: reg.logger, ready: 'await' });
    link.whenReady.then(() => reg.resolve(link), (err: RingError) => reg.reject(err));
  }
}

/** What a hello's proof covers: the two nonces and the ring position it claims. */
function helloFields(serverNonce: Buffer, h: Hello): ProofFields {
  return { serverNonce, clientNonce: h.nonce, generation: h.generation, from: h.from, to: h.to, world: h.world, segmentBytes: h.segmentBytes };
}

/** Starts listening. The endpoint serves every ring this worker joins until closed. */
export async function listen(options: EndpointOptions = {}): Promise<RingEndpoint> {
  const host = options.host ?? '127.0.0.1';
  const maxSegmentBytes = options.maxSegmentBytes ?? DEFAULT_MAX_SEGMENT_BYTES;
  if (!Number.isInteger(maxSegmentBytes) || maxSegmentBytes < 4 || maxSegmentBytes % 4 !== 0) {
    throw new RingError('RING_INVALID_ARGUMENT', `maxSegmentBytes must be a positive multiple of 4, got ${maxSegmentBytes}`);
  }
  if (options.tls) validateTls(options.tls);
  // The HTTP server is ours, not ws's, so that close() can see and destroy every socket.
  const http = options.tls
    ? createTlsServer({ cert: options.tls.cert, key: options.tls.key, handshakeTimeout: options.handshakeTimeoutMs ?? 10_000 })
    : createServer();
  await new Promise<void>((resolve, reject) => {
    http.once('listening', resolve);
    http.once('error', (err) => reject(new RingError('RING_INVALID_ARGUMENT', `cannot listen on ${host}:${options.port ?? 0}: ${err.message}`, {}, { cause: err })));
    http.listen(options.port ?? 0, host);
  });
  const server = new WebSocketServer({
    server: http,
    perMessageDeflate: false,
    maxPayload: FRAME_HEADER_BYTES + maxSegmentBytes,
    clientTracking: true,
  });
  return new RingEndpoint(server, http, host, { ...options, maxSegmentBytes });
}
