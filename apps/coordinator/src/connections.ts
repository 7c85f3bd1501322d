/**
 * The workers' control connections. Each arrives authenticated (server.ts) and must
 * `register` within REGISTER_DEADLINE_MS; from then on it is its worker's connection,
 * found by id. Every binary frame is decoded once, with the job's bounds (libs/protocol's
 * workerDecoder), counted by type and handed to handlers.ts while the connection is its
 * worker's current one. What the handler throws closes that connection with a coded
 * reason: the worker's fault (PROTOCOL_BAD_MESSAGE, PROTOCOL_ROLE, a state that does not
 * verify) 1008, the coordinator's own (INTERNAL_ERROR) 1011; each is counted and logged
 * (rejections.ts).
 */
import type { WebSocket } from 'ws';
import { closeReason } from '@ringtrain/allreduce';
import {
  type ChunkMessage,
  type CoordinatorMessage,
  encodeMessage,
  IncomingTransfer,
  OutgoingTransfer,
  ProtocolError,
  type Split,
  type Timing,
  TransferError,
  type TransferHead,
  type TransferSource,
  type WorkerMessage,
} from '@ringtrain/protocol';
import { TrainError } from '@ringtrain/train';
import { CoordinatorError } from './errors.js';
import type { Address } from './membership.js';
import type { RejectReason, Rejections } from './rejections.js';
import type { RowsSink } from './rows.js';
import type { WorkerView } from './views.js';

/**
 * How long a new connection may stay silent before its `register`. A worker sends it
 * first thing after the upgrade, within milliseconds; 10 s is room for a loaded machine,
 * and bounds how long a connection holding only the token occupies the coordinator.
 */
export const REGISTER_DEADLINE_MS = 10_000;

/** How long a closed connection waits for the peer's closing handshake before it is cut: a live worker answers in milliseconds; a dead or stopped one never does. */
export const CLOSE_GRACE_MS = 2_000;

export interface Conn {
  readonly ws: WebSocket;
  /** The peer's address without the port: what refusals are counted and logged by. */
  readonly host: string;
  id: string | null;
  backend: string;
  /** Its ring address, host:port, as it registered it. */
  address: string;
  lastSeen: number;
  timing: Timing | null;
  /** Its memory by its last heartbeat that said (rss, planned, limit); unset until one does. */
  memory?: WorkerView['memory'];
  step: number | null;
  /** Splits with a fetch being answered on this connection (one each at a time). */
  readonly serving: Set<Split>;
  /** The transfer this worker is sending (a state, its final weights): one at a time. */
  incoming: IncomingTransfer | null;
  /** Transfers to this worker (a generation's state), by id, until it has them. */
  readonly outgoing: Map<number, OutgoingTransfer>;
}

/** A transfer that failed because its connection closed: nobody's fault to report. */
class ConnectionClosed extends Error {}

export interface ConnectionsOptions {
  /** The channel's one decode: a message with every field within the job's bounds, or a ProtocolError. */
  readonly decode: (data: Uint8Array) => WorkerMessage;
  readonly rejections: Rejections;
  /** A decoded message on a connection that is its worker's current one, or not registered yet. */
  readonly onMessage: (conn: Conn, m: WorkerMessage) => void;
  /** A registered worker's current connection closed. */
  readonly onClosed: (id: string) => void;
}

/** How an error thrown by a message's handler ends its connection. */
interface Refusal {
  readonly reason: RejectReason;
  readonly code: 'PROTOCOL_ROLE' | 'PROTOCOL_BAD_MESSAGE' | 'INTERNAL_ERROR';
  readonly closeCode: number;
  readonly what: string;
}

/**
 * A message that decoded but asks for something impossible, carries a state that does
 * not fit this job, or is not the sender's to send, is the worker's fault (1008);
 * anything else is ours (1011).
 */
function refusalFor(err: unknown): Refusal {
  if (err instanceof ProtocolError && err.code === 'PROTOCOL_ROLE') {
    return { reason: 'wrong_role', code: 'PROTOCOL_ROLE', closeCode: 1008, what: 'a message this worker may not send now; closing its connection' };
  }
  if (err instanceof ProtocolError || (err instanceof TrainError && err.code === 'SNAPSHOT_INVALID')) {
    return { reason: 'bad_message', code: 'PROTOCOL_BAD_MESSAGE', closeCode: 1008, what: 'bad request from a worker; closing its connection' };
  }
  return { reason: 'internal_error', code: 'INTERNAL_ERROR', closeCode: 1011, what: 'failed to handle a worker message' };
}

export class Connections {
  private readonly open = new Set<Conn>();
  private readonly byId = new Map<string, Conn>();
  private readonly counts: Record<string, number> = {};
  /** The last transfer id used: ids are unique per coordinator, so per connection. */
  private transfers = 0;

  constructor(private readonly o: ConnectionsOptions) {}

  /** A worker's authenticated control connection; `remote` is host:port. */
  attach(ws: WebSocket, remote: string): void {
    const host = remote.slice(0, remote.lastIndexOf(':'));
    const conn: Conn = { ws, host, id: null, backend: '?', address: '?', lastSeen: Date.now(), timing: null, step: null, serving: new Set(), incoming: null, outgoing: new Map() };
    const { rejections } = this.o;
    this.open.add(conn);
    const registerBy = setTimeout(() => {
      if (conn.id === null) this.closeWith(conn, new CoordinatorError('REGISTER_TIMEOUT', `no register within ${REGISTER_DEADLINE_MS / 1000} s`));
    }, REGISTER_DEADLINE_MS);
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        rejections.note('bad_message', host, 'bad message from a worker (a text frame); closing its connection', { worker: conn.id });
        return this.close(conn, 1008, 'PROTOCOL_BAD_MESSAGE: text frame');
      }
      let m: WorkerMessage;
      try {
        m = this.o.decode(data);
      } catch (err) {
        rejections.note('bad_message', host, 'bad message from a worker; closing its connection', { worker: conn.id, err });
        const code = err instanceof ProtocolError ? err.code : 'PROTOCOL_BAD_MESSAGE';
        // Another version's worker is told why in a message it can read (every version has `reject`), then closed.
        if (code === 'PROTOCOL_VERSION' && ws.readyState === ws.OPEN) ws.send(encodeMessage({ type: 'reject', code, reason: (err as Error).message }));
        return this.close(conn, 1008, `${code}: ${(err as Error).message}`);
      }
      this.counts[m.type] = (this.counts[m.type] ?? 0) + 1;
      // A connection replaced by a newer one of its worker, dropped, or gone after `leave`: what is still in flight on it is moot.
      if (conn.id !== null && this.byId.get(conn.id) !== conn) return;
      conn.lastSeen = Date.now();
      try {
        this.o.onMessage(conn, m);
      } catch (err) {
        const r = refusalFor(err);
        rejections.note(r.reason, host, r.what, { worker: conn.id, type: m.type, err });
        this.close(conn, r.closeCode, `${r.code}: ${(err as Error).message}`);
      }
    });
    ws.on('close', () => {
      clearTimeout(registerBy);
      this.open.delete(conn);
      conn.incoming?.fail(new ConnectionClosed('the connection closed'));
      for (const t of conn.outgoing.values()) t.abort(new TransferError('TRANSFER_ABORTED', `the connection to ${conn.id ?? host} closed`));
      if (conn.id !== null && this.byId.get(conn.id) === conn) {
        this.byId.delete(conn.id);
        this.o.onClosed(conn.id);
      }
    });
    // A WebSocket protocol violation (an unmasked or oversized frame, bad UTF-8...): ws closes the connection itself.
    ws.on('error', (err) => rejections.note('bad_message', host, 'WebSocket protocol error from a worker connection', { worker: conn.id, err }));
  }

  /** `conn` registered as `id`: it is that worker's connection now, and an older one of the same id is closed. */
  adopt(conn: Conn, id: string, backend: string, address: Address): void {
    conn.id = id;
    conn.backend = backend;
    conn.address = `${address.host}:${address.port}`;
    const old = this.byId.get(id);
    this.byId.set(id, conn);
    if (old) this.closeWith(old, new CoordinatorError('WORKER_REPLACED', 'replaced by a new connection'));
  }

  /** The worker said goodbye: what still arrives on its connection is moot. */
  forget(id: string): void {
    this.byId.delete(id);
  }

  /** Membership dropped the worker: its connection is closed (if it is alive after all, it connects and joins again). */
  drop(id: string, reason: string): void {
    const conn = this.byId.get(id);
    this.byId.delete(id);
    if (conn) this.closeWith(conn, new CoordinatorError('WORKER_DROPPED', reason));
  }

  send(id: string, m: CoordinatorMessage): void {
    const conn = this.byId.get(id);
    if (conn) this.sendOn(conn, m);
  }

  /** Sends `m` on `conn` if it is open; says whether it was. */
  private sendOn(conn: Conn, m: CoordinatorMessage): boolean {
    if (conn.ws.readyState !== conn.ws.OPEN) return false;
    conn.ws.send(encodeMessage(m));
    return true;
  }

  /** Whether `id` has a current connection. */
  has(id: string): boolean {
    return this.byId.has(id);
  }

  /** The registered workers' ids. */
  ids(): string[] {
    return [...this.byId.keys()];
  }

  /** The registered workers, as the status shows them. */
  workers(): WorkerView[] {
    return [...this.byId.values()].map((c) => ({ id: c.id!, address: c.address, backend: c.backend, step: c.step, timing: c.timing, memory: c.memory ?? null, lastSeen: c.lastSeen }));
  }

  /**
   * Starts receiving transfer `head` from `conn` into `sink`; its chunks come through
   * `chunk`. One at a time per connection, so a worker holds at most one window of the
   * coordinator's memory. A transfer that fails by the worker's fault (a bad chunk, a state
   * that does not verify) closes the connection with 1008, by ours (a disk error) 1011.
   */
  receive(conn: Conn, head: TransferHead, sink: (data: Uint8Array) => Promise<void>): IncomingTransfer {
    if (conn.incoming !== null) throw new ProtocolError('PROTOCOL_BAD_MESSAGE', `transfer ${head.id} announced while transfer ${conn.incoming.id} is under way`);
    /** What the sink threw, if it failed the transfer: the sink's refusal (a value not finite) closes the connection here, not the chunk's handler. */
    let refusedBySink: unknown = null;
    const take = async (data: Uint8Array): Promise<void> => {
      try {
        await sink(data);
      } catch (err) {
        refusedBySink = err;
        throw err;
      }
    };
    const t = new IncomingTransfer(head, take, (ack) => this.sendOn(conn, ack));
    conn.incoming = t;
    t.done.then(
      () => {
        if (conn.incoming === t) conn.incoming = null;
      },
      (err: unknown) => {
        if (conn.incoming === t) conn.incoming = null;
        // Closed already, or closing by the chunk handler's throw that failed it.
        if (err instanceof ConnectionClosed || (err instanceof ProtocolError && err !== refusedBySink)) return;
        this.refuse(conn, err);
      },
    );
    return t;
  }

  /** Closes `conn` for `err`, found after its message was handled: coded and counted as a handler's throw is. */
  refuse(conn: Conn, err: unknown): void {
    const r = refusalFor(err);
    this.o.rejections.note(r.reason, conn.host, r.what, { worker: conn.id, err });
    this.close(conn, r.closeCode, `${r.code}: ${(err as Error).message}`);
  }

  /** A chunk from `conn`: for the transfer under way, or a ProtocolError. */
  chunk(conn: Conn, m: ChunkMessage): void {
    if (conn.incoming?.id !== m.id) throw new ProtocolError('PROTOCOL_BAD_MESSAGE', `a chunk of transfer ${m.id}, which is not under way`);
    conn.incoming.take(m);
  }

  /** Sends `source` to worker `id` as a transfer that `announce` introduces; resolves once the worker has taken it all, rejects with a TransferError. */
  async transfer(id: string, announce: (head: TransferHead) => CoordinatorMessage, source: TransferSource): Promise<void> {
    const conn = this.byId.get(id);
    if (!conn) throw new TransferError('TRANSFER_ABORTED', `${id} has no connection`);
    const t = new OutgoingTransfer(++this.transfers, (m) => this.sendOn(conn, m));
    conn.outgoing.set(t.id, t);
    try {
      if (!this.sendOn(conn, announce({ id: t.id, bytes: source.bytes }))) throw new TransferError('TRANSFER_ABORTED', `the connection to ${id} closed`);
      await t.run(source);
    } finally {
      conn.outgoing.delete(t.id);
    }
  }

  /** Messages received, by type (a copy). */
  messages(): Record<string, number> {
    return { ...this.counts };
  }

  /** Where rows for `conn` go (rows.ts). */
  rowsTo(conn: Conn): RowsSink {
    return {
      isOpen: () => conn.ws.readyState === conn.ws.OPEN,
      send: (frame) => new Promise<void>((resolve) => conn.ws.send(frame, () => resolve())),
    };
  }

  /** Cuts every connection, registered or not. */
  terminateAll(): void {
    for (const c of this.open) c.ws.terminate();
  }

  private closeWith(conn: Conn, err: CoordinatorError): void {
    this.close(conn, err.closeCode ?? 1000, `${err.code}: ${err.message}`);
  }

  private close(conn: Conn, code: number, reason: string): void {
    try {
      conn.ws.close(code, closeReason(reason));
    } catch {
      conn.ws.terminate();
    }
    setTimeout(() => conn.ws.terminate(), CLOSE_GRACE_MS).unref();
  }
}
