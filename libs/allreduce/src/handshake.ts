/**
 * The handshake that opens every ring connection, before any data frame. It proves to
 * both ends that the other holds the job's token without sending the token:
 *
 *   server -> client  challenge { nonce: 32 random bytes }
 *   client -> server  hello     { generation, from, to, world, segmentBytes, nonce, mac }
 *                     mac = HMAC-SHA256(token, "ringtrain/1/hello" | server nonce | client nonce | generation | from | to | world | segmentBytes)
 *   server -> client  welcome   { mac = HMAC-SHA256(token, "ringtrain/1/welcome" | the same fields) }
 *   client -> server  ready     {}   (its link listens: the server may send data from now on)
 *
 * The client is the rank that receives the data (it dials its predecessor, ring.ts), so
 * that it reads from a socket it created (fast-receive.ts's relay).
 *
 * Fresh nonces on both sides make a recorded handshake useless for another connection.
 * Messages are msgpack maps; `decodeHandshake` checks every field and nothing else
 * reads a raw handshake message.
 *
 * A prober (the coordinator checking that a worker's advertised address is its ring
 * endpoint, probe.ts) answers the challenge with a `probe` instead of a `hello`:
 *
 *   client -> server  probe   { nonce, mac = HMAC-SHA256(token, "ringtrain/1/probe" | server nonce | client nonce | zeros) }
 *   server -> client  welcome { mac = HMAC-SHA256(token, "ringtrain/1/probe-welcome" | the same) }, then a normal close
 *
 * Its own labels keep a probe from ever passing for a ring peer's hello (or the reverse),
 * and the endpoint never hands a probe's connection to a ring.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { pack, unpack } from 'msgpackr';
import { RingError, RingFrameError } from './errors.js';

export const HANDSHAKE_VERSION = 1;
export const NONCE_BYTES = 32;
export const MAC_BYTES = 32;
/** Handshake messages are small; anything larger is refused before decoding. */
export const MAX_HANDSHAKE_BYTES = 512;

export type HandshakeMessage =
  | { readonly type: 'challenge'; readonly v: number; readonly nonce: Uint8Array }
  | {
      readonly type: 'hello';
      readonly v: number;
      readonly generation: number;
      readonly from: number;
      readonly to: number;
      readonly world: number;
      /** The sender's segment size; every member of a ring must use the same. */
      readonly segmentBytes: number;
      readonly nonce: Uint8Array;
      readonly mac: Uint8Array;
    }
  | { readonly type: 'welcome'; readonly v: number; readonly mac: Uint8Array }
  /** A prober's answer to the challenge: it holds the token and wants to know that this endpoint does. */
  | { readonly type: 'probe'; readonly v: number; readonly nonce: Uint8Array; readonly mac: Uint8Array }
  /**
   * The dialer's last word, after the welcome: its link is listening, so data may flow. The
   * endpoint's side sends nothing before it (frames written right behind the welcome could
   * reach the dialer before its link exists).
   */
  | { readonly type: 'ready'; readonly v: number };

export type Token = string | Uint8Array;

export function tokenBytes(token: Token): Buffer {
  const bytes = typeof token === 'string' ? Buffer.from(token, 'utf8') : Buffer.from(token);
  if (bytes.length === 0) throw new RingError('RING_INVALID_ARGUMENT', 'the job token is empty');
  return bytes;
}

export function newNonce(): Buffer {
  return randomBytes(NONCE_BYTES);
}

export interface ProofFields {
  readonly serverNonce: Uint8Array;
  readonly clientNonce: Uint8Array;
  readonly generation: number;
  readonly from: number;
  readonly to: number;
  readonly world: number;
  /** The segment size the client announced; the server checks it against its own after the proof. */
  readonly segmentBytes: number;
}

/** Which message a proof is for: a ring hello and its welcome, or a probe and its welcome. */
export type ProofRole = 'hello' | 'welcome' | 'probe' | 'probe-welcome';

export function proof(token: Buffer, role: ProofRole, f: ProofFields): Buffer {
  const ints = Buffer.alloc(20);
  ints.writeUInt32LE(f.generation, 0);
  ints.writeUInt32LE(f.from, 4);
  ints.writeUInt32LE(f.to, 8);
  ints.writeUInt32LE(f.world, 12);
  ints.writeUInt32LE(f.segmentBytes, 16);
  return createHmac('sha256', token)
    .update(`ringtrain/${HANDSHAKE_VERSION}/${role}`)
    .update(f.serverNonce)
    .update(f.clientNonce)
    .update(ints)
    .digest();
}

export function proofMatches(expected: Buffer, got: Uint8Array): boolean {
  return got.length === expected.length && timingSafeEqual(expected, got);
}

export function encodeHandshake(msg: HandshakeMessage): Buffer {
  return pack(msg);
}

function bad(message: string): never {
  throw new RingFrameError('RING_BAD_FRAME', `handshake: ${message}`);
}

function u32(obj: Record<string, unknown>, key: string): number {
  const v = obj[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) bad(`${key} is not a u32`);
  return v;
}

function bytes(obj: Record<string, unknown>, key: string, length: number): Uint8Array {
  const v = obj[key];
  if (!(v instanceof Uint8Array) || v.length !== length) bad(`${key} is not ${length} bytes`);
  return v;
}

function keysExactly(obj: Record<string, unknown>, keys: readonly string[]): void {
  const got = Object.keys(obj);
  if (got.length !== keys.length || !keys.every((k) => Object.hasOwn(obj, k))) bad(`expected fields ${keys.join(', ')}`);
}

/** The proof fields of a probe: the two nonces, and zeros where a hello has its ring's numbers. */
export function probeFields(serverNonce: Uint8Array, clientNonce: Uint8Array): ProofFields {
  return { serverNonce, clientNonce, generation: 0, from: 0, to: 0, world: 0, segmentBytes: 0 };
}

/** Validates one handshake message. Throws RingFrameError. */
export function decodeHandshake(buf: Uint8Array): HandshakeMessage {
  if (buf.length > MAX_HANDSHAKE_BYTES) {
    throw new RingFrameError('RING_FRAME_TOO_LARGE', `handshake message of ${buf.length} bytes`);
  }
  let raw: unknown;
  try {
    raw = unpack(buf);
  } catch {
    bad('not msgpack');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) bad('not a map');
  const obj = raw as Record<string, unknown>;
  if (obj['v'] !== HANDSHAKE_VERSION) bad(`unsupported version ${String(obj['v'])}`);
  switch (obj['type']) {
    case 'challenge':
      keysExactly(obj, ['type', 'v', 'nonce']);
      return { type: 'challenge', v: HANDSHAKE_VERSION, nonce: bytes(obj, 'nonce', NONCE_BYTES) };
    case 'hello': {
      keysExactly(obj, ['type', 'v', 'generation', 'from', 'to', 'world', 'segmentBytes', 'nonce', 'mac']);
      const world = u32(obj, 'world');
      const from = u32(obj, 'from');
      const to = u32(obj, 'to');
      if (world < 2 || from >= world || to >= world) bad('ranks out of range');
      return {
        type: 'hello',
        v: HANDSHAKE_VERSION,
        generation: u32(obj, 'generation'),
        from,
        to,
        world,
        segmentBytes: u32(obj, 'segmentBytes'),
        nonce: bytes(obj, 'nonce', NONCE_BYTES),
        mac: bytes(obj, 'mac', MAC_BYTES),
      };
    }
    case 'welcome':
      keysExactly(obj, ['type', 'v', 'mac']);
      return { type: 'welcome', v: HANDSHAKE_VERSION, mac: bytes(obj, 'mac', MAC_BYTES) };
    case 'ready':
      keysExactly(obj, ['type', 'v']);
      return { type: 'ready', v: HANDSHAKE_VERSION };
    case 'probe':
      keysExactly(obj, ['type', 'v', 'nonce', 'mac']);
      return { type: 'probe', v: HANDSHAKE_VERSION, nonce: bytes(obj, 'nonce', NONCE_BYTES), mac: bytes(obj, 'mac', MAC_BYTES) };
    default:
      return bad(`unknown type ${String(obj['type'])}`);
  }
}
