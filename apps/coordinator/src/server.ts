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
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import { loadDashboard } from './dashboard.js';
import { prometheusText } from './prometheus.js';
import type { JobRuntime } from './runtime.js';
import { StreamHub } from './stream.js';

export interface ServerOptions {
  readonly runtime: JobRuntime;
  readonly token: string;
  readonly host?: string;
  readonly port?: number;
  readonly log: Logger;
  /** Least time between two stream updates. Default 1 s: a browser on the same machine as the workers takes its CPU from training. */
  readonly streamIntervalMs?: number;
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

  const http: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://coordinator');
    const path = url.pathname;
    if (dashboard.handle(req, res, path)) return;
    if (req.method === 'GET' && path === '/healthz') return json(res, 200, { ok: true });
    if (req.method === 'GET' && path === '/readyz') return json(res, 200, { ready: true, state: runtime.status().state });
    if (req.method === 'GET' && path === '/api/status') return json(res, 200, runtime.status());
    if (req.method === 'GET' && path === '/api/metrics') return json(res, 200, runtime.metrics());
    if (req.method === 'GET' && path === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
      return res.end(prometheusText(runtime.status(), runtime.metrics()));
    }
    const action = control[path];
    if (action) {
      if (req.method !== 'POST') return json(res, 405, { code: 'METHOD_NOT_ALLOWED', message: `${path} takes POST` });
      if (!bearerMatches(req, token)) return json(res, 401, { code: 'UNAUTHORIZED', message: `${path} needs the job token (Authorization: Bearer ...)` });
      action();
      log.info({ path }, 'control request');
      return json(res, 200, { state: runtime.status().state });
    }
    return json(res, 404, { code: 'NOT_FOUND', message: `no ${req.method} ${path}` });
  });

  http.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const path = new URL(req.url ?? '/', 'http://coordinator').pathname;
    const refuse = (status: number, text: string) => {
      socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    if (path === '/worker') {
      if (!bearerMatches(req, token)) {
        log.warn({ remote: socket.remoteAddress }, 'worker connection without the job token refused');
        return refuse(401, 'Unauthorized');
      }
      return workers.handleUpgrade(req, socket, head, (ws) => runtime.attach(ws, `${socket.remoteAddress}:${socket.remotePort}`));
    }
    if (path === '/api/stream') return streams.handleUpgrade(req, socket, head, (ws) => hub.add(ws));
    refuse(404, 'Not Found');
  });

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(o.port ?? 0, o.host ?? '0.0.0.0', () => resolve());
  });
  const port = (http.address() as AddressInfo).port;
  const host = o.host && o.host !== '0.0.0.0' ? o.host : '127.0.0.1';
  return {
    port,
    url: `http://${host}:${port}`,
    close: async () => {
      hub.close();
      for (const c of [...workers.clients, ...streams.clients]) c.terminate();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}
