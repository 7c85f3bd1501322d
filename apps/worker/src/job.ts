/**
 * A job as a worker holds it: the spec the coordinator sent (validated again here), the
 * model to train, the rows fetched so far, and what a state must look like to be taken.
 * Set up once per job (the backend once per process), kept across generations and
 * reconnections to the same job.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Logger } from 'pino';
import { type BackendName, type LossName, memoryPlan, type MemoryPlan, Mlp, paramLayout, selectBackend } from '@ringtrain/model';
import type { CoordinatorMessage, Progress } from '@ringtrain/protocol';
import { type JobSpec, microBatchesPerStep, microBatchRows, optimizerSpec, type SnapshotShape, snapshotProgress, snapshotShape, TrainError, type TrainSnapshot, validateJobSpec, verifySnapshot } from '@ringtrain/train';
import { BASE_BYTES, checkMemoryPlan, planFields, processMemoryLimit, RING_BYTES } from './memory.js';
import type { MemoryBudget } from './reports.js';
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
  /** The memory plan's total and the process limit it was checked against, for heartbeats. */
  readonly memory: MemoryBudget;
}

/**
 * Sets up the job of `m`: validates its spec (SPEC_INVALID), chooses the backend if none
 * is yet (`backend`: the one chosen, or null; `override`: the worker's --backend), plans
 * its memory and refuses a job that cannot fit (MEMORY_PLAN_EXCEEDED; `memoryLimit`: the
 * worker's --memory-limit, null for none, undefined to read the cgroup's), and builds the
 * model. Rejects with the coded error of whatever cannot be done.
 */
export async function setUpJob(m: JobMessage, backend: string | null, override: BackendName | undefined, log: Logger, memoryLimit?: number | null): Promise<{ job: Job; backend: string }> {
  const spec = validateJobSpec(m.spec, 'job spec from the coordinator');
  let chosen = backend;
  if (chosen === null) {
    tf.env().set('PROD', true);
    const b = await selectBackend(override ?? spec.training.backend);
    chosen = b.name;
    log.info({ backend: b.name, provider: b.provider, ...(b.adapter ? { adapter: b.adapter } : {}) }, 'backend selected');
  }
  const plan = planOf(m, spec, chosen);
  const limit = processMemoryLimit(memoryLimit);
  log.info({ backend: chosen, ...planFields(plan, limit) }, 'memory plan');
  checkMemoryPlan(plan, limit, chosen);
  // Zeros, never written: the weights come with the first generation's state sync, whose
  // arrays the run adopts (trainer.ts), so these pages are never made resident.
  const mlp = Mlp.adopt(m.arch, new Float32Array(paramLayout(m.arch).size));
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
    memory: { planned: plan.total, limit: limit.bytes },
  };
  log.info({ job: spec.name, jobId: m.jobId, parameters: mlp.layout.size, rows: m.dataset.rows }, 'job received');
  return { job, backend: chosen };
}

/**
 * What this worker will hold for the job of `m` on `backend`. A ring has at least the
 * job's cluster.minWorkers members, so this worker's share of a batch is at most
 * ceil(batchSize / minWorkers) rows; it may come to hold every row of every split.
 */
export function planOf(m: { readonly arch: JobMessage['arch']; readonly dataset: Pick<JobMessage['dataset'], 'rows' | 'cols'> }, spec: JobSpec, backend: string): MemoryPlan {
  return memoryPlan({
    arch: m.arch,
    optimizer: optimizerSpec(spec),
    earlyStopping: spec.training.earlyStopping !== undefined,
    // The exact reduction computes a micro-batch at a time, and holds its integer sums beside the gradient.
    ...(spec.training.reduction === 'exact'
      ? { batchRows: microBatchRows(spec), exactParts: microBatchesPerStep(spec) }
      : { batchRows: Math.ceil(spec.training.batchSize / spec.cluster.minWorkers) }),
    rows: m.dataset.rows,
    cols: m.dataset.cols,
    backend,
    baseBytes: BASE_BYTES,
    ringBytes: RING_BYTES,
  });
}

/**
 * The state a generation starts from, checked before anything takes it: this job's
 * shape (the state stream's parser checked it as it arrived), finite numbers and a reachable loop
 * (verifySnapshot), and the progress the coordinator chose its source for. Throws
 * SNAPSHOT_INVALID.
 */
export function verifiedState(job: Job, s: TrainSnapshot, expected: Progress): TrainSnapshot {
  verifySnapshot(s, job.spec, job.store.dataset.train.rows);
  const got = snapshotProgress(s);
  if (got.step !== expected.step || got.epochs !== expected.epochs) {
    throw new TrainError('SNAPSHOT_INVALID', `state snapshot at step ${got.step} (${got.epochs} epochs); its source was chosen for step ${expected.step} (${expected.epochs} epochs)`);
  }
  return s;
}
