/**
 * The connecting side of a ring link: rank r dials its predecessor, the rank it receives
 * data from (so that it reads from a socket it created: fast-receive.ts's relay), answers
 * the server's challenge with an HMAC proof of the job token, checks the server's proof in
 * turn, and says `ready` once its link listens. Refused or reset connections are retried
 * until the deadline (the predecessor may not be listening yet); an authentication
 * failure or a stale generation is final.
 *
 * Client frames must be masked (RFC 6455), so they use a zero mask: ws then skips the
 * XOR pass over the payload and writes the payload buffer as is, without a copy.
 *
 * When the endpoint serves TLS the dial is over wss, verified as tls.ts says; a TLS
 * failure (RING_TLS_FAILED) is final like an authentication failure (retrying cannot
 * make a certificate verify) and, like no connection at all, marks the predecessor
 * `unreachable`.
 */
import WebSocket from 'ws';
import { closeWith } from './close.js';
import { relayedConnection } from './fast-receive.js';
import { FRAME_HEADER_BYTES } from './frame.js';
import { RingError, type RingErrorCode } from './errors.js';
import { encodeHandshake, HANDSHAKE_VERSION, newNonce, proof, proofMatches } from './handshake.js';
import { nextHandshake } from './handshake-io.js';
import { Link, type HeartbeatOptions } from './link.js';
import type { RingLogger } from './logger.js';
import type { TlsDialOptions } from './tls.js';

export interface DialOptions {
  readonly host: string;
  readonly port: number;
  readonly generation: number;
  readonly from: number;
  readonly to: number;
  readonly world: number;
  readonly segmentBytes: number;
  readonly token: Buffer;
  /** Absolute time (Date.now()) by which the link must be up. */
  readonly deadline: number;
  readonly heartbeat: HeartbeatOptions;
  readonly logger: RingLogger;
  /** Set by the caller to stop retrying (the ring was aborted while forming). */
  readonly cancelled?: () => RingError | undefined;
  /** Dial over TLS (wss) with these options: the endpoint serves TLS, so its rings dial with it. */
  readonly tls?: TlsDialOptions;
}

/** Writes a zero masking key, which makes ws skip masking. */
export function zeroMask(mask: Uint8Array): void {
  mask[0] = mask[1] = mask[2] = mask[3] = 0;
}

const FINAL: ReadonlySet<RingErrorCode> = new Set(['RING_AUTH_FAILED', 'RING_STALE_GENERATION', 'RING_BAD_FRAME', 'RING_FRAME_TOO_LARGE', 'RING_CLOSED', 'RING_ABORTED', 'RING_TLS_FAILED']);

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Connects to the successor and authenticates, retrying until the deadline. */
export async function dial(o: DialOptions): Promise<Link> {
  let delay = 20;
  let last: RingError | undefined;
  for (;;) {
    // The deadline first: the inbound side's deadline is the same instant, and a
    // successor that never answered is the more useful verdict.
    const remaining = o.deadline - Date.now();
    if (remaining <= 0) {
      throw new RingError('RING_TIMEOUT', `could not connect to rank ${o.to} at ${o.host}:${o.port}: ${last?.message ?? 'no answer'}`, { peer: o.to, generation: o.generation, unreachable: true }, { cause: last });
    }
    const cancelled = o.cancelled?.();
    if (cancelled) throw cancelled;
    try {
      return await attempt(o, remaining);
    } catch (err) {
      // No TLS with the successor is evidence against its endpoint, as no connection is:
      // the coordinator checks that endpoint itself, with its own CA (probe.ts).
      if (err instanceof RingError && err.code === 'RING_TLS_FAILED') {
        throw new RingError(err.code, `${err.message} at ${o.host}:${o.port}`, { ...err.details, peer: o.to, generation: o.generation, unreachable: true }, { cause: err.cause });
      }
      if (!(err instanceof RingError) || FINAL.has(err.code)) throw err;
      // An attempt that the deadline itself cut short says only that; the error before it says why (ECONNREFUSED, say).
      if (last === undefined || Date.now() < o.deadline) last = err;
      o.logger.debug({ err, peer: o.to }, 'dial failed; retrying');
    }
    await sleep(Math.min(delay, Math.max(0, o.deadline - Date.now())));
    delay = Math.min(delay * 2, 500);
  }
}

async function attempt(o: DialOptions, timeoutMs: number): Promise<Link> {
  const ws = new WebSocket(`${o.tls ? 'wss' : 'ws'}://${o.host}:${o.port}/`, {
    ...o.tls,
    perMessageDeflate: false,
    generateMask: zeroMask,
    // The data comes this way: a segment and its header at most.
    maxPayload: FRAME_HEADER_BYTES + o.segmentBytes,
    handshakeTimeout: timeoutMs,
    // A plain socket's reads land where the receiver says (fast-receive.ts; TLS keeps Node's own reads).
    ...(o.tls ? {} : { createConnection: relayedConnection as unknown as WebSocket.ClientOptions['createConnection'] }),
  });
  ws.on('error', (err) => o.logger.debug({ err, peer: o.to }, 'outgoing connection error'));
  try {
    const challenge = await nextHandshake(ws, timeoutMs, o.to);
    if (challenge.type !== 'challenge') throw new RingError('RING_BAD_FRAME', `handshake: expected challenge, got ${challenge.type}`, { peer: o.to });
    const nonce = newNonce();
    const fields = { serverNonce: challenge.nonce, clientNonce: nonce, generation: o.generation, from: o.from, to: o.to, world: o.world, segmentBytes: o.segmentBytes };
    ws.send(encodeHandshake({ type: 'hello', v: HANDSHAKE_VERSION, generation: o.generation, from: o.from, to: o.to, world: o.world, segmentBytes: o.segmentBytes, nonce, mac: proof(o.token, 'hello', fields) }));
    const welcome = await nextHandshake(ws, Math.max(0, o.deadline - Date.now()), o.to);
    if (welcome.type !== 'welcome') throw new RingError('RING_BAD_FRAME', `handshake: expected welcome, got ${welcome.type}`, { peer: o.to });
    if (!proofMatches(proof(o.token, 'welcome', fields), welcome.mac)) {
      throw new RingError('RING_AUTH_FAILED', `rank ${o.to} could not prove it holds the job token`, { peer: o.to });
    }
    return new Link(ws, { peer: o.to, heartbeat: o.heartbeat, logger: o.logger, ready: 'send' });
  } catch (err) {
    const ringErr = err instanceof RingError ? err : new RingError('RING_PEER_LOST', String(err), { peer: o.to }, { cause: err });
    if (ws.readyState === WebSocket.OPEN) closeWith(ws, ringErr);
    else ws.terminate();
    throw ringErr;
  }
}
