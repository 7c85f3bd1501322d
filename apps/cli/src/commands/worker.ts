/**
 * `ringtrain worker`: joins a coordinator and trains until the job completes. Every
 * option also comes from the environment, as containers set it. SIGTERM finishes the
 * current step, hands the state over and exits 3 (EXIT of @ringtrain/protocol: the job
 * goes on without it).
 */
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import type { Logger } from 'pino';
import type { BackendName } from '@ringtrain/model';
import { TrainingWorker, type WorkerOptions } from '@ringtrain/worker';
import { UsageError } from '../errors.js';
import { checkBackend } from '../job-args.js';
import { afterJob, readToken } from '../token.js';
import { loadTls, TLS_OPTIONS, tlsPaths, usesTls } from '../tls.js';

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
      'memory-limit': { type: 'string' },
      'coordinator-timeout': { type: 'string' },
      ...TLS_OPTIONS,
    },
    strict: true,
    allowPositionals: false,
  });
  const env = process.env;
  const url = values.coordinator ?? env.RINGTRAIN_COORDINATOR;
  if (!url) throw new UsageError('no coordinator: give --coordinator URL or set RINGTRAIN_COORDINATOR (e.g. http://coordinator:7070)');
  if (!/^(https?|wss?):\/\/[^/]+/.test(url)) throw new UsageError(`--coordinator must be an http(s):// or ws(s):// URL, got "${url}"`);
  const tls = workerTls(url, values, env, log);
  const backend = values.backend ?? env.RINGTRAIN_BACKEND;
  checkBackend(backend);
  const peerPort = Number(values['peer-port'] ?? env.RINGTRAIN_PEER_PORT ?? 0);
  if (!Number.isInteger(peerPort) || peerPort < 0 || peerPort > 65535) throw new UsageError(`--peer-port must be an integer in 0..65535`);
  const memoryLimit = parseMemoryLimit(values['memory-limit'] ?? env.RINGTRAIN_MEMORY_LIMIT);
  const coordinatorTimeoutMs = parseDuration('--coordinator-timeout', values['coordinator-timeout'] ?? env.RINGTRAIN_COORDINATOR_TIMEOUT);
  const worker = new TrainingWorker({
    coordinator: url.replace(/^http/, 'ws'),
    token: readToken(values['token-file']),
    log,
    advertiseHost: values['advertise-host'] ?? env.RINGTRAIN_ADVERTISE_HOST ?? hostname(),
    bindHost: values['bind-host'] ?? env.RINGTRAIN_BIND_HOST ?? '0.0.0.0',
    peerPort,
    ...(backend ? { backend: backend as BackendName } : {}),
    ...(memoryLimit !== undefined ? { memoryLimit } : {}),
    ...(coordinatorTimeoutMs !== null ? { coordinatorTimeoutMs } : {}),
    ...((values.id ?? env.RINGTRAIN_WORKER_ID) ? { id: (values.id ?? env.RINGTRAIN_WORKER_ID)! } : {}),
    ...(tls ? { tls } : {}),
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

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * A duration option: a number with a unit (500ms, 90s, 15m, 1h) or `none`; null when
 * not given or none. A bare number is refused: seconds or milliseconds would be a guess.
 */
export function parseDuration(name: string, text: string | undefined): number | null {
  if (text === undefined || text === 'none') return null;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text);
  const ms = m ? Math.round(Number(m[1]) * DURATION_UNITS[m[2]!]!) : NaN;
  if (!(ms >= 1 && Number.isSafeInteger(ms))) throw new UsageError(`${name} must be a duration with a unit (90s, 15m, 1h) or none, got "${text}"`);
  return ms;
}

const UNITS: Record<string, number> = { '': 1, K: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };

/**
 * --memory-limit: the bytes a worker's job may plan to use, in place of its cgroup's
 * limit (or the machine's memory): a number of bytes with an optional Kubernetes suffix
 * (512Mi, 4Gi, 8G), or `none` to check no process limit (the wasm heap's still holds).
 * Undefined when not given.
 */
export function parseMemoryLimit(text: string | undefined): number | null | undefined {
  if (text === undefined) return undefined;
  if (text === 'none') return null;
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|K|M|G|T)?$/.exec(text);
  const bytes = m ? Math.floor(Number(m[1]) * UNITS[m[2] ?? '']!) : NaN;
  if (!(bytes >= 1 && Number.isSafeInteger(bytes))) throw new UsageError(`--memory-limit must be a number of bytes with an optional suffix (512Mi, 4Gi, 8G) or none, got "${text}"`);
  return bytes;
}

/**
 * TLS is the coordinator URL's scheme, for the whole job: a worker of an https://
 * coordinator serves its ring over TLS too (its peers dial it over wss), so it needs a
 * certificate and key; a worker of an http:// one takes no TLS option, rather than
 * sending the token in clear beside them.
 */
function workerTls(url: string, values: Parameters<typeof tlsPaths>[0], env: NodeJS.ProcessEnv, log: Logger): WorkerOptions['tls'] {
  const paths = tlsPaths(values, env);
  if (!/^(https|wss):/.test(url)) {
    if (usesTls(paths)) throw new UsageError(`TLS options are set but the coordinator URL ${url} is plain text: use https:// (the coordinator started with --tls-cert and --tls-key), or drop them`);
    return undefined;
  }
  if (paths.cert === undefined && paths.key === undefined) {
    throw new UsageError('a worker of a TLS coordinator (https://) serves its ring over TLS too: give --tls-cert and --tls-key (RINGTRAIN_TLS_CERT, RINGTRAIN_TLS_KEY)');
  }
  const tls = loadTls(paths, log)!;
  return { cert: tls.cert, key: tls.key, ...(tls.ca ? { ca: tls.ca } : {}), ...(tls.peerName ? { serverName: tls.peerName } : {}) };
}
