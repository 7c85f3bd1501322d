/**
 * msgpack with validation. Decoding never throws anything but ProtocolError: bytes that
 * are not msgpack, or a map that is not a known message with every field right, are
 * BAD_MESSAGE with the field named. Byte fields come back as copies in fresh buffers
 * (msgpackr hands out views into the frame), so typed-array views over them are aligned.
 */
import { Packr } from 'msgpackr';
import type { z } from 'zod';
import { type JobLimits, workerMessageFor } from './job-limits.js';
import { CoordinatorMessage, PROTOCOL_VERSION, WorkerMessage } from './messages.js';

/**
 * PROTOCOL_BAD_MESSAGE: not msgpack, not a known message, a field of the wrong type or
 * out of its range (the job's included). PROTOCOL_ROLE: a well-formed message its sender
 * may not send now (a `done` or `checkpoint` from anyone but rank 0 of the current
 * generation, a `state` nobody asked for, a `fetch` from a worker outside the ring).
 * PROTOCOL_VERSION: a `register` or `job` of another PROTOCOL_VERSION (checked before the
 * rest of the message, whose fields may differ between versions).
 */
export type ProtocolErrorCode = 'PROTOCOL_BAD_MESSAGE' | 'PROTOCOL_ROLE' | 'PROTOCOL_VERSION';

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  constructor(
    readonly code: ProtocolErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const packr = new Packr({ useRecords: false, moreTypes: false });

/** Copies byte fields out of the decoded frame, recursively. */
function detach(v: unknown): unknown {
  if (v instanceof Uint8Array) return new Uint8Array(v);
  if (Array.isArray(v)) return v.map(detach);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = detach(x);
    return out;
  }
  return v;
}

/** The message types that open a conversation, and so carry the sender's PROTOCOL_VERSION. */
const VERSIONED = new Set(['register', 'job']);

/** A decoded value in a message, short (a BigInt, which JSON cannot write, included). */
function shown(v: unknown): string {
  const text = typeof v === 'bigint' ? `${v}n` : (JSON.stringify(v) ?? String(v));
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

/** Refuses a versioned message of another version, naming both. */
function checkVersion(raw: unknown, what: string): void {
  if (raw === null || typeof raw !== 'object' || !VERSIONED.has((raw as { type?: unknown }).type as string)) return;
  const { type, protocol } = raw as { type: string; protocol?: unknown };
  if (protocol === PROTOCOL_VERSION) return;
  const theirs = protocol === undefined ? '1 (it carries none)' : shown(protocol);
  const sender = what === 'worker message' ? 'the worker' : 'the coordinator';
  throw new ProtocolError(
    'PROTOCOL_VERSION',
    `${type}: ${sender} speaks control protocol ${theirs}, this ${sender === 'the worker' ? 'coordinator' : 'worker'} ${PROTOCOL_VERSION}: run the same ringtrain version everywhere`,
  );
}

function decodeWith<S extends z.ZodType>(schema: S, data: Uint8Array, what: string): z.infer<S> {
  let raw: unknown;
  try {
    raw = packr.unpack(data);
  } catch (err) {
    throw new ProtocolError('PROTOCOL_BAD_MESSAGE', `${what}: not msgpack (${(err as Error).message})`);
  }
  checkVersion(raw, what);
  const parsed = schema.safeParse(detach(raw));
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const type = raw !== null && typeof raw === 'object' && 'type' in raw ? String((raw as { type: unknown }).type) : '?';
    throw new ProtocolError('PROTOCOL_BAD_MESSAGE', `${what} "${type}": ${issue.path.join('.') || '(message)'}: ${issue.message}`);
  }
  return parsed.data;
}

export function encodeMessage(message: WorkerMessage | CoordinatorMessage): Uint8Array {
  return packr.pack(message);
}

export function decodeWorkerMessage(data: Uint8Array): WorkerMessage {
  return decodeWith(WorkerMessage, data, 'worker message');
}

/** The decoder of one job's coordinator: WorkerMessage and the job's bounds (job-limits.ts). */
export function workerDecoder(limits: JobLimits): (data: Uint8Array) => WorkerMessage {
  const schema = workerMessageFor(limits);
  return (data) => decodeWith(schema, data, 'worker message');
}

export function decodeCoordinatorMessage(data: Uint8Array): CoordinatorMessage {
  return decodeWith(CoordinatorMessage, data, 'coordinator message');
}

/** The bytes of a typed array (a view, no copy), for a byte field. */
export function bytesOf(a: Float32Array | Int32Array | Uint32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function checkedLength(b: Uint8Array, field: string): number {
  if (b.byteLength % 4 !== 0) throw new ProtocolError('PROTOCOL_BAD_MESSAGE', `${field}: ${b.byteLength} bytes is not a whole number of 4-byte values`);
  return b.byteLength / 4;
}

/** Views over a decoded byte field (decode copied it into its own aligned buffer). */
export function float32s(b: Uint8Array, field: string): Float32Array {
  return new Float32Array(b.buffer, b.byteOffset, checkedLength(b, field));
}
export function int32s(b: Uint8Array, field: string): Int32Array {
  return new Int32Array(b.buffer, b.byteOffset, checkedLength(b, field));
}
export function uint32s(b: Uint8Array, field: string): Uint32Array {
  return new Uint32Array(b.buffer, b.byteOffset, checkedLength(b, field));
}
