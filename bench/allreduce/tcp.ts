/**
 * Raw TCP throughput between two Node processes, for the ratio: `tcp.ts server` counts
 * bytes; `tcp.ts client <port> <bytes>` writes them in 1 MiB writes as fast as the
 * socket drains. The server reports bytes and the time from first to last byte.
 */
import { connect, createServer } from 'node:net';
import type { FromTcp } from './protocol.js';

const send = (msg: FromTcp): void => void process.send?.(msg);
const [role, portArg, bytesArg] = process.argv.slice(2);

if (role === 'server') {
  const server = createServer((socket) => {
    let got = 0;
    let start = 0;
    socket.on('data', (chunk: Buffer) => {
      if (got === 0) start = performance.now();
      got += chunk.length;
    });
    socket.on('end', () => {
      send({ type: 'done', bytes: got, ms: performance.now() - start });
      server.close();
      process.exit(0);
    });
  });
  server.listen(0, '127.0.0.1', () => {
    const addr = server.address();
    send({ type: 'listening', port: typeof addr === 'object' && addr ? addr.port : 0 });
  });
} else {
  const total = Number(bytesArg);
  const block = Buffer.alloc(1024 * 1024, 7);
  const socket = connect(Number(portArg), '127.0.0.1', () => {
    let sent = 0;
    const write = (): void => {
      while (sent < total) {
        sent += block.length;
        if (!socket.write(block)) {
          socket.once('drain', write);
          return;
        }
      }
      socket.end(() => process.exit(0));
    };
    write();
  });
}
