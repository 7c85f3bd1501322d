/**
 * The control channel against local servers: messages both ways, a bad message refused
 * with 1008, silence detected by pings, and every way a connection fails mapped to its
 * code (TLS with a self-signed certificate made by openssl at run time).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocketServer, type WebSocket as ServerSocket } from 'ws';
import { type CoordinatorMessage, decodeWorkerMessage, encodeMessage, ProtocolError } from '@ringtrain/protocol';
import { ControlChannel, PING_INTERVAL_MS } from './control.js';
import { isFatal, WorkerError } from './errors.js';

const TOKEN = 'control-test-token-0123456789';

interface Opened {
  readonly channel: ControlChannel;
  readonly messages: CoordinatorMessage[];
  readonly opened: Promise<void>;
  readonly closed: Promise<WorkerError | ProtocolError>;
}

function connect(url: string, tls: { ca?: Buffer } = {}): Opened {
  const messages: CoordinatorMessage[] = [];
  let onOpen = (): void => {};
  let onClose = (_: WorkerError | ProtocolError): void => {};
  const opened = new Promise<void>((resolve) => (onOpen = resolve));
  const closed = new Promise<WorkerError | ProtocolError>((resolve) => (onClose = resolve));
  const channel = new ControlChannel(url, TOKEN, { onOpen: () => onOpen(), onMessage: (m) => messages.push(m), onClose: (err) => onClose(err) }, tls);
  return { channel, messages, opened, closed };
}

const servers: Server[] = [];
const wsServers: WebSocketServer[] = [];

/** A WebSocket server on loopback (over TLS with `tls`); `options` go to ws. */
async function serve(onConnection: (ws: ServerSocket, authorization: string | undefined) => void, options: { autoPong?: boolean } = {}, tls?: { cert: Buffer; key: Buffer }): Promise<number> {
  const server = tls ? createHttpsServer(tls) : createHttpServer();
  const wss = new WebSocketServer({ server, ...options });
  wss.on('connection', (ws, req) => onConnection(ws, req.headers.authorization));
  servers.push(server);
  wsServers.push(wss);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/** An HTTP server that answers every upgrade with `status` and `body`. */
async function refusing(status: number, body: string): Promise<number> {
  const server = createHttpServer();
  server.on('upgrade', (_req, socket) => {
    socket.on('error', () => {}); // the channel cuts the connection once it has the refusal
    socket.end(`HTTP/1.1 ${status} Refused\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

let cert: { cert: Buffer; key: Buffer };

before(() => {
  const dir = mkdtempSync(join(tmpdir(), 'ringtrain-control-'));
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', 'key.pem', '-out', 'cert.pem'],
    { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  cert = { cert: readFileSync(join(dir, 'cert.pem')), key: readFileSync(join(dir, 'key.pem')) };
});

after(async () => {
  for (const wss of wsServers) for (const c of wss.clients) c.terminate();
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
});

test('opens with the token as a bearer token; messages are decoded one way and encoded the other', async () => {
  const got: unknown[] = [];
  let auth: string | undefined;
  const port = await serve((ws, authorization) => {
    auth = authorization;
    ws.on('message', (data: Buffer) => got.push(decodeWorkerMessage(data)));
    ws.send(encodeMessage({ type: 'finished', reason: 'over' }));
  });
  const c = connect(`ws://127.0.0.1:${port}`);
  await c.opened;
  assert.equal(auth, `Bearer ${TOKEN}`);
  assert.ok(c.channel.isOpen);
  assert.equal(c.channel.send({ type: 'leave', progress: { step: 3, epochs: 0 } }), true);
  while (got.length === 0 || c.messages.length === 0) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(c.messages, [{ type: 'finished', reason: 'over' }]);
  assert.deepEqual(got, [{ type: 'leave', progress: { step: 3, epochs: 0 } }]);
  c.channel.close('done');
  const err = await c.closed;
  assert.equal(err.code, 'CONTROL_CLOSED');
  assert.equal(c.channel.send({ type: 'leave', progress: null }), false, 'nothing is sent on a closed channel');
});

test('a text frame, or a message that does not decode, closes the connection with 1008 PROTOCOL_BAD_MESSAGE', async () => {
  for (const frame of ['hello', Buffer.from([0xc1])]) {
    let closedWith: [number, string] | null = null;
    const port = await serve((ws) => {
      ws.on('close', (code, reason) => (closedWith = [code, reason.toString()]));
      ws.send(frame);
    });
    const err = await connect(`ws://127.0.0.1:${port}`).closed;
    assert.ok(err instanceof ProtocolError);
    assert.equal(err.code, 'PROTOCOL_BAD_MESSAGE');
    assert.match(err.message, /^bad message from the coordinator: /);
    while (closedWith === null) await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(closedWith, [1008, 'PROTOCOL_BAD_MESSAGE']);
  }
});

test('silence: a coordinator that answers no ping is given up after silenceMs (CONTROL_SILENT); one that answers is kept', async () => {
  const silent = await serve(() => {}, { autoPong: false });
  const alive = await serve(() => {});
  const quiet = connect(`ws://127.0.0.1:${silent}`);
  const talking = connect(`ws://127.0.0.1:${alive}`);
  quiet.channel.silenceMs = 200;
  talking.channel.silenceMs = 200;
  await Promise.all([quiet.opened, talking.opened]);
  const t0 = performance.now();
  const err = await quiet.closed;
  assert.equal(err.code, 'CONTROL_SILENT');
  assert.ok(!isFatal(err as WorkerError));
  assert.ok(performance.now() - t0 < 2 * PING_INTERVAL_MS + 500);
  assert.ok(talking.channel.isOpen, 'pongs keep a connection');
  talking.channel.close();
  await talking.closed;
});

test('failures that pass are coded and not fatal: refused, unreachable, closed', async () => {
  const refused = await connect(`ws://127.0.0.1:${await refusing(401, '{"code":"UNAUTHORIZED"}')}`).closed;
  assert.deepEqual([refused.code, refused.message], ['CONTROL_REFUSED', 'coordinator refused the connection: HTTP 401']);
  const other400 = await connect(`ws://127.0.0.1:${await refusing(400, '{"code":"BAD_REQUEST"}')}`).closed;
  assert.equal(other400.code, 'CONTROL_REFUSED');
  const nobody = await refusing(400, '');
  await new Promise((resolve) => servers.pop()!.close(resolve));
  const unreachable = await connect(`ws://127.0.0.1:${nobody}`).closed;
  assert.equal(unreachable.code, 'CONTROL_UNREACHABLE');
  assert.match(unreachable.message, /ECONNREFUSED/);
  const closing = await connect(`ws://127.0.0.1:${await serve((ws) => ws.close(1001, 'going away'))}`).closed;
  assert.deepEqual([closing.code, closing.message], ['CONTROL_CLOSED', 'closed (1001 going away)']);
  for (const err of [refused, other400, unreachable, closing]) assert.ok(err instanceof WorkerError && !isFatal(err));
});

test('TLS failures are fatal, each with its code: untrusted, no TLS there, TLS required', async () => {
  const tlsPort = await serve(() => {}, {}, cert);
  const trusted = connect(`wss://127.0.0.1:${tlsPort}`, { ca: cert.cert });
  await trusted.opened;
  trusted.channel.close();
  await trusted.closed;
  const untrusted = await connect(`wss://127.0.0.1:${tlsPort}`).closed;
  assert.equal(untrusted.code, 'TLS_CERT_UNTRUSTED');
  assert.match(untrusted.message, /failed verification \(.*SELF_SIGNED/);
  const plain = await connect(`wss://127.0.0.1:${await serve(() => {})}`, { ca: cert.cert }).closed;
  assert.equal(plain.code, 'TLS_HANDSHAKE_FAILED');
  const required = await connect(`ws://127.0.0.1:${await refusing(400, '{"code":"TLS_REQUIRED","message":"this port speaks TLS only"}')}`).closed;
  assert.equal(required.code, 'TLS_REQUIRED');
  for (const err of [untrusted, plain, required]) assert.ok(err instanceof WorkerError && isFatal(err));
});
