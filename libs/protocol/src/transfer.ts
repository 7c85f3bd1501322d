/**
 * Transfers: a stream of bytes of any length (a training state, a model's weights) over
 * the control channel, as chunks with flow control, never as one message.
 *
 *   sender                               receiver
 *   <message announcing {id, bytes}> ->
 *   chunk {id, offset 0, data}       ->  checked, hashed, handed to its sink, then
 *   chunk {id, offset n, data}       ->  <- ack {id, offset}  (every byte before it taken)
 *   ...  the last: {..., sha256}     ->  the whole checked against it; then the owner commits
 *
 * Why so: a state is ~16 bytes per parameter (weights, Adam's two slots, best weights),
 * so one message would need a size limit that some model exceeds (a 64 MiB limit failed
 * every checkpoint of a 4-million-parameter model). Chunks of TRANSFER_CHUNK_BYTES bound
 * each message, and the window bounds what is in flight: a sender waits for acks once
 * TRANSFER_WINDOW_BYTES are unacknowledged, and a receiver acks a chunk only once its
 * sink has taken it (written it to disk, copied it into place), so a slow disk slows the
 * sender instead of filling the receiver's memory. A receiver holds at most one window.
 *
 * Every chunk is checked against its transfer (its offset the next expected, within
 * the announced length, at most one window unacknowledged, a digest on the last only);
 * a chunk that fails is a ProtocolError (the connection is closed) and the transfer
 * fails, so its owner discards what it had. The SHA-256 of the whole is checked before
 * the last chunk reaches the sink, so a sink never completes with bytes that differ from
 * what the sender hashed.
 */
import { createHash } from 'node:crypto';
import { ProtocolError } from './codec.js';
import { type AckMessage, type ChunkMessage, TRANSFER_CHUNK_BYTES, type TransferHead } from './messages.js';

/** Bytes a sender may have unacknowledged: four chunks keep a link busy while the receiver writes one. */
export const TRANSFER_WINDOW_BYTES = 4 * TRANSFER_CHUNK_BYTES;

/**
 * How long a sender waits for an ack before giving up: a receiver writing 16 MiB to
 * disk takes well under a second; a minute without one is a receiver gone or stuck.
 */
export const TRANSFER_STALL_MS = 60_000;

export type TransferErrorCode = 'TRANSFER_STALLED' | 'TRANSFER_ABORTED';

/** A transfer that could not complete on the sender's side (no ack in time, the channel closed). */
export class TransferError extends Error {
  constructor(
    readonly code: TransferErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'TransferError';
  }
}

/** What a transfer sends: its length and its bytes in order, as views (not copied until each chunk is encoded). */
export interface TransferSource {
  readonly bytes: number;
  readonly parts: Iterable<Uint8Array> | AsyncIterable<Uint8Array>;
}

/** The sender's side of one transfer; `ack` and `abort` are called by the channel. */
export class OutgoingTransfer {
  private sent = 0;
  private acked = 0;
  private failure: Error | null = null;
  private wake: (() => void) | null = null;

  constructor(
    readonly id: number,
    /** Sends one chunk; false when the channel is closed. */
    private readonly send: (m: ChunkMessage) => boolean,
    private readonly stallMs = TRANSFER_STALL_MS,
  ) {}

  ack(m: AckMessage): void {
    if (m.offset > this.acked && m.offset <= this.sent) {
      this.acked = m.offset;
      this.wake?.();
    }
  }

  abort(err: Error): void {
    this.failure ??= err;
    this.wake?.();
  }

  /** Sends `source`, then waits until the receiver has taken all of it. Rejects with a TransferError. */
  async run(source: TransferSource): Promise<void> {
    const hash = createHash('sha256');
    const total = source.bytes;
    const emit = async (data: Uint8Array): Promise<void> => {
      await this.room(data.byteLength);
      hash.update(data);
      const last = this.sent + data.byteLength === total;
      const m: ChunkMessage = { type: 'chunk', id: this.id, offset: this.sent, data, ...(last ? { sha256: hash.digest('hex') } : {}) };
      if (!this.send(m)) throw new TransferError('TRANSFER_ABORTED', `transfer ${this.id}: the channel closed at byte ${this.sent} of ${total}`);
      this.sent += data.byteLength;
    };
    // Parts are packed into full chunks (a state's header is a few hundred bytes, its arrays
    // megabytes): one chunk per 4 MiB, whatever the parts. A chunk of one part is sent as a view.
    let pending: Uint8Array[] = [];
    let pendingBytes = 0;
    let taken = 0;
    const flush = async (): Promise<void> => {
      const data = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      await emit(data);
    };
    for await (const part of source.parts) {
      taken += part.byteLength;
      if (taken > total) throw new Error(`transfer ${this.id}: the source yields more than its ${total} bytes`);
      for (let at = 0; at < part.byteLength; ) {
        const n = Math.min(part.byteLength - at, TRANSFER_CHUNK_BYTES - pendingBytes);
        pending.push(part.subarray(at, at + n));
        pendingBytes += n;
        at += n;
        if (pendingBytes === TRANSFER_CHUNK_BYTES) await flush();
      }
    }
    if (taken !== total) throw new Error(`transfer ${this.id}: the source yielded ${taken} of its ${total} bytes`);
    if (pendingBytes > 0 || total === 0) await flush();
    while (this.acked < total) await this.waitForAck();
  }

  /** Waits until `n` more bytes fit in the window. */
  private async room(n: number): Promise<void> {
    while (this.sent - this.acked + n > TRANSFER_WINDOW_BYTES && this.sent > this.acked) await this.waitForAck();
    if (this.failure) throw this.failure;
  }

  private waitForAck(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => this.abort(new TransferError('TRANSFER_STALLED', `transfer ${this.id}: no ack for ${this.stallMs / 1000} s at byte ${this.acked} of ${this.sent} sent`)), this.stallMs);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = null;
        if (this.failure) reject(this.failure);
        else resolve();
      };
    });
  }
}

function bad(id: number, what: string): ProtocolError {
  return new ProtocolError('PROTOCOL_BAD_MESSAGE', `transfer ${id}: ${what}`);
}

/**
 * The receiver's side of one transfer. `take` checks each chunk at once (throwing a
 * ProtocolError) and queues it for the sink, which takes chunks one at a time, in order;
 * each is acked once the sink has it. `done` resolves when every byte is in the sink and
 * the digest matched, and rejects when the transfer fails (a bad chunk, the sink
 * throwing, `fail`).
 */
export class IncomingTransfer {
  readonly id: number;
  readonly bytes: number;
  readonly done: Promise<void>;
  private received = 0;
  /** Bytes checked but not yet in the sink: at most one window. */
  private queued = 0;
  private seenLast = false;
  private chain: Promise<void> = Promise.resolve();
  private readonly hash = createHash('sha256');
  private settled = false;
  private resolve!: () => void;
  private reject!: (err: Error) => void;

  constructor(
    head: TransferHead,
    private readonly sink: (data: Uint8Array) => Promise<void> | void,
    private readonly ack: (m: AckMessage) => void,
  ) {
    this.id = head.id;
    this.bytes = head.bytes;
    this.done = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // The owner handles failure through `done`; this keeps an unobserved one from crashing the process.
    this.done.catch(() => {});
  }

  take(m: ChunkMessage): void {
    const n = m.data.byteLength;
    try {
      if (this.settled || this.seenLast) throw bad(this.id, 'a chunk after the transfer ended');
      if (m.offset !== this.received) throw bad(this.id, `a chunk at byte ${m.offset}; the next is ${this.received}`);
      if (m.offset + n > this.bytes) throw bad(this.id, `a chunk to byte ${m.offset + n}, past its ${this.bytes} bytes`);
      if (n === 0 && this.bytes !== 0) throw bad(this.id, 'an empty chunk');
      if (this.queued + n > TRANSFER_WINDOW_BYTES) throw bad(this.id, `more than ${TRANSFER_WINDOW_BYTES} bytes unacknowledged`);
      const last = m.offset + n === this.bytes;
      if (last !== (m.sha256 !== undefined)) throw bad(this.id, last ? 'the last chunk has no SHA-256' : 'a SHA-256 before the last chunk');
      this.hash.update(m.data);
      if (last && this.hash.digest('hex') !== m.sha256) throw bad(this.id, `its ${this.bytes} bytes do not match the sender's SHA-256`);
      this.received += n;
      this.queued += n;
      this.seenLast = last;
    } catch (err) {
      this.fail(err as Error);
      throw err;
    }
    this.chain = this.chain.then(async () => {
      if (this.settled) return;
      await this.sink(m.data);
      this.queued -= n;
      this.ack({ type: 'ack', id: this.id, offset: m.offset + n });
      if (m.offset + n === this.bytes) this.finish();
    });
    this.chain.catch((err: unknown) => this.fail(err instanceof Error ? err : new Error(String(err))));
  }

  /** The transfer cannot complete (its connection closed, its owner gave up). */
  fail(err: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.reject(err);
  }

  private finish(): void {
    if (this.settled) return;
    this.settled = true;
    this.resolve();
  }
}
