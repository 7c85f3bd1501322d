/**
 * The binary data frame of the ring: one WebSocket binary message per segment, a fixed
 * 40-byte little-endian header followed by the raw payload (little-endian float32 for
 * all-reduce and barrier, bytes for broadcast). The header is a multiple of 8 bytes, so
 * a payload in an aligned message buffer can be viewed as a Float32Array in place.
 *
 *   0  u8  'R'        1 u8 'T'         2 u8 version        3 u8 kind (1 all-reduce, 2 barrier, 3 broadcast)
 *   4  u32 generation                  8 u32 op (sequence number of the collective in this ring)
 *  12  u8  phase (0 reduce-scatter, 1 all-gather, 2 broadcast, 3 broadcast acknowledgement)
 *  13  u8  reserved (0)   14 u16 ring step
 *  16  f64 step (the caller's training step tag; a non-negative safe integer)
 *  24  u32 chunk     28 u32 offset (first element, or byte for broadcast)
 *  32  u32 total (elements or bytes of the whole buffer)    36 u32 root (broadcast root, else 0)
 *
 * `decodeFrame` checks every field that can be checked without context; the ring checks
 * the rest (generation, op, expected chunk and offset) against its schedule. Nothing
 * else reads a raw frame.
 */
import { RingFrameError } from './errors.js';

export const FRAME_HEADER_BYTES = 40;
export const FRAME_VERSION = 1;
const MAGIC0 = 0x52;
const MAGIC1 = 0x54;
export const MAX_U32 = 0xffffffff;

/** `allReduce64`: an all-reduce of float64 (the exact integer sums of a same-bits reduction). */
export const OpKind = { allReduce: 1, barrier: 2, broadcast: 3, allReduce64: 4 } as const;
export type OpKind = (typeof OpKind)[keyof typeof OpKind];

/** `broadcastAck` is the empty frame that tells a broadcast's members that every member has the data (broadcast-ring.ts). */
export const Phase = { reduceScatter: 0, allGather: 1, broadcast: 2, broadcastAck: 3 } as const;
export type Phase = (typeof Phase)[keyof typeof Phase];

export interface FrameHeader {
  kind: OpKind;
  generation: number;
  op: number;
  phase: Phase;
  ringStep: number;
  step: number;
  chunk: number;
  offset: number;
  total: number;
  root: number;
  /** Payload elements (float32 for all-reduce and barrier, float64 for allReduce64, bytes for broadcast). */
  count: number;
}

export function emptyHeader(): FrameHeader {
  return { kind: OpKind.allReduce, generation: 0, op: 0, phase: Phase.reduceScatter, ringStep: 0, step: 0, chunk: 0, offset: 0, total: 0, root: 0, count: 0 };
}

/** Bytes per payload element of a frame kind. */
export function elementBytes(kind: OpKind): number {
  return kind === OpKind.broadcast ? 1 : kind === OpKind.allReduce64 ? 8 : 4;
}

/** Writes the header into the first FRAME_HEADER_BYTES of `target`; `count` is implied by the message length. */
export function writeHeader(target: Buffer, h: Omit<FrameHeader, 'count'>): void {
  target[0] = MAGIC0;
  target[1] = MAGIC1;
  target[2] = FRAME_VERSION;
  target[3] = h.kind;
  target.writeUInt32LE(h.generation, 4);
  target.writeUInt32LE(h.op, 8);
  target[12] = h.phase;
  target[13] = 0;
  target.writeUInt16LE(h.ringStep, 14);
  target.writeDoubleLE(h.step, 16);
  target.writeUInt32LE(h.chunk, 24);
  target.writeUInt32LE(h.offset, 28);
  target.writeUInt32LE(h.total, 32);
  target.writeUInt32LE(h.root, 36);
}

/** Rewrites phase and ring step in place, to forward a received frame to the next stage. */
export function writeStage(target: Buffer, phase: Phase, ringStep: number): void {
  target[12] = phase;
  target.writeUInt16LE(ringStep, 14);
}

function bad(message: string): never {
  throw new RingFrameError('RING_BAD_FRAME', message);
}

function isKind(v: number): v is OpKind {
  return v === OpKind.allReduce || v === OpKind.barrier || v === OpKind.broadcast || v === OpKind.allReduce64;
}

function isPhase(v: number): v is Phase {
  return v === Phase.reduceScatter || v === Phase.allGather || v === Phase.broadcast || v === Phase.broadcastAck;
}

/**
 * Validates `buf` as a data frame and fills `into` (reused to avoid allocating per
 * frame). Throws RingFrameError (RING_BAD_FRAME or RING_FRAME_TOO_LARGE).
 */
export function decodeFrame(buf: Uint8Array, maxPayloadBytes: number, into: FrameHeader = emptyHeader()): FrameHeader {
  if (buf.length < FRAME_HEADER_BYTES) bad(`frame of ${buf.length} bytes is shorter than its header`);
  return decodeHeader(buf, buf.length - FRAME_HEADER_BYTES, maxPayloadBytes, into);
}

/**
 * As decodeFrame, for a frame whose payload of `payloadBytes` is elsewhere (read straight
 * into the caller's array, fast-receive.ts): `buf` holds at least the header.
 */
export function decodeHeader(buf: Uint8Array, payloadBytes: number, maxPayloadBytes: number, into: FrameHeader = emptyHeader()): FrameHeader {
  if (buf.length < FRAME_HEADER_BYTES) bad(`frame of ${buf.length} bytes is shorter than its header`);
  if (payloadBytes > maxPayloadBytes) {
    throw new RingFrameError('RING_FRAME_TOO_LARGE', `payload of ${payloadBytes} bytes exceeds ${maxPayloadBytes}`);
  }
  const view = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (view[0] !== MAGIC0 || view[1] !== MAGIC1) bad('bad magic');
  if (view[2] !== FRAME_VERSION) bad(`unsupported frame version ${String(view[2])}`);
  const kind = view[3] ?? 0;
  if (!isKind(kind)) bad(`unknown operation kind ${kind}`);
  const phase = view[12] ?? 0;
  if (!isPhase(phase)) bad(`unknown phase ${phase}`);
  if ((phase === Phase.broadcast || phase === Phase.broadcastAck) !== (kind === OpKind.broadcast)) bad(`phase ${phase} does not belong to kind ${kind}`);
  if (view[13] !== 0) bad('reserved byte is not zero');
  const ringStep = view.readUInt16LE(14);
  const step = view.readDoubleLE(16);
  if (!Number.isSafeInteger(step) || step < 0) bad(`step ${step} is not a non-negative safe integer`);
  const chunk = view.readUInt32LE(24);
  const offset = view.readUInt32LE(28);
  const total = view.readUInt32LE(32);
  const root = view.readUInt32LE(36);
  const size = elementBytes(kind);
  if (payloadBytes % size !== 0) bad(`payload of ${payloadBytes} bytes is not a whole number of elements`);
  const count = payloadBytes / size;
  if (offset + count > total) bad(`elements ${offset}..${offset + count} lie outside a buffer of ${total}`);
  if (kind === OpKind.broadcast) {
    if (ringStep !== 0 || chunk !== 0) bad('broadcast frames have no ring step or chunk');
    if (phase === Phase.broadcastAck && (payloadBytes !== 0 || offset !== 0)) bad('a broadcast acknowledgement carries no data');
  } else {
    if (root !== 0) bad('only broadcast frames have a root');
    if (kind === OpKind.barrier && total !== 0) bad('barrier frames carry no data');
  }
  into.kind = kind;
  into.generation = view.readUInt32LE(4);
  into.op = view.readUInt32LE(8);
  into.phase = phase;
  into.ringStep = ringStep;
  into.step = step;
  into.chunk = chunk;
  into.offset = offset;
  into.total = total;
  into.root = root;
  into.count = count;
  return into;
}
