/**
 * `ringtrain local`: the cluster on this machine. A coordinator in this process and N
 * worker processes (`ringtrain worker`) on loopback, with a token made for the run.
 * Same outputs as `ringtrain train` (model/, metrics.json, job.yaml, steps.jsonl,
 * report.html, checkpoints), progress on the terminal, and the coordinator's URL
 * printed for its API. Ctrl-C stops at a step boundary with a checkpoint (and a report
 * of the run so far); --resume continues. A job that stops itself (GENERATION_LIVELOCK:
 * its generations kept failing) saves a checkpoint the same way and exits 2 with the error.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Logger } from 'pino';
import type { RunSummary } from '@ringtrain/train';
import { STEP_LOG_FILE } from '@ringtrain/train';
import { UsageError } from '../errors.js';
import { resolveJob } from '../job-args.js';
import { jobStopError, startCoordinator } from '../cluster.js';
import { newToken } from '../token.js';
import { loadTls, TLS_OPTIONS, tlsPaths, type TlsPaths } from '../tls.js';
import { epochLine } from '../progress.js';
import { summaryTable } from './train.js';
import { parseMemoryLimit } from './worker.js';
import { DEFAULT_RESTART_POLICY, WorkerSupervisor } from '../supervisor.js';

const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../bin/ringtrain.mjs');

export interface LocalOptions {
  /** Extra environment for the worker processes. */
  readonly workerEnv?: NodeJS.ProcessEnv;
}

/** Starts one `ringtrain worker` process against `url`. */
export function spawnWorker(url: string, token: string, id: string, level: string, env: NodeJS.ProcessEnv = {}): ChildProcess {
  return spawn(process.execPath, [BIN, '--log-level', level, 'worker'], {
    stdio: ['ignore', 'ignore', 'inherit'],
    // Their own process group: a Ctrl-C reaches only this process, which stops the job
    // with a checkpoint and then releases them. RINGTRAIN_PARENT_PID ends them if this
    // process dies without doing so.
    detached: true,
    env: {
      ...process.env,
      RINGTRAIN_COORDINATOR: url,
      RINGTRAIN_TOKEN: token,
      RINGTRAIN_ADVERTISE_HOST: '127.0.0.1',
      RINGTRAIN_BIND_HOST: '127.0.0.1',
      RINGTRAIN_WORKER_ID: id,
      RINGTRAIN_PARENT_PID: String(process.pid),
      // glibc otherwise returns the ring's freed buffers to the OS after every step and
      // faults them in again (docs/allreduce.md, Performance).
      MALLOC_TRIM_THRESHOLD_: '268435456',
      MALLOC_MMAP_THRESHOLD_: '33554432',
      ...env,
    },
  });
}

export async function localCommand(argv: string[], log: Logger, onStop: (stop: () => void) => void, options: LocalOptions = {}): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      job: { type: 'string' },
      out: { type: 'string' },
      workers: { type: 'string', default: '2' },
      'max-restarts': { type: 'string', default: String(DEFAULT_RESTART_POLICY.maxRestarts) },
      port: { type: 'string', default: '0' },
      backend: { type: 'string' },
      'memory-limit': { type: 'string' },
      resume: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      ...TLS_OPTIONS,
    },
    strict: true,
    allowPositionals: false,
  });
  const n = Number(values.workers);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new UsageError(`--workers must be an integer in 1..64, got "${values.workers}"`);
  const maxRestarts = Number(values['max-restarts']);
  if (!Number.isInteger(maxRestarts) || maxRestarts < 0 || maxRestarts > 1000) throw new UsageError(`--max-restarts must be an integer in 0..1000, got "${values['max-restarts']}"`);
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be an integer in 0..65535, got "${values.port}"`);
  const memoryLimit = values['memory-limit'];
  parseMemoryLimit(memoryLimit); // a bad value is this command's usage error, not each worker's
  const tlsFiles = tlsPaths(values);
  const tls = loadTls(tlsFiles, log);
  const job = await resolveJob({ job: values.job, out: values.out, backend: values.backend, resume: values.resume ? 'required' : 'never' }, log);
  await mkdir(job.outDir, { recursive: true });
  if (!job.checkpoint) {
    // A fresh run: its step log and generation numbers start afresh.
    await rm(join(job.outDir, STEP_LOG_FILE), { force: true });
    await rm(join(job.outDir, 'coordinator.json'), { force: true });
  }
  const token = newToken();
  const tokenFile = join(job.outDir, 'token');
  await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
  const c = await startCoordinator(job, { log, token, host: '127.0.0.1', port, startWorkers: n, tls });
  const url = c.server.url.replace(/^http/, 'ws');
  process.stderr.write(`coordinator: ${c.server.url} (status: ${c.server.url}/api/status; control token in ${tokenFile})\n`);
  const childLevel = ['trace', 'debug'].includes(log.level) ? log.level : 'warn';
  // A worker that exits while the job runs is started again (src/supervisor.ts).
  const workers = new WorkerSupervisor({
    ids: Array.from({ length: n }, (_, i) => `local-${i}`),
    spawn: (id) => spawnWorker(url, token, id, childLevel, { ...workerTlsEnv(tlsFiles), ...(memoryLimit !== undefined ? { RINGTRAIN_MEMORY_LIMIT: memoryLimit } : {}), ...options.workerEnv }),
    policy: { ...DEFAULT_RESTART_POLICY, maxRestarts },
    log,
    jobOver: () => c.runtime.phase === 'done',
  });
  onStop(() => {
    workers.stop(); // exits from now on are this shutdown's, not failures
    c.runtime.stop('interrupted', true);
  });

  const stopProgress = showProgress(c.runtime, log, job.spec.training.epochs);
  // A worker given up (a crash loop, a coded error): stop at a step boundary with a
  // checkpoint, then fail with its error rather than wait for it forever.
  const failure: { err?: Error } = {};
  const givenUp = workers.failed.catch((err: Error) => {
    failure.err = err;
    c.runtime.stop(err.message, true);
    return c.runtime.outcome;
  });
  try {
    const outcome = await Promise.race([c.runtime.outcome, givenUp]);
    stopProgress();
    workers.stop();
    await workers.exited(15_000);
    if (failure.err && outcome.kind === 'stopped') {
      if (outcome.checkpoint) log.warn({ checkpoint: outcome.checkpoint }, 'stopped: checkpoint saved; once the cause is fixed, continue with ringtrain local --resume');
      throw failure.err;
    }
    if (outcome.kind === 'completed') {
      const summary = JSON.parse(readFileSync(join(job.outDir, 'metrics.json'), 'utf8')) as RunSummary;
      const { report } = outcome;
      process.stdout.write(
        values.json ? `${JSON.stringify(report ? { ...summary, report } : summary)}\n` : `${summaryTable(summary)}\noutput: ${job.outDir}\n${report ? `report: ${report}\n` : ''}`,
      );
    } else {
      // Stopped by itself (GENERATION_LIVELOCK): saved as any stop is, then an error, exit 2.
      const stopError = jobStopError(c.runtime);
      const fixed = stopError ? ' once the cause is fixed,' : '';
      if (outcome.checkpoint) log.warn({ checkpoint: outcome.checkpoint, report: outcome.report }, `stopped: checkpoint saved;${fixed} continue with ringtrain local --resume`);
      else log.warn({ report: outcome.report }, 'stopped before any step was taken: nothing to resume');
      if (stopError) throw stopError;
    }
  } finally {
    stopProgress();
    workers.kill();
    await c.close();
  }
}

/**
 * The workers' TLS settings: the coordinator's own (they serve their ring endpoints with
 * the same certificate and verify 127.0.0.1, or the peer name, against the same CA), or
 * none at all: set either way, whatever this process's environment holds, so that the
 * workers always match the coordinator.
 */
function workerTlsEnv(p: TlsPaths): NodeJS.ProcessEnv {
  const abs = (f: string | undefined): string => (f ? resolve(f) : '');
  return { RINGTRAIN_TLS_CERT: abs(p.cert), RINGTRAIN_TLS_KEY: abs(p.key), RINGTRAIN_TLS_CA: abs(p.ca), RINGTRAIN_TLS_PEER_NAME: p.peerName ?? '' };
}

/** A status line on a terminal (redrawn at most ten times a second) and a line per epoch; log records elsewhere. */
function showProgress(runtime: import('@ringtrain/coordinator').JobRuntime, log: Logger, epochs: number): () => void {
  const tty = process.stderr.isTTY === true;
  let shownEpochs = 0;
  let lastDraw = 0;
  let lastState = '';
  const onUpdate = () => {
    const s = runtime.status();
    const history = runtime.metrics().epochs;
    for (const r of history.slice(shownEpochs)) {
      if (tty) process.stderr.write(`\r\x1b[K${epochLine(r, epochs)}\n`);
      else log.info({ epoch: r.epoch, loss: r.train.loss, accuracy: r.train.accuracy, validation: r.validation, seconds: r.seconds }, 'epoch');
    }
    shownEpochs = history.length;
    if (!tty && s.state !== lastState) log.info({ state: s.state, reason: s.reason, generation: s.generation }, 'job');
    lastState = s.state;
    if (tty && Date.now() - lastDraw > 100) {
      lastDraw = Date.now();
      const total = s.stepsPerEpoch * s.epochs;
      const rate = s.samplesPerSecond ? ` ${Math.round(s.samplesPerSecond).toLocaleString('en-US')} samples/s` : '';
      process.stderr.write(`\r\x1b[K${s.state} gen ${s.generation} [${s.ring.length} workers] step ${s.step}/${total} epoch ${s.epoch}/${s.epochs}${rate}`);
    }
  };
  runtime.on('update', onUpdate);
  return () => {
    runtime.off('update', onUpdate);
    if (tty) process.stderr.write('\r\x1b[K');
  };
}
