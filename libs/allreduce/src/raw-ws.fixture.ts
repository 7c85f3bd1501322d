/**
 * Test helpers: a WebSocket peer played by hand, byte by byte (RFC 6455, section 5), as
 * ws's own receiver tests feed raw frames: to send what no well-behaved ws would
 * (unmasked client frames, reserved bits, text, fragments, odd lengths, nothing at all)
 * and to read what ours puts on the wire (masking keys, close codes and reasons).
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export const Opcode = { continuation: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;

export interface FrameOptions {
  /** Last frame of its message; default true. */
  readonly fin?: boolean;
  /** Sets RSV1, which only an extension may (none is negotiated here). */
  readonly rsv1?: boolean;
  /** The 4-byte masking key; null sends the frame unmasked (as only a server may). Default: a random key. */
  readonly mask?: Uint8Array | null;
}

/** One frame: FIN, RSV1 and opcode; the payload length in 7, 7+16 or 7+64 bits; the masking key; the payload, masked. */
export function encodeFrame(opcode: number, payload: Uint8Array = Buffer.alloc(0), o: FrameOptions = {}): Buffer {
  const mask = o.mask === undefined ? randomBytes(4) : o.mask;
  const n = payload.length;
  const lengthBytes = n < 126 ? 0 : n < 65536 ? 2 : 8;
  const head = Buffer.alloc(2 + lengthBytes + (mask ? 4 : 0));
  head[0] = ((o.fin ?? true) ? 0x80 : 0) | (o.rsv1 ? 0x40 : 0) | opcode;
  head[1] = (mask ? 0x80 : 0) | (n < 126 ? n : n < 65536 ? 126 : 127);
  if (lengthBytes === 2) head.writeUInt16BE(n, 2);
  if (lengthBytes === 8) head.writeBigUInt64BE(BigInt(n), 2);
  const body = Buffer.from(payload);
  if (mask) {
    Buffer.from(mask).copy(head, 2 + lengthBytes);
    for (let i = 0; i < n; i++) body[i] = body[i]! ^ mask[i & 3]!;
  }
  return Buffer.concat([head, body]);
}

/** A close frame's payload: the code, then the reason in UTF-8. */
export function closePayload(code: number, reason = ''): Buffer {
  const b = Buffer.alloc(2 + Buffer.byteLength(reason));
  b.writeUInt16BE(code, 0);
  b.write(reason, 2);
  return b;
}

export interface RawFrame {
  readonly fin: boolean;
  readonly opcode: number;
  /** The masking key, or null for an unmasked frame. */
  readonly mask: Buffer | null;
  /** Unmasked. */
  readonly payload: Buffer;
}

/** Cuts a byte stream into frames as they complete (a frame may span reads, a read hold several frames). */
export class FrameReader {
  readonly frames: RawFrame[] = [];
  private pending = Buffer.alloc(0);
  private readonly waiters: (() => void)[] = [];

  push(chunk: Buffer): void {
    this.pending = Buffer.concat([this.pending, chunk]);
    for (;;) {
      const frame = this.take();
      if (!frame) break;
      this.frames.push(frame);
    }
    for (const wake of this.waiters.splice(0)) wake();
  }

  /** Resolves once `count` frames have been read, or rejects after `timeoutMs`. */
  async until(count: number, timeoutMs = 3000): Promise<RawFrame[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.frames.length < count) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.frames.length} frames read, waited for ${count}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.frames.slice(0, count);
  }

  private take(): RawFrame | undefined {
    const b = this.pending;
    if (b.length < 2) return undefined;
    let n = b[1]! & 0x7f;
    let at = 2;
    if (n === 126) {
      if (b.length < 4) return undefined;
      n = b.readUInt16BE(2);
      at = 4;
    } else if (n === 127) {
      if (b.length < 10) return undefined;
      n = Number(b.readBigUInt64BE(2));
      at = 10;
    }
    const masked = (b[1]! & 0x80) !== 0;
    if (b.length < at + (masked ? 4 : 0) + n) return undefined;
    const mask = masked ? Buffer.from(b.subarray(at, at + 4)) : null;
    if (masked) at += 4;
    const payload = Buffer.from(b.subarray(at, at + n));
    if (mask) for (let i = 0; i < n; i++) payload[i] = payload[i]! ^ mask[i & 3]!;
    this.pending = b.subarray(at + n);
    return { fin: (b[0]! & 0x80) !== 0, opcode: b[0]! & 0x0f, mask, payload };
  }
}

/** The code and reason of a close frame. */
export function closeOf(frame: RawFrame): { code: number; reason: string } {
  if (frame.opcode !== Opcode.close) throw new Error(`opcode ${frame.opcode} is not a close`);
  return { code: frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : 1005, reason: frame.payload.subarray(2).toString('utf8') };
}

/** A peer after the opening handshake: its socket, and the frames it has read so far. */
export interface RawPeer {
  readonly socket: Socket;
  readonly reader: FrameReader;
  /** Writes one frame (a server's are unmasked unless `mask` says otherwise). */
  send(opcode: number, payload?: Uint8Array, o?: FrameOptions): void;
}

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

function peer(socket: Socket, rest: Buffer, server: boolean): RawPeer {
  const reader = new FrameReader();
  socket.on('data', (chunk: Buffer) => reader.push(chunk));
  socket.on('error', () => {});
  if (rest.length > 0) reader.push(rest);
  return {
    socket,
    reader,
    send: (opcode, payload, o = {}) => void socket.write(encodeFrame(opcode, payload, server ? { mask: null, ...o } : o)),
  };
}

/** Reads an HTTP head off `socket`; resolves with it and the bytes after it. */
function readHead(socket: Socket): Promise<{ head: string; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      got = Buffer.concat([got, chunk]);
      const end = got.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      resolve({ head: got.subarray(0, end).toString('latin1'), rest: got.subarray(end + 4) });
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
}

export interface RawServer {
  readonly port: number;
  /** Every peer that completed the upgrade, in order. */
  readonly peers: RawPeer[];
  /** Resolves with the next peer to complete the upgrade. */
  nextPeer(timeoutMs?: number): Promise<RawPeer>;
  close(): Promise<void>;
}

/**
 * A TCP server on 127.0.0.1 that answers the WebSocket upgrade by hand and then does
 * nothing unless the test says so; `onPeer` runs for each peer right after the upgrade.
 */
export async function rawServer(onPeer: (p: RawPeer) => void = () => {}): Promise<RawServer> {
  const peers: RawPeer[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    void readHead(socket).then(({ head, rest }) => {
      const key = /^sec-websocket-key:\s*(\S+)/im.exec(head)?.[1] ?? '';
      const accept = createHash('sha1').update(key + GUID).digest('base64');
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
      const p = peer(socket, rest, true);
      peers.push(p);
      onPeer(p);
    }, () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    peers,
    async nextPeer(timeoutMs = 3000) {
      const seen = peers.length;
      const deadline = Date.now() + timeoutMs;
      while (peers.length === seen) {
        if (Date.now() > deadline) throw new Error('no peer connected');
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      return peers[seen]!;
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** Dials 127.0.0.1:`port` and plays the client side of the upgrade by hand. */
export async function rawClient(port: number): Promise<RawPeer> {
  const socket = connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const key = randomBytes(16).toString('base64');
  socket.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  const { head, rest } = await readHead(socket);
  if (!head.startsWith('HTTP/1.1 101')) throw new Error(`upgrade refused: ${head.split('\r\n')[0]}`);
  return peer(socket, rest, false);
}

/** A port on 127.0.0.1 that nothing listens on (it did a moment ago: the OS handed it out). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Waits until `cond()` holds, polling; throws after `timeoutMs`. */
export async function until(cond: () => boolean, timeoutMs = 3000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
