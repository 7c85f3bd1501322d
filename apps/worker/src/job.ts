/**
 * A job as a worker holds it: the spec the coordinator sent (validated again here), the
 * model to train, the rows fetched so far, and what a state must look like to be taken.
 * Set up once per job (the backend once per process), kept across generations and
 * reconnections to the same job.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Logger } from 'pino';
import { type BackendName, type LossName, Mlp, selectBackend } from '@ringtrain/model';
import type { CoordinatorMessage, Progress } from '@ringtrain/protocol';
import { decodeSnapshot, type JobSpec, type SnapshotShape, snapshotProgress, snapshotShape, TrainError, type TrainSnapshot, validateJobSpec, verifySnapshot } from '@ringtrain/train';
import { RowStore } from './row-store.js';

export type JobMessage = Extract<CoordinatorMessage, { type: 'job' }>;

export interface Job {
  readonly id: string;
  readonly spec: JobSpec;
  readonly store: RowStore;
  readonly mlp: Mlp;
  readonly loss: LossName;
  readonly frozenLayers: ReadonlySet<number>;
  readonly shape: SnapshotShape;
  readonly message: JobMessage;
  /**
   * The deadline of one row request (rows.ts): the job's deadline for one ring
   * operation (cluster.ringOpTimeoutMs, 60 s by default). A request is at most 16 MiB of
   * features, which a live coordinator sends in well under a second; past this, it is
   * not coming, and waiting longer would only hold the whole ring at this step.
   */
  readonly rowsDeadlineMs: number;
}

/**
 * Sets up the job of `m`: validates its spec (SPEC_INVALID), chooses the backend if none
 * is yet (`backend`: the one chosen, or null; `override`: the worker's --backend), and
 * builds the model. Rejects with the coded error of whatever cannot be done.
 */
export async function setUpJob(m: JobMessage, backend: string | null, override: BackendName | undefined, log: Logger): Promise<{ job: Job; backend: string }> {
  const spec = validateJobSpec(m.spec, 'job spec from the coordinator');
  let chosen = backend;
  if (chosen === null) {
    tf.env().set('PROD', true);
    const b = await selectBackend(override ?? spec.training.backend);
    chosen = b.name;
    log.info({ backend: b.name, provider: b.provider }, 'backend selected');
  }
  const mlp = Mlp.create(m.arch, spec.training.seed);
  const job: Job = {
    id: m.jobId,
    spec,
    store: new RowStore(m.dataset),
    mlp,
    loss: m.loss,
    frozenLayers: new Set(m.frozenLayers),
    shape: snapshotShape(spec, mlp.layout.size),
    message: m,
    rowsDeadlineMs: m.ring.opTimeoutMs,
  };
  log.info({ job: spec.name, jobId: m.jobId, parameters: mlp.layout.size, rows: m.dataset.rows }, 'job received');
  return { job, backend: chosen };
}

/**
 * The state a generation starts from, decoded and checked before anything takes it:
 * this job's shape (decodeSnapshot), finite numbers and a reachable loop
 * (verifySnapshot), and the progress the coordinator chose its source for. Throws
 * SNAPSHOT_INVALID.
 */
export function verifiedState(job: Job, bytes: Uint8Array, expected: Progress): TrainSnapshot {
  const s = decodeSnapshot(bytes, job.shape);
  verifySnapshot(s, job.spec, job.store.dataset.train.rows);
  const got = snapshotProgress(s);
  if (got.step !== expected.step || got.epochs !== expected.epochs) {
    throw new TrainError('SNAPSHOT_INVALID', `state snapshot at step ${got.step} (${got.epochs} epochs); its source was chosen for step ${expected.step} (${expected.epochs} epochs)`);
  }
  return s;
}
