/**
 * `ringtrain coordinator`: owns one job and serves its workers, its API and its
 * metrics until the job completes. Continues from the newest checkpoint in --out when
 * there is one, so a coordinator restarted after a crash (or rescheduled by Kubernetes)
 * resumes by itself, and its workers rejoin by themselves. Its exit status is EXIT of
 * @ringtrain/protocol, which deploy/k8s's Job acts on: 0 once the model is written;
 * SIGTERM stops at a step boundary, saves a checkpoint and exits 3, leaving the workers
 * waiting for its return; POST /api/stop ends the job for good (the workers exit) and
 * the coordinator exits 4. A job that stops itself (GENERATION_LIVELOCK: its generations
 * kept failing) saves a checkpoint the same way and exits 2 with the error.
 */
import { parseArgs } from 'node:util';
import { EXIT } from '@ringtrain/protocol';
import type { Logger } from 'pino';
import { UsageError } from '../errors.js';
import { resolveJob } from '../job-args.js';
import { jobStopError, startCoordinator } from '../cluster.js';
import { afterJob, readToken } from '../token.js';
import { loadTls, TLS_OPTIONS, tlsPaths } from '../tls.js';

function port(v: string | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`--port must be an integer in 0..65535, got "${v}"`);
  return n;
}

export async function coordinatorCommand(argv: string[], log: Logger, onStop: (stop: () => void) => void): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      job: { type: 'string' },
      out: { type: 'string' },
      port: { type: 'string' },
      host: { type: 'string' },
      backend: { type: 'string' },
      'token-file': { type: 'string' },
      ...TLS_OPTIONS,
    },
    strict: true,
    allowPositionals: false,
  });
  const env = process.env;
  const token = readToken(values['token-file']);
  const tls = loadTls(tlsPaths(values, env), log);
  const job = await resolveJob({ job: values.job ?? env.RINGTRAIN_JOB, out: values.out ?? env.RINGTRAIN_OUT, backend: values.backend, resume: 'if-present' }, log);
  const c = await startCoordinator(job, { log, token, host: values.host ?? env.RINGTRAIN_HOST ?? '0.0.0.0', port: port(values.port ?? env.RINGTRAIN_PORT, 7070), tls });
  process.stdout.write(`coordinator: ${c.server.url} (job ${job.spec.name}, output ${job.outDir})\n`);
  const linger = afterJob(env);
  let over = false;
  /** A SIGTERM while the job's last outputs are written (the status already says completed) must not be lost: no lingering then. */
  let stopped = false;
  let release = (): void => {};
  onStop(() => {
    stopped = true;
    if (over) release();
    else c.runtime.stop('coordinator shutting down (SIGTERM)', false);
  });
  try {
    const outcome = await c.runtime.outcome;
    over = true;
    if (outcome.kind === 'completed') process.stdout.write(`model: ${outcome.model}\n`);
    else process.stdout.write(`stopped: ${outcome.reason}${outcome.checkpoint ? `; checkpoint ${outcome.checkpoint}` : ''}\n`);
    if (outcome.report) process.stdout.write(`report: ${outcome.report}\n`);
    // Stopped by itself (GENERATION_LIVELOCK): an error, exit 2, not a stop asked for.
    const stopError = outcome.kind === 'stopped' ? jobStopError(c.runtime) : null;
    if (stopError) throw stopError;
    // Stopped before the end: for good (through the API, even if a signal came too), or by a signal (a new process continues).
    if (outcome.kind === 'stopped') return c.runtime.stoppedForGood ? EXIT.stopped : EXIT.interrupted;
    if (linger && outcome.kind === 'completed' && !stopped) {
      // In a Deployment an exit means a restart: stay, serving the results, until told to stop.
      log.info('job over; serving its status and model until SIGTERM (RINGTRAIN_AFTER_JOB=wait)');
      const keepAlive = setInterval(() => {}, 1 << 30); // the server alone would do; this says so
      await new Promise<void>((resolve) => (release = resolve));
      clearInterval(keepAlive);
    }
    return EXIT.done;
  } finally {
    await c.close();
  }
}
