/** Reading handshake messages off a WebSocket that is not yet a Link, with a deadline. */
import type WebSocket from 'ws';
import { RingError, RingFrameError } from './errors.js';
import { decodeHandshake, type HandshakeMessage } from './handshake.js';
import { closeWith, errorForClose } from './close.js';

/**
 * Resolves with the next message, decoded and validated; rejects with a RingError on a
 * bad message (after closing the socket with its code), on close, or at the deadline.
 */
export function nextHandshake(ws: WebSocket, timeoutMs: number, peer: number): Promise<HandshakeMessage> {
  return new Promise((resolve, reject) => {
    let wsError: Error | undefined;
    const cleanup = (): void => {
      clearTimeout(timer);
      ws.off('message', onMessage);
      ws.off('close', onClose);
      ws.off('error', onError);
    };
    const fail = (err: RingError, close: boolean): void => {
      cleanup();
      if (close) closeWith(ws, err);
      reject(err);
    };
    const onMessage = (data: WebSocket.RawData, isBinary: boolean): void => {
      if (!isBinary || !Buffer.isBuffer(data)) {
        fail(new RingFrameError('RING_BAD_FRAME', 'handshake: not a binary message', { peer }), true);
        return;
      }
      try {
        const msg = decodeHandshake(data);
        cleanup();
        resolve(msg);
      } catch (err) {
        fail(err as RingError, true);
      }
    };
    const onClose = (code: number, reason: Buffer): void => fail(errorForClose(code, reason.toString('utf8'), peer, wsError), false);
    const onError = (err: Error): void => {
      wsError = err;
    };
    const timer = setTimeout(() => fail(new RingError('RING_TIMEOUT', `handshake with rank ${peer} timed out after ${timeoutMs} ms`, { peer }), true), Math.max(0, timeoutMs));
    ws.on('message', onMessage);
    ws.on('close', onClose);
    ws.on('error', onError);
  });
}
