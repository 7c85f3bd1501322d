/**
 * The coordinator's check of a worker's ring address, after a peer reported that it
 * could not connect to it: a plain TCP connect, closed at once. Reachable means the
 * address answers; what speaks there is the ring handshake's business.
 */
import { connect } from 'node:net';
import type { Address } from './membership.js';

export const PROBE_TIMEOUT_MS = 3000;

export function probeAddress(address: Address, timeoutMs = PROBE_TIMEOUT_MS): Promise<{ reachable: boolean; detail: string }> {
  return new Promise((resolve) => {
    const socket = connect({ host: address.host, port: address.port });
    const finish = (reachable: boolean, detail: string): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ reachable, detail });
    };
    const timer = setTimeout(() => finish(false, `no answer within ${timeoutMs} ms`), timeoutMs);
    socket.once('connect', () => finish(true, 'connected'));
    socket.once('error', (err: NodeJS.ErrnoException) => finish(false, err.code ?? err.message));
  });
}
