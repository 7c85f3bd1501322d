/** Starting a coordinator in this process: shared by `ringtrain coordinator` and `ringtrain local`. */
import { mkdir } from 'node:fs/promises';
import type { Logger } from 'pino';
import { JobRuntime, startServer, type CoordinatorServer } from '@ringtrain/coordinator';
import { paramLayout } from '@ringtrain/model';
import { openJob } from '@ringtrain/train';
import { useBackend } from './backend.js';
import { UsageError } from './errors.js';
import type { ResolvedJob } from './job-args.js';
import type { LoadedTls } from './tls.js';

/**
 * The job stopped itself with a coded error (`GENERATION_LIVELOCK`: its generations kept
 * failing for one reason with no checkpoint between): `local` and `coordinator` fail with
 * it, so the command exits 2 printing `ringtrain: error CODE: message`.
 */
export class JobStoppedError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The coded error the job stopped with, as its status says (null: it completed, or was told to stop). */
export function jobStopError(runtime: Pick<JobRuntime, 'status'>): JobStoppedError | null {
  const error = runtime.status().error;
  return error ? new JobStoppedError(error.code, error.message) : null;
}

export interface RunningCoordinator {
  readonly runtime: JobRuntime;
  readonly server: CoordinatorServer;
  close(): Promise<void>;
}

export async function startCoordinator(
  job: ResolvedJob,
  o: { readonly log: Logger; readonly token: string; readonly host: string; readonly port: number; readonly startWorkers?: number; readonly tls?: LoadedTls | undefined },
): Promise<RunningCoordinator> {
  // The coordinator does little tensor work (initial weights, saving the model, the
  // report's evaluation, read synchronously): the portable backends are enough, whatever
  // the workers use.
  const own = job.spec.training.backend;
  const backend = await useBackend(own === 'tensorflow' || own === 'webgpu' ? 'auto' : own, o.log, { webgpu: false });
  await mkdir(job.outDir, { recursive: true }).catch((err: Error) => {
    throw new UsageError(`cannot create the output directory ${job.outDir}: ${err.message}`);
  });
  const opened = await openJob(job.spec, job.checkpoint);
  const { data } = opened;
  o.log.info(
    { source: data.source, train: data.train.rows, validation: data.validation.rows, test: data.test.rows, features: data.train.cols, ms: Math.round(opened.dataMs) },
    'data ready',
  );
  if (opened.taskInference) o.log.info({ label: opened.taskInference.label, classes: opened.taskInference.classes }, opened.taskInference.message);
  // With TLS the workers' ring endpoints serve it too: probes of them dial wss and verify as ring members do.
  const tls = o.tls ? { tls: { cert: o.tls.cert, key: o.tls.key }, ringTls: { ...(o.tls.ca ? { ca: o.tls.ca } : {}), ...(o.tls.peerName ? { serverName: o.tls.peerName } : {}) } } : undefined;
  const runtime = new JobRuntime({ job: opened, outDir: job.outDir, log: o.log, backend: backend.name, token: o.token, ...(o.startWorkers ? { startWorkers: o.startWorkers } : {}), ...(tls ? { ringTls: tls.ringTls } : {}) });
  const server = await startServer({ runtime, token: o.token, host: o.host, port: o.port, log: o.log, ...(tls ? { tls: tls.tls } : {}) });
  o.log.info({ url: server.url, job: job.spec.name, parameters: paramLayout(opened.arch).size }, 'coordinator listening');
  return {
    runtime,
    server,
    close: async () => {
      await runtime.close();
      await server.close();
    },
  };
}
