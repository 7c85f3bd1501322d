/**
 * Errors raised by the worker. Each carries a stable code (docs/errors.md, "The
 * worker"); logs carry the error itself under `err`, so pino writes its code and stack.
 * A generation that ends with one reports its code in `stopped` (stoppedCause below).
 */
export type WorkerErrorCode =
  /** A fetch's answer was not complete within its deadline (rows.ts). */
  | 'ROWS_TIMEOUT'
  /** A chunk of an answer that is not the next rows asked for, or whose sizes or indices do not fit the split. */
  | 'ROWS_INVALID'
  /** The generation ended, or the connection was lost, before the rows arrived. */
  | 'ROWS_CANCELLED'
  /** The coordinator could not be reached (refused, reset, no route); retried with backoff. */
  | 'CONTROL_UNREACHABLE'
  /** The coordinator answered the upgrade with an HTTP status (401 without the token, say); retried with backoff. */
  | 'CONTROL_REFUSED'
  /** The connection closed; retried with backoff. */
  | 'CONTROL_CLOSED'
  /** No answer to pings within the job's heartbeat timeout (a partition): given up on, retried with backoff. */
  | 'CONTROL_SILENT'
  /** TLS with the coordinator failed in a way only a change of configuration mends: the worker exits 2. */
  | 'TLS_CERT_UNTRUSTED'
  | 'TLS_HANDSHAKE_FAILED'
  | 'TLS_REQUIRED'
  /** Chosen as a generation's state source, but holding no state. */
  | 'WORKER_NO_STATE'
  /** The training loop returned interrupted although nothing asked it to stop: a bug. */
  | 'WORKER_LOOP_INTERRUPTED'
  /**
   * The job's memory plan (memory.ts) does not fit: more than the process may use, or on
   * wasm more than the backend's heap can hold. The job cannot be set up: the worker
   * exits 2 with it, as with any job it cannot run.
   */
  | 'MEMORY_PLAN_EXCEEDED';

export class WorkerError extends Error {
  override readonly name = 'WorkerError';
  constructor(
    readonly code: WorkerErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A failure that retrying cannot mend: the worker exits with it (2) instead of reconnecting. */
export function isFatal(err: Error): boolean {
  const code = codeOf(err);
  return code !== null && (code.startsWith('TLS_') || code === 'PROTOCOL_VERSION');
}

/** The code of any of ringtrain's coded errors (WorkerError, RingError, TrainError, ...), or null. */
export function codeOf(err: unknown): string | null {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' && /^[A-Z][A-Z0-9]*_[A-Z0-9_]+$/.test(code) ? code : null;
}

/**
 * Why a generation stopped, for its `stopped` report: the error's code (WORKER_INTERNAL
 * for an error without one: a bug) and its message without the code repeated.
 */
export function stoppedCause(err: unknown): { readonly code: string; readonly reason: string } {
  const message = err instanceof Error ? err.message : String(err);
  const code = codeOf(err) ?? 'WORKER_INTERNAL';
  return { code, reason: message.startsWith(`${code}: `) ? message.slice(code.length + 2) : message };
}
