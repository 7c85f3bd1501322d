/**
 * A TCP proxy on 127.0.0.1 that stands between two ring members, so that a test can
 * cut their connection (both sockets destroyed) or partition it (bytes silently
 * dropped both ways, as a dead network path does).
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export class FaultProxy {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private blackholed = false;

  private constructor(server: Server) {
    this.server = server;
  }

  static async start(targetPort: number): Promise<FaultProxy> {
    const server = createServer();
    const proxy = new FaultProxy(server);
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

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private pipe(client: Socket, targetPort: number): void {
    const upstream = connect(targetPort, '127.0.0.1');
    for (const [from, to] of [[client, upstream], [upstream, client]] as const) {
      this.sockets.add(from);
      from.on('data', (chunk) => {
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
