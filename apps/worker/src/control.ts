/**
 * The worker's end of the control channel: one WebSocket to the coordinator's /worker
 * path, authenticated with the job's token as a bearer token on the upgrade request.
 * It never reconnects by itself; the worker does, with backoff, after each close
 * (lifecycle.ts).
 *
 * A partition is silence, not a close, and TCP would take many minutes to notice: the
 * channel pings the coordinator (ws answers pings by itself) and gives up on a
 * connection that has not answered within `silenceMs` (CONTROL_SILENT), so a worker cut
 * off from the network rejoins once it is reachable again.
 *
 * Every close is a coded WorkerError (or the ProtocolError of a message the worker
 * refused): CONTROL_UNREACHABLE, CONTROL_REFUSED, CONTROL_CLOSED, CONTROL_SILENT are
 * network faults that pass. Over wss (an https:// coordinator URL) the coordinator's
 * certificate is verified against `ca` (Node's bundled roots without one) and the URL's
 * host; a TLS failure (TLS_CERT_UNTRUSTED, TLS_HANDSHAKE_FAILED, or TLS_REQUIRED: a
 * plain-text connection that a TLS coordinator answers with 400) is not: the worker
 * exits with it instead of reconnecting (errors.ts, isFatal).
 */
import WebSocket from 'ws';
import { tlsFailure } from '@ringtrain/allreduce';
import { type CoordinatorMessage, decodeCoordinatorMessage, encodeMessage, ProtocolError, type WorkerMessage } from '@ringtrain/protocol';
import { WorkerError } from './errors.js';

/** How often the coordinator is pinged. */
export const PING_INTERVAL_MS = 1000;
/** Silence after which a connection is given up, until the job's heartbeat timeout is known. */
export const DEFAULT_SILENCE_MS = 10_000;
/** The largest message taken: a state snapshot or the coordinator's initial state for a model of ~100 million parameters. */
const MAX_MESSAGE_BYTES = 512 * 1024 * 1024;
/** How long a 400's body is read for TLS_REQUIRED (another server's body need not end), and how much of it. */
const REFUSAL_BODY_WAIT_MS = 1000;
const REFUSAL_BODY_BYTES = 4096;

export interface ControlHandlers {
  readonly onOpen: () => void;
  readonly onMessage: (m: CoordinatorMessage) => void;
  /** The connection closed (or never opened), and why; called once. */
  readonly onClose: (err: WorkerError | ProtocolError) => void;
}

/** The worker's error for a TLS failure `err` on a connection to `url`, if it is one. */
function tlsError(url: string, err: unknown): WorkerError | undefined {
  const f = tlsFailure(err);
  if (!f) return undefined;
  if (f.kind === 'untrusted') {
    return new WorkerError(
      'TLS_CERT_UNTRUSTED',
      `the coordinator's certificate at ${url} failed verification (${f.detail}): --tls-ca (RINGTRAIN_TLS_CA) must name the CA that signed it, and its names must include the URL's host`,
      { cause: err },
    );
  }
  return new WorkerError('TLS_HANDSHAKE_FAILED', `no TLS session with the coordinator at ${url} (${f.detail}): is it started with --tls-cert and --tls-key?`, { cause: err });
}

export class ControlChannel {
  private readonly ws: WebSocket;
  private closed = false;
  private lastHeard = Date.now();
  private readonly pinger: NodeJS.Timeout;
  /** Silence after which the connection is given up; the job's heartbeat timeout once known. */
  silenceMs = DEFAULT_SILENCE_MS;

  constructor(url: string, token: string, handlers: ControlHandlers, tls: { readonly ca?: string | Buffer } = {}) {
    this.ws = new WebSocket(`${url.replace(/\/$/, '')}/worker`, { headers: { authorization: `Bearer ${token}` }, maxPayload: MAX_MESSAGE_BYTES, ...tls });
    const close = (err: WorkerError | ProtocolError): void => {
      if (this.closed) return;
      this.closed = true;
      clearInterval(this.pinger);
      handlers.onClose(err);
    };
    this.pinger = setInterval(() => {
      if (this.ws.readyState !== WebSocket.OPEN) return;
      if (Date.now() - this.lastHeard > this.silenceMs) {
        close(new WorkerError('CONTROL_SILENT', `no answer from the coordinator for ${this.silenceMs} ms`));
        this.ws.terminate();
        return;
      }
      this.ws.ping();
    }, PING_INTERVAL_MS);
    this.ws.on('pong', () => (this.lastHeard = Date.now()));
    this.ws.on('open', () => {
      this.lastHeard = Date.now();
      if (!this.closed) handlers.onOpen();
    });
    this.ws.on('message', (data: Buffer, isBinary: boolean) => {
      this.lastHeard = Date.now();
      if (this.closed) return;
      if (!isBinary) return this.refuse(new ProtocolError('PROTOCOL_BAD_MESSAGE', 'text frame on the control channel'), close);
      let m: CoordinatorMessage;
      try {
        m = decodeCoordinatorMessage(data);
      } catch (err) {
        return this.refuse(err instanceof ProtocolError ? err : new ProtocolError('PROTOCOL_BAD_MESSAGE', String(err)), close);
      }
      try {
        handlers.onMessage(m);
      } catch (err) {
        // A message that decoded but fits nothing under way (a chunk of no transfer, a bad chunk).
        if (err instanceof ProtocolError) return this.refuse(err, close);
        throw err;
      }
    });
    this.ws.on('unexpected-response', (_req, res) => {
      const refused = new WorkerError('CONTROL_REFUSED', `coordinator refused the connection: HTTP ${res.statusCode}`);
      if (res.statusCode !== 400) {
        close(refused);
        this.ws.terminate();
        return;
      }
      // A TLS port answers plain text with 400 and the code TLS_REQUIRED in a short JSON body.
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body = (body + d).slice(0, REFUSAL_BODY_BYTES)));
      const giveUp = setTimeout(() => res.destroy(), REFUSAL_BODY_WAIT_MS);
      res.once('close', () => {
        clearTimeout(giveUp);
        const plain = body.includes('"TLS_REQUIRED"');
        close(plain ? new WorkerError('TLS_REQUIRED', `the coordinator at ${url} speaks TLS only: use an https:// URL (and --tls-ca)`) : refused);
        this.ws.terminate();
      });
    });
    this.ws.on('error', (err) => close(tlsError(url, err) ?? new WorkerError('CONTROL_UNREACHABLE', `coordinator at ${url}: ${err.message}`, { cause: err })));
    this.ws.on('close', (code, reason) => close(new WorkerError('CONTROL_CLOSED', `closed (${code}${reason.length ? ` ${reason.toString()}` : ''})`)));
  }

  get isOpen(): boolean {
    return !this.closed && this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends `m` if the connection is open; says whether it was. */
  send(m: WorkerMessage): boolean {
    if (!this.isOpen) return false;
    this.ws.send(encodeMessage(m));
    return true;
  }

  close(reason = 'worker closing'): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(1000, reason);
  }

  /** A message this worker cannot take: the connection is closed with 1008 and the error's code. */
  private refuse(err: ProtocolError, close: (err: ProtocolError) => void): void {
    close(new ProtocolError(err.code, `bad message from the coordinator: ${err.message}`));
    this.ws.close(1008, err.code);
  }
}
