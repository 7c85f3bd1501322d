/**
 * The errors of the ring. Every failure carries a stable `code` that callers, tests and
 * operators match on; the message is for humans only. Wire violations are
 * `RingFrameError`s, which also say with which WebSocket close code the connection is
 * closed. docs/allreduce.md lists every code.
 */

export type RingErrorCode =
  /** Bad options or arguments (rank out of range, empty token, length too large, ...). */
  | 'RING_INVALID_ARGUMENT'
  /** A neighbour's connection closed, errored, or went silent past the heartbeat timeout. */
  | 'RING_PEER_LOST'
  /** An operation or ring formation passed its deadline. */
  | 'RING_TIMEOUT'
  /** `abort()` was called here or on another member. */
  | 'RING_ABORTED'
  /** A peer could not prove it holds the job's token, or we could not verify the server. */
  | 'RING_AUTH_FAILED'
  /** A frame failed validation (header, length, order, phase, op kind). */
  | 'RING_BAD_FRAME'
  /** A frame larger than the configured maximum. */
  | 'RING_FRAME_TOO_LARGE'
  /** Members called different collectives, or with different lengths or roots. */
  | 'RING_OP_MISMATCH'
  /** An operation was started while another one was still pending on this ring. */
  | 'RING_BUSY'
  /** A connection for a generation older than the newest one this endpoint serves. */
  | 'RING_STALE_GENERATION'
  /** The ring or endpoint is closed. */
  | 'RING_CLOSED'
  /** TLS with a peer failed: its certificate did not verify (CA, name, dates), or it does not speak TLS. */
  | 'RING_TLS_FAILED';

export const RING_ERROR_CODES: readonly RingErrorCode[] = [
  'RING_INVALID_ARGUMENT',
  'RING_PEER_LOST',
  'RING_TIMEOUT',
  'RING_ABORTED',
  'RING_AUTH_FAILED',
  'RING_BAD_FRAME',
  'RING_FRAME_TOO_LARGE',
  'RING_OP_MISMATCH',
  'RING_BUSY',
  'RING_STALE_GENERATION',
  'RING_CLOSED',
  'RING_TLS_FAILED',
];

/** Application close codes (4000-4999 is the range RFC 6455 leaves to applications). */
const CLOSE_CODES: Readonly<Record<RingErrorCode, number>> = {
  RING_INVALID_ARGUMENT: 4000,
  RING_PEER_LOST: 4001,
  RING_TIMEOUT: 4002,
  RING_ABORTED: 4003,
  RING_AUTH_FAILED: 4004,
  RING_BAD_FRAME: 4005,
  RING_FRAME_TOO_LARGE: 4006,
  RING_OP_MISMATCH: 4007,
  RING_BUSY: 4008,
  RING_STALE_GENERATION: 4009,
  RING_CLOSED: 4010,
  RING_TLS_FAILED: 4011,
};

export interface RingErrorDetails {
  /** The rank of the peer involved, where one is. */
  readonly peer?: number;
  /**
   * Set when this rank could not open a connection to `peer` at all (refused, or no
   * answer until the deadline): evidence against the peer's advertised address, unlike
   * a peer that never dialed in, which may as well be the dialer's fault.
   */
  readonly unreachable?: boolean;
  readonly generation?: number;
  readonly op?: number;
  /** Anything else worth logging; plain data only. */
  readonly [key: string]: unknown;
}

export class RingError extends Error {
  override readonly name: string = 'RingError';
  readonly code: RingErrorCode;
  readonly details: RingErrorDetails;

  constructor(code: RingErrorCode, message: string, details: RingErrorDetails = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.details = details;
  }

  /** The WebSocket close code that carries this error to a peer. */
  get closeCode(): number {
    return closeCodeFor(this.code);
  }
}

/** A violation of the wire protocol by the other end of one connection. */
export class RingFrameError extends RingError {
  override readonly name: string = 'RingFrameError';

  constructor(code: 'RING_BAD_FRAME' | 'RING_FRAME_TOO_LARGE', message: string, details: RingErrorDetails = {}) {
    super(code, message, details);
  }
}

export function isRingError(err: unknown): err is RingError {
  return err instanceof RingError;
}

export function closeCodeFor(code: RingErrorCode): number {
  return CLOSE_CODES[code];
}

/** The ring error code a received close code stands for, if it is one of ours. */
export function codeForClose(closeCode: number, reason: string): RingErrorCode | undefined {
  if (closeCode === 1009) return 'RING_FRAME_TOO_LARGE';
  for (const code of RING_ERROR_CODES) {
    if (CLOSE_CODES[code] === closeCode && (reason === '' || reason.startsWith(code))) return code;
  }
  return undefined;
}
