/**
 * The coordinator's own error codes: what a worker or the job's end can cause that is
 * not a message's fault (a message's is libs/protocol's PROTOCOL_BAD_MESSAGE or
 * PROTOCOL_ROLE, or libs/train's SNAPSHOT_INVALID for a state that does not verify).
 * Each that ends a worker's connection has the WebSocket close code it is closed with;
 * the close reason is `CODE: message`. docs/errors.md lists every code.
 */

export const COORDINATOR_ERROR_CODES = {
  /** A connection that sent no `register` within REGISTER_DEADLINE_MS (connections.ts). */
  REGISTER_TIMEOUT: 1008,
  /** The same worker id registered on a newer connection: the older one is closed (a normal close). */
  WORKER_REPLACED: 1000,
  /** Membership dropped the worker (lost: closed, silent, no state report; or excluded). It may connect and join again. */
  WORKER_DROPPED: 4000,
  /** The coordinator failed handling a worker's message: a bug, logged at error. */
  INTERNAL_ERROR: 1011,
  /** The state source of a stopping job sent no state that verifies within UPLOAD_DEADLINE_MS: the latest checkpoint stands. No connection is closed. */
  UPLOAD_TIMEOUT: null,
} as const;

export type CoordinatorErrorCode = keyof typeof COORDINATOR_ERROR_CODES;

export class CoordinatorError extends Error {
  override readonly name = 'CoordinatorError';
  /** The close code of a connection this error ends; null for one that ends none. */
  readonly closeCode: number | null;

  constructor(
    readonly code: CoordinatorErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.closeCode = COORDINATOR_ERROR_CODES[code];
  }
}

/** The end of a switch that handles every case: a new action or message type is a compile error there, not a silent no-op. */
export function unhandled(x: never): never {
  throw new CoordinatorError('INTERNAL_ERROR', `unhandled case: ${JSON.stringify(x)}`);
}
