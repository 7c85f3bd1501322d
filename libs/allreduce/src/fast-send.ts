/**
 * Writing one WebSocket frame from two pieces, a header and a payload elsewhere in
 * memory, without first copying them together.
 *
 * ws.send takes one buffer: a frame whose 40-byte ring header sits in a small slot and
 * whose payload is a view of the caller's array (the first reduce-scatter step, a
 * broadcast from its root) would have to be copied into one buffer first, a memcpy of a
 * third of the operation's bytes at W = 3. ws itself writes a frame as its WebSocket
 * header and the payload, corked into one writev; here the same is done with one piece
 * more: WebSocket header, ring header, payload.
 *
 * Only where ws would have written the same bytes and nothing of ws's can come between:
 * the connection open, its sender idle (no queued or deflating message, not inside a
 * fragmented one), no permessage-deflate, and frames unmasked (the server's side of the
 * connection, which is the side that sends the ring's data). Otherwise `send` returns
 * false and the caller goes through ws.send. It reaches into ws's private fields, as
 * fast-receive.ts does; attach checks them, and link.spec.ts checks that the ring's data
 * frames do take this path.
 */
import type { Socket } from 'node:net';
import type WebSocket from 'ws';

interface WsSenderInternals {
  _state: number;
  _queue: unknown[];
  _firstFragment: boolean;
}

interface WsInternals {
  _socket?: Socket;
  _sender?: WsSenderInternals;
  _isServer?: boolean;
  _extensions?: Record<string, unknown>;
}

/** ws's Sender state when it writes frames at once (sender.js: DEFAULT). */
const SENDER_IDLE = 0;

export class FastSender {
  private constructor(
    private readonly ws: WebSocket,
    private readonly socket: Socket,
    private readonly sender: WsSenderInternals,
  ) {}

  /** A sender for `ws`, or null where its internals are not as expected or its frames must be masked. */
  static attach(ws: WebSocket): FastSender | null {
    const w = ws as unknown as WsInternals;
    const { _socket: socket, _sender: sender } = w;
    if (!socket || !sender || w._isServer !== true) return null;
    if (typeof sender._state !== 'number' || !Array.isArray(sender._queue) || typeof sender._firstFragment !== 'boolean') return null;
    if (!w._extensions || Object.keys(w._extensions).length !== 0) return null;
    return new FastSender(ws, socket, sender);
  }

  /**
   * Writes one binary frame of `head` then `payload`, or returns false (nothing written)
   * when ws is not in a state to allow it. `cb` runs once both are handed to the kernel.
   */
  send(head: Buffer, payload: Buffer, cb: (err?: Error | null) => void): boolean {
    const s = this.sender;
    if (this.ws.readyState !== this.ws.OPEN || s._state !== SENDER_IDLE || s._queue.length !== 0 || !s._firstFragment) return false;
    const length = head.length + payload.length;
    const ws = frameHeader(length);
    const socket = this.socket;
    socket.cork();
    socket.write(ws);
    if (payload.length === 0) {
      socket.write(head, cb);
    } else {
      socket.write(head);
      socket.write(payload, cb);
    }
    socket.uncork();
    return true;
  }
}

/** The WebSocket header of an unmasked, final, binary frame of `length` bytes (RFC 6455 5.2). */
export function frameHeader(length: number): Buffer {
  if (length < 126) return Buffer.from([0x82, length]);
  if (length < 65536) {
    const b = Buffer.allocUnsafe(4);
    b[0] = 0x82;
    b[1] = 126;
    b.writeUInt16BE(length, 2);
    return b;
  }
  const b = Buffer.allocUnsafe(10);
  b[0] = 0x82;
  b[1] = 127;
  b.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
  b.writeUInt32BE(length >>> 0, 6);
  return b;
}
