/**
 * How the command reports failure: a coded error (any error with a string `code`
 * from ringtrain's libraries) is the user's to fix and exits 2 with its message;
 * anything else is a bug and exits 1 with its stack.
 */
export const EXIT_USAGE = 2;
export const EXIT_BUG = 1;

export class UsageError extends Error {
  readonly code = 'CLI_USAGE';
}

/** `ringtrain local`: a worker process exited with a coded error (it printed why) before the job was over. */
export class WorkersExitedError extends Error {
  readonly code = 'CLI_WORKERS_EXITED';
}

/** `ringtrain local`: a worker process kept exiting and its restarts (--max-restarts) are spent. */
export class WorkerRestartsError extends Error {
  readonly code = 'CLI_WORKER_RESTARTS';
}

/** The code families of docs/errors.md; Node's own codes (ERR_*, EACCES, ...) are not ours. */
const OURS = /^(CLI|SPEC|DATA|MODEL|EVAL|RING|CHECKPOINT|RESUME|INIT|SNAPSHOT|PROTOCOL|TLS|GENERATION)_[A-Z0-9_]+$/;

function codeOf(err: unknown): string | null {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && OURS.test(code) ? code : null;
}

export function reportError(err: unknown, write: (s: string) => void = (s) => process.stderr.write(s)): number {
  const code = codeOf(err);
  if (code) {
    write(`ringtrain: error ${code}: ${(err as Error).message}\n`);
    return EXIT_USAGE;
  }
  write(`ringtrain: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return EXIT_BUG;
}
