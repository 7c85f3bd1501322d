/**
 * The coordinator's listening server with and without TLS, with certificates made by
 * openssl at run time (tests/tls-certs.ts): https answers with the CA; plain text on the
 * TLS port gets the refusal and is closed; a silent connection is closed after the
 * first-byte deadline; closeAllConnections also ends connections still before their
 * first byte or in their TLS handshake, so that closing the server never waits on them.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { get as httpGet, type IncomingMessage } from 'node:http';
import { get as httpsGet } from 'node:https';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { makeCerts, type TestCerts } from '../../../tests/tls-certs.js';
import { createWebServer, type WebServer } from './web-server.js';

const REFUSAL = 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 12\r\n\r\nTLS_REQUIRED';

function body(res: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (d: string) => (text += d));
    res.on('end', () => resolve(text));
  });
}

async function listening(w: WebServer): Promise<number> {
  await new Promise<void>((resolve) => w.server.listen(0, '127.0.0.1', resolve));
  return (w.server.address() as AddressInfo).port;
}

function closed(socket: Socket): Promise<number> {
  const start = Date.now();
  return new Promise((resolve) => socket.once('close', () => resolve(Date.now() - start)));
}

describe('createWebServer', () => {
  let certs: TestCerts;
  before(() => (certs = makeCerts()));

  it('without TLS, a plain http server', async () => {
    const w = createWebServer(undefined, (_req, res) => res.end('plain'), () => REFUSAL);
    const port = await listening(w);
    try {
      assert.equal(w.scheme, 'http');
      const res = await new Promise<IncomingMessage>((resolve, reject) => httpGet(`http://127.0.0.1:${port}/`, resolve).on('error', reject));
      assert.equal(await body(res), 'plain');
    } finally {
      w.closeAllConnections();
      w.server.close();
    }
  });

  describe('with TLS', () => {
    const refused: string[] = [];
    let w: WebServer;
    let port = 0;
    before(async () => {
      w = createWebServer({ cert: readFileSync(certs.cert), key: readFileSync(certs.key) }, (req, res) => res.end(`secure ${req.url}`), (socket) => {
        refused.push(socket.remoteAddress ?? '');
        return REFUSAL;
      }, 300);
      port = await listening(w);
    });
    after(() => {
      w.closeAllConnections();
      w.server.close();
    });

    it('answers https, verified with the CA', async () => {
      assert.equal(w.scheme, 'https');
      const res = await new Promise<IncomingMessage>((resolve, reject) => httpsGet(`https://127.0.0.1:${port}/x`, { ca: readFileSync(certs.ca) }, resolve).on('error', reject));
      assert.equal(await body(res), 'secure /x');
    });

    it('answers plain text with the refusal, and closes', async () => {
      const res = await new Promise<IncomingMessage>((resolve, reject) => httpGet(`http://127.0.0.1:${port}/x`, resolve).on('error', reject));
      assert.deepEqual([res.statusCode, await body(res)], [400, 'TLS_REQUIRED']);
      assert.deepEqual(refused, ['127.0.0.1']);
    });

    it('closes a connection that sends nothing by the first-byte deadline', async () => {
      const socket = connect(port, '127.0.0.1');
      const ms = await closed(socket);
      assert.ok(ms >= 250 && ms < 3000, `closed after ${ms} ms`);
    });

    it('closeAllConnections ends connections before their first byte and mid-handshake too', async () => {
      const silent = connect(port, '127.0.0.1');
      const handshaking = connect(port, '127.0.0.1');
      await Promise.all([silent, handshaking].map((s) => new Promise((resolve) => s.once('connect', resolve))));
      handshaking.write(Buffer.from([0x16, 0x03, 0x01])); // the start of a ClientHello, never finished
      await new Promise((resolve) => setTimeout(resolve, 50));
      const ends = [closed(silent), closed(handshaking)];
      w.closeAllConnections();
      for (const ms of await Promise.all(ends)) assert.ok(ms < 200, `closed after ${ms} ms`);
    });
  });
});
