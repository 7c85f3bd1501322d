/**
 * A TCP proxy on 127.0.0.1 that stands between two ring members (or a worker and its
 * coordinator), so that a test can cut their connection (both sockets destroyed) or
 * partition it (bytes silently dropped both ways, as a dead network path does), and read
 * what crossed it (`record: true`, then `transcript()`: the first RECORD_LIMIT bytes).
 * With `cutAfterBytes`, a connection whose client has sent more than that is cut, as a
 * proxy with a request size limit does.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

const RECORD_LIMIT = 64 * 1024 * 1024;

export class FaultProxy {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private blackholed = false;
  private readonly recorded: Buffer[] = [];
  private recordedBytes = 0;

  /** Connections cut for sending more than `cutAfterBytes`. */
  overBudget = 0;

  private constructor(
    server: Server,
    private readonly recording: boolean,
    private readonly cutAfterBytes: number,
  ) {
    this.server = server;
  }

  static async start(targetPort: number, options: { readonly record?: boolean; readonly cutAfterBytes?: number } = {}): Promise<FaultProxy> {
    const server = createServer();
    const proxy = new FaultProxy(server, options.record ?? false, options.cutAfterBytes ?? Infinity);
    server.on('connection', (client) => proxy.pipe(client, targetPort));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get port(): number {
    const addr = this.server.address();
    return typeof addr === 'object' && addr ? addr.port : 0;
  }

  /** Destroys every proxied connection at once. */
  cut(): void {
    for (const s of this.sockets) s.destroy();
  }

  /** Keeps the connections open but stops delivering bytes in both directions. */
  partition(): void {
    this.blackholed = true;
  }

  /** Every byte that crossed so far (up to RECORD_LIMIT), both directions interleaved as they arrived. */
  transcript(): Buffer {
    return Buffer.concat(this.recorded);
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private pipe(client: Socket, targetPort: number): void {
    const upstream = connect(targetPort, '127.0.0.1');
    let sent = 0;
    client.on('data', (chunk: Buffer) => {
      sent += chunk.length;
      if (sent > this.cutAfterBytes) {
        this.overBudget += 1;
        client.destroy();
        upstream.destroy();
      }
    });
    for (const [from, to] of [[client, upstream], [upstream, client]] as const) {
      this.sockets.add(from);
      from.on('data', (chunk: Buffer) => {
        if (from.destroyed) return;
        if (this.recording && this.recordedBytes < RECORD_LIMIT) {
          this.recorded.push(chunk);
          this.recordedBytes += chunk.length;
        }
        if (!this.blackholed) to.write(chunk);
      });
      from.on('error', () => to.destroy());
      from.on('close', () => {
        this.sockets.delete(from);
        to.destroy();
      });
    }
  }
}
