/**
 * The worker's end of the control channel: one WebSocket to the coordinator's /worker
 * path, authenticated with the job's token as a bearer token on the upgrade request.
 * It never reconnects by itself; the worker does, with backoff, after each close.
 *
 * A partition is silence, not a close, and TCP would take many minutes to notice: the
 * channel pings the coordinator (ws answers pings by itself) and gives up on a
 * connection that has not answered within `silenceMs`, so a worker cut off from the
 * network rejoins once it is reachable again.
 *
 * Over wss (an https:// coordinator URL) the coordinator's certificate is verified
 * against `ca` (Node's bundled roots without one) and the URL's host. A TLS failure is
 * not a network fault that passes: it closes with a `ControlTlsError`, and the worker
 * exits with its code instead of reconnecting (so does a plain-text connection that a
 * TLS coordinator answers with 400 TLS_REQUIRED).
 */
import WebSocket from 'ws';
import { tlsFailure } from '@ringtrain/allreduce';
import { type CoordinatorMessage, decodeCoordinatorMessage, encodeMessage, type WorkerMessage } from '@ringtrain/protocol';

export interface ControlHandlers {
  readonly onMessage: (m: CoordinatorMessage) => void;
  /** The connection closed (or never opened); `reason` says why, `fatal` when retrying cannot help. */
  readonly onClose: (reason: string, fatal?: ControlTlsError) => void;
}

/** TLS with the coordinator failed in a way only a change of configuration mends. */
export class ControlTlsError extends Error {
  constructor(
    readonly code: 'TLS_CERT_UNTRUSTED' | 'TLS_HANDSHAKE_FAILED' | 'TLS_REQUIRED',
    message: string,
  ) {
    super(message);
  }
}

/** The worker's error for a TLS failure `err` on a connection to `url`, if it is one. */
function tlsError(url: string, err: unknown): ControlTlsError | undefined {
  const f = tlsFailure(err);
  if (!f) return undefined;
  if (f.kind === 'untrusted') {
    return new ControlTlsError('TLS_CERT_UNTRUSTED', `the coordinator's certificate at ${url} failed verification (${f.detail}): --tls-ca (RINGTRAIN_TLS_CA) must name the CA that signed it, and its names must include the URL's host`);
  }
  return new ControlTlsError('TLS_HANDSHAKE_FAILED', `no TLS session with the coordinator at ${url} (${f.detail}): is it started with --tls-cert and --tls-key?`);
}

export class ControlChannel {
  private readonly ws: WebSocket;
  private closed = false;
  private lastHeard = Date.now();
  private readonly pinger: NodeJS.Timeout;
  /** Silence after which the connection is given up; the job's heartbeat timeout once known. */
  silenceMs = 10_000;

  constructor(url: string, token: string, handlers: ControlHandlers, tls: { readonly ca?: string | Buffer } = {}) {
    this.ws = new WebSocket(`${url.replace(/\/$/, '')}/worker`, { headers: { authorization: `Bearer ${token}` }, maxPayload: 512 * 1024 * 1024, ...tls });
    const close = (reason: string, fatal?: ControlTlsError) => {
      if (this.closed) return;
      this.closed = true;
      clearInterval(this.pinger);
      handlers.onClose(reason, fatal);
    };
    this.pinger = setInterval(() => {
      if (this.ws.readyState !== WebSocket.OPEN) return;
      if (Date.now() - this.lastHeard > this.silenceMs) {
        close(`no answer from the coordinator for ${this.silenceMs} ms`);
        this.ws.terminate();
        return;
      }
      this.ws.ping();
    }, 1000);
    this.ws.on('pong', () => (this.lastHeard = Date.now()));
    this.ws.on('open', () => (this.lastHeard = Date.now()));
    this.ws.on('message', (data: Buffer, isBinary: boolean) => {
      this.lastHeard = Date.now();
      if (!isBinary) return this.fail('text frame on the control channel', close);
      let m: CoordinatorMessage;
      try {
        m = decodeCoordinatorMessage(data);
      } catch (err) {
        return this.fail((err as Error).message, close);
      }
      handlers.onMessage(m);
    });
    this.ws.on('unexpected-response', (_req, res) => {
      const refused = `coordinator refused the connection: HTTP ${res.statusCode}`;
      if (res.statusCode !== 400) {
        close(refused);
        this.ws.terminate();
        return;
      }
      // A TLS port answers plain text with 400 and the code TLS_REQUIRED in a short JSON body
      // (read for at most a second: another server's body need not end).
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body = (body + d).slice(0, 4096)));
      const giveUp = setTimeout(() => res.destroy(), 1000);
      res.once('close', () => {
        clearTimeout(giveUp);
        const plain = body.includes('"TLS_REQUIRED"');
        close(refused, plain ? new ControlTlsError('TLS_REQUIRED', `the coordinator at ${url} speaks TLS only: use an https:// URL (and --tls-ca)`) : undefined);
        this.ws.terminate();
      });
    });
    this.ws.on('error', (err) => close(err.message, tlsError(url, err)));
    this.ws.on('close', (code, reason) => close(`closed (${code}${reason.length ? ` ${reason.toString()}` : ''})`));
  }

  /** Resolves once open; false if it closed first. */
  opened(): Promise<boolean> {
    if (this.ws.readyState === WebSocket.OPEN) return Promise.resolve(true);
    return new Promise((resolve) => {
      this.ws.once('open', () => resolve(true));
      this.ws.once('close', () => resolve(false));
      this.ws.once('error', () => resolve(false));
    });
  }

  get isOpen(): boolean {
    return !this.closed && this.ws.readyState === WebSocket.OPEN;
  }

  send(m: WorkerMessage): void {
    if (this.isOpen) this.ws.send(encodeMessage(m));
  }

  close(reason = 'worker closing'): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(1000, reason);
  }

  private fail(reason: string, close: (reason: string) => void): void {
    close(`bad message from the coordinator: ${reason}`);
    this.ws.close(1008, 'PROTOCOL_BAD_MESSAGE');
  }
}
