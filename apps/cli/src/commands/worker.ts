/**
 * `ringtrain worker`: joins a coordinator and trains until the job completes. Every
 * option also comes from the environment, as containers set it. SIGTERM finishes the
 * current step, hands the state over and exits 0.
 */
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import type { Logger } from 'pino';
import type { BackendName } from '@ringtrain/model';
import { TrainingWorker } from '@ringtrain/worker';
import { UsageError } from '../errors.js';
import { checkBackend } from '../job-args.js';
import { afterJob, readToken } from '../token.js';

export async function workerCommand(argv: string[], log: Logger, onStop: (stop: () => void) => void): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      coordinator: { type: 'string' },
      'token-file': { type: 'string' },
      'advertise-host': { type: 'string' },
      'bind-host': { type: 'string' },
      'peer-port': { type: 'string' },
      backend: { type: 'string' },
      id: { type: 'string' },
    },
    strict: true,
    allowPositionals: false,
  });
  const env = process.env;
  const url = values.coordinator ?? env.RINGTRAIN_COORDINATOR;
  if (!url) throw new UsageError('no coordinator: give --coordinator URL or set RINGTRAIN_COORDINATOR (e.g. http://coordinator:7070)');
  if (!/^(https?|wss?):\/\/[^/]+/.test(url)) throw new UsageError(`--coordinator must be an http:// or ws:// URL, got "${url}"`);
  const backend = values.backend ?? env.RINGTRAIN_BACKEND;
  checkBackend(backend);
  const peerPort = Number(values['peer-port'] ?? env.RINGTRAIN_PEER_PORT ?? 0);
  if (!Number.isInteger(peerPort) || peerPort < 0 || peerPort > 65535) throw new UsageError(`--peer-port must be an integer in 0..65535`);
  const worker = new TrainingWorker({
    coordinator: url.replace(/^http/, 'ws'),
    token: readToken(values['token-file']),
    log,
    advertiseHost: values['advertise-host'] ?? env.RINGTRAIN_ADVERTISE_HOST ?? hostname(),
    bindHost: values['bind-host'] ?? env.RINGTRAIN_BIND_HOST ?? '0.0.0.0',
    peerPort,
    ...(backend ? { backend: backend as BackendName } : {}),
    ...((values.id ?? env.RINGTRAIN_WORKER_ID) ? { id: (values.id ?? env.RINGTRAIN_WORKER_ID)! } : {}),
  });
  const linger = afterJob(env);
  let over = false;
  let release = (): void => {};
  onStop(() => (over ? release() : worker.leave()));
  // Started by `ringtrain local`: end with it, even if it was killed without a word.
  const parent = Number(env.RINGTRAIN_PARENT_PID ?? 0);
  const watchdog =
    parent > 0
      ? setInterval(() => {
          try {
            process.kill(parent, 0);
          } catch {
            log.warn({ parent }, 'the ringtrain local process is gone; exiting');
            process.exit(1);
          }
        }, 1000)
      : null;
  try {
    const code = await worker.run();
    over = true;
    if (linger && code === 0) {
      log.info('job over; idle until SIGTERM (RINGTRAIN_AFTER_JOB=wait)');
      // Nothing else is left to keep the event loop alive: without this timer Node would
      // end the process with exit code 13 (an unsettled top-level await).
      const keepAlive = setInterval(() => {}, 1 << 30);
      await new Promise<void>((resolve) => (release = resolve));
      clearInterval(keepAlive);
    }
    return code;
  } finally {
    if (watchdog) clearInterval(watchdog);
  }
}
