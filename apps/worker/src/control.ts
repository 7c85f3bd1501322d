/**
 * The worker's end of the control channel: one WebSocket to the coordinator's /worker
 * path, authenticated with the job's token as a bearer token on the upgrade request.
 * It never reconnects by itself; the worker does, with backoff, after each close.
 *
 * A partition is silence, not a close, and TCP would take many minutes to notice: the
 * channel pings the coordinator (ws answers pings by itself) and gives up on a
 * connection that has not answered within `silenceMs`, so a worker cut off from the
 * network rejoins once it is reachable again.
 */
import WebSocket from 'ws';
import { type CoordinatorMessage, decodeCoordinatorMessage, encodeMessage, type WorkerMessage } from '@ringtrain/protocol';

export interface ControlHandlers {
  readonly onMessage: (m: CoordinatorMessage) => void;
  /** The connection closed (or never opened); `reason` says why. */
  readonly onClose: (reason: string) => void;
}

export class ControlChannel {
  private readonly ws: WebSocket;
  private closed = false;
  private lastHeard = Date.now();
  private readonly pinger: NodeJS.Timeout;
  /** Silence after which the connection is given up; the job's heartbeat timeout once known. */
  silenceMs = 10_000;

  constructor(url: string, token: string, handlers: ControlHandlers) {
    this.ws = new WebSocket(`${url.replace(/\/$/, '')}/worker`, { headers: { authorization: `Bearer ${token}` }, maxPayload: 512 * 1024 * 1024 });
    const close = (reason: string) => {
      if (this.closed) return;
      this.closed = true;
      clearInterval(this.pinger);
      handlers.onClose(reason);
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
      close(`coordinator refused the connection: HTTP ${res.statusCode}`);
      this.ws.terminate();
    });
    this.ws.on('error', (err) => close(err.message));
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
