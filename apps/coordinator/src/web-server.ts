/**
 * The coordinator's listening server: plain HTTP, or, given a certificate and key, HTTPS
 * (and so wss for /worker and /api/stream) on the same single port, never both.
 *
 * A TLS port answers a plain-text request with `400 TLS_REQUIRED` instead of a reset
 * connection, so that `curl http://...` or a worker started with an http:// URL says what
 * is wrong. Each new connection's first byte decides: 0x16 opens a TLS handshake record
 * and goes to the TLS server (the byte is put back, and the TLS socket reads it first);
 * anything else is plain text, answered and closed. A connection that sends nothing
 * within FIRST_BYTE_MS is closed.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { Socket } from 'node:net';

export interface ServerTls {
  /** PEM certificate chain, leaf first. */
  readonly cert: string | Buffer;
  /** PEM private key of the certificate. */
  readonly key: string | Buffer;
}

export interface WebServer {
  /** An http.Server, or an https.Server (which has every member of one the coordinator uses). */
  readonly server: Server;
  readonly scheme: 'http' | 'https';
  /** Ends every connection at once, those still in their TLS handshake or before their first byte included. */
  closeAllConnections(): void;
}

/** How long a new connection on a TLS port may stay silent before it is closed, and may take over its TLS handshake. */
export const FIRST_BYTE_MS = 10_000;

/** The first byte of a TLS record of type handshake: every TLS connection starts with one. */
const TLS_HANDSHAKE = 0x16;

/**
 * A server for `handler`; HTTPS with `tls`. A plain-text connection on a TLS port is
 * answered with what `plainText(socket)` returns (a whole HTTP response) and closed.
 */
export function createWebServer(
  tls: ServerTls | undefined,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  plainText: (socket: Socket) => string,
  firstByteMs = FIRST_BYTE_MS,
): WebServer {
  if (!tls) {
    const server = createServer(handler);
    return { server, scheme: 'http', closeAllConnections: () => server.closeAllConnections() };
  }
  const server = createTlsServer({ cert: tls.cert, key: tls.key, handshakeTimeout: firstByteMs }, handler);
  const raw = new Set<Socket>();
  const toTls = server.listeners('connection') as ((socket: Socket) => void)[];
  server.removeAllListeners('connection');
  server.on('connection', (socket: Socket) => {
    raw.add(socket);
    socket.once('close', () => raw.delete(socket));
    socket.on('error', () => socket.destroy());
    const silent = setTimeout(() => socket.destroy(), firstByteMs);
    socket.once('close', () => clearTimeout(silent));
    socket.once('data', (first: Buffer) => {
      clearTimeout(silent);
      socket.pause();
      socket.unshift(first);
      if (first[0] === TLS_HANDSHAKE) {
        for (const listener of toTls) listener.call(server, socket);
      } else {
        socket.end(plainText(socket));
      }
    });
  });
  return {
    // https.Server mixes in http.Server's members (listen, address, close, closeAllConnections, the timeouts, 'upgrade', 'clientError').
    server: server as unknown as Server,
    scheme: 'https',
    closeAllConnections: () => {
      server.closeAllConnections();
      for (const socket of raw) socket.destroy();
    },
  };
}
