/**
 * What the exit status of `ringtrain coordinator` and `ringtrain worker` says. An
 * orchestrator decides from it alone whether to run the process again: deploy/k8s's
 * Jobs complete on 0, never retry 2 or 4, and replace a pod that ended with 3 without
 * counting a failure (their podFailurePolicy). 0 therefore means the job is over, never
 * "stopped when asked": a process stopped before the end says 3.
 */
export const EXIT = {
  /** The job is over: the coordinator wrote the model; a worker was told the job finished (or was already done). */
  done: 0,
  /** A bug: the stack is printed. A crash like any other; a retry may get further. */
  bug: 1,
  /** A coded error the user must fix (a bad spec or option, a job that cannot fit): a retry would repeat it. */
  usage: 2,
  /** Stopped by a signal (SIGTERM, Ctrl-C) before the job ended, its state saved: a checkpoint, or handed to the ring. A new process continues. */
  interrupted: 3,
  /** The coordinator: the job was stopped for good (POST /api/stop, the dashboard's Stop) before it completed; no model, a checkpoint. */
  stopped: 4,
  /** A worker: no coordinator answered for --coordinator-timeout (it finished and is gone, or never came). */
  noCoordinator: 5,
  /** A worker the coordinator excluded (PEER_UNREACHABLE: its ring endpoint could not be reached; SOURCE_INVALID: it sent an invalid state): this process or its machine is at fault, and a new one elsewhere may do. */
  excluded: 6,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];
