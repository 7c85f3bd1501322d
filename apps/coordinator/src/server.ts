/**
 * The coordinator's HTTP face, on one port:
 *   GET  /, /assets/...             the dashboard (dashboard.ts)
 *   GET  /api/model/...             the trained model's files, once written
 *   GET  /healthz, /readyz          probes
 *   GET  /api/status, /api/metrics  the job's state and metric history (JSON)
 *   GET  /metrics                   Prometheus
 *   POST /api/pause|resume|stop     control; need the token (Authorization: Bearer)
 *   WS   /api/stream                live status and new metrics, throttled, shared by all clients (stream.ts); read-only, no token
 *   WS   /worker                    workers' control channel; needs the token
 * A request without the right token gets 401 with code UNAUTHORIZED, before any upgrade.
 * With `tls` all of it is https and wss only, on the same port (web-server.ts).
 *
 * No input ends the process: the request target is parsed without `new URL`
 * (request-target.ts; a malformed one is 400 BAD_REQUEST), a handler that throws
 * answers 500 INTERNAL_ERROR and logs, a request Node cannot parse (`clientError`) gets
 * 400, 408 or 431, and every upgrade socket has an error listener before anything is
 * written to it (a refused upgrade whose client reset the connection used to be an
 * uncaught ECONNRESET). Refusals are counted and logged per peer (rejections.ts).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { type IncomingMessage, type Server, type ServerResponse, STATUS_CODES } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import { loadDashboard } from './dashboard.js';
import { prometheusText } from './prometheus.js';
import type { RejectReason } from './rejections.js';
import { parseTarget } from './request-target.js';
import type { JobRuntime } from './runtime.js';
import { StreamHub } from './stream.js';
import { createWebServer, type ServerTls } from './web-server.js';

export interface ServerOptions {
  readonly runtime: JobRuntime;
  readonly token: string;
  readonly host?: string;
  readonly port?: number;
  readonly log: Logger;
  /** Least time between two stream updates. Default 1 s: a browser on the same machine as the workers takes its CPU from training. */
  readonly streamIntervalMs?: number;
  /** Serve https and wss only, with this certificate (web-server.ts); plain text on the port gets 400 TLS_REQUIRED. */
  readonly tls?: ServerTls;
}

export interface CoordinatorServer {
  readonly port: number;
  readonly url: string;
  close(): Promise<void>;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export function bearerMatches(req: IncomingMessage, token: string): boolean {
  const h = req.headers.authorization ?? '';
  const given = h.startsWith('Bearer ') ? h.slice('Bearer '.length).trim() : '';
  return given.length > 0 && timingSafeEqual(digest(given), digest(token));
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(text);
}

/** A whole HTTP/1.1 response with a JSON error body, for a socket that has no ServerResponse (an upgrade, a clientError). */
function rawError(status: number, code: string, message: string): string {
  const body = JSON.stringify({ code, message });
  const reason = STATUS_CODES[status] ?? 'Error';
  return `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

/** What a request Node could not parse is answered with: 431 for a head too large, 408 for one too slow, else 400. */
function clientErrorStatus(code: string | undefined): 400 | 408 | 431 {
  if (code === 'HPE_HEADER_OVERFLOW') return 431;
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return 408;
  return 400;
}

export async function startServer(o: ServerOptions): Promise<CoordinatorServer> {
  const { runtime, token } = o;
  const log = o.log.child({ component: 'http' });
  const interval = o.streamIntervalMs ?? 1000;
  const workers = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 * 1024 });
  const streams = new WebSocketServer({ noServer: true, maxPayload: 4096 });
  const hub = new StreamHub(runtime, interval);
  const dashboard = loadDashboard(() => runtime.status().model);

  const control: Record<string, () => void> = {
    '/api/pause': () => runtime.pause(),
    '/api/resume': () => runtime.resume(),
    '/api/stop': () => runtime.stop('stopped through the API', true),
  };

  const rejections = runtime.rejections;
  const reject = (reason: RejectReason, socket: Socket, message: string, fields: object = {}): void => rejections.note(reason, socket.remoteAddress, message, fields);
  /** A handler threw: our bug, whatever the request. Logged (rate-limited per peer, at error) and answered by `answer`. */
  const failed = (socket: Socket, where: string, err: unknown, answer: () => void): void => {
    reject('internal_error', socket, `${where} failed`, { err });
    try {
      answer();
    } catch {
      socket.destroy();
    }
  };

  const route = (req: IncomingMessage, res: ServerResponse): void => {
    const target = parseTarget(req.url);
    if (!target.ok) {
      reject('bad_request', req.socket, `bad request target: ${target.reason}`);
      return json(res, 400, { code: 'BAD_REQUEST', message: target.reason });
    }
    const path = target.path;
    if (dashboard.handle(req, res, path)) return;
    if (req.method === 'GET' && path === '/healthz') return json(res, 200, { ok: true });
    if (req.method === 'GET' && path === '/readyz') return json(res, 200, { ready: true, state: runtime.status().state });
    if (req.method === 'GET' && path === '/api/status') return json(res, 200, runtime.status());
    if (req.method === 'GET' && path === '/api/metrics') return json(res, 200, runtime.metrics());
    if (req.method === 'GET' && path === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
      return void res.end(prometheusText(runtime.status(), runtime.metrics(), rejections.counts));
    }
    const action = control[path];
    if (action) {
      if (req.method !== 'POST') return json(res, 405, { code: 'METHOD_NOT_ALLOWED', message: `${path} takes POST` });
      if (!bearerMatches(req, token)) {
        reject('unauthorized', req.socket, 'control request without the job token refused', { path });
        return json(res, 401, { code: 'UNAUTHORIZED', message: `${path} needs the job token (Authorization: Bearer ...)` });
      }
      action();
      log.info({ path }, 'control request');
      return json(res, 200, { state: runtime.status().state });
    }
    return json(res, 404, { code: 'NOT_FOUND', message: `no ${req.method} ${path}` });
  };

  const upgrade = (req: IncomingMessage, socket: Socket, head: Buffer): void => {
    const refuse = (status: number, code: string, message: string): void => void socket.end(rawError(status, code, message));
    const target = parseTarget(req.url);
    if (!target.ok) {
      reject('bad_request', socket, `bad upgrade request target: ${target.reason}`);
      return refuse(400, 'BAD_REQUEST', target.reason);
    }
    const path = target.path;
    if (path === '/worker') {
      if (!bearerMatches(req, token)) {
        reject('unauthorized', socket, 'worker connection without the job token refused');
        return refuse(401, 'UNAUTHORIZED', '/worker needs the job token (Authorization: Bearer ...)');
      }
      return workers.handleUpgrade(req, socket, head, (ws) => runtime.attach(ws, `${socket.remoteAddress}:${socket.remotePort}`));
    }
    if (path === '/api/stream') return streams.handleUpgrade(req, socket, head, (ws) => hub.add(ws));
    refuse(404, 'NOT_FOUND', `no WebSocket at ${path}`);
  };

  // An upgrade ws refuses (a wrong method, Upgrade, Sec-WebSocket-Key or -Version header) is counted and answered here.
  for (const wss of [workers, streams]) {
    wss.on('wsClientError', (err: Error, socket: Socket) => {
      reject('bad_request', socket, `bad WebSocket upgrade: ${err.message}`);
      socket.end(rawError(/method/i.test(err.message) ? 405 : 400, 'BAD_REQUEST', err.message));
    });
  }

  const web = createWebServer(o.tls, (req, res) => {
    try {
      route(req, res);
    } catch (err) {
      failed(req.socket, `${req.method} ${req.url}`, err, () => (res.headersSent ? res.destroy() : json(res, 500, { code: 'INTERNAL_ERROR', message: 'the request failed; the coordinator logged why' })));
    }
  }, (socket) => {
    reject('bad_request', socket, 'plain-text request on the TLS port refused');
    return rawError(400, 'TLS_REQUIRED', 'this port speaks TLS only: use https:// (wss:// for WebSockets)');
  });
  const http: Server = web.server;
  // A slow or silent client (slowloris) may hold a connection this long for its request head.
  http.headersTimeout = 15_000;
  http.requestTimeout = 30_000;

  http.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    // Node takes its own error listener off an upgrade socket: without this one, a client
    // resetting the connection while it is refused would be an uncaught ECONNRESET.
    socket.on('error', () => socket.destroy());
    try {
      upgrade(req, socket, head);
    } catch (err) {
      failed(socket, `upgrade ${req.url}`, err, () => socket.destroy());
    }
  });

  // A request Node cannot parse: a malformed request line or header, a head over 16 KiB, a timeout.
  http.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (err.code === 'ECONNRESET' || !socket.writable) return void socket.destroy();
    const status = clientErrorStatus(err.code);
    reject('bad_request', socket, `malformed HTTP request: ${err.message}`, { code: err.code });
    const inFlight = (socket as Socket & { _httpMessage?: ServerResponse })._httpMessage;
    if (inFlight?.headersSent) return void socket.destroy();
    const code = status === 431 ? 'HEADERS_TOO_LARGE' : status === 408 ? 'REQUEST_TIMEOUT' : 'BAD_REQUEST';
    socket.end(rawError(status, code, status === 408 ? 'the request was not received in time' : err.message));
  });

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(o.port ?? 0, o.host ?? '0.0.0.0', () => resolve());
  });
  const port = (http.address() as AddressInfo).port;
  const host = o.host && o.host !== '0.0.0.0' ? o.host : '127.0.0.1';
  return {
    port,
    url: `${web.scheme}://${host}:${port}`,
    close: async () => {
      hub.close();
      for (const c of [...workers.clients, ...streams.clients]) c.terminate();
      web.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}
