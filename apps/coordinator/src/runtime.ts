/**
 * The job as the coordinator runs it: the one object server.ts and the CLI hold. It
 * opens the job's parts, wires them, and answers for them (the control requests, the
 * views, the outcome). Each part has one job and one file:
 *
 *   connections.ts  the workers' connections: registry, attach, decode, coded closes
 *   handlers.ts     what each worker message does (admission.ts checks who may send it)
 *   membership.ts   decides: joins, refusals, exclusions, losses, generations (pure)
 *   executor.ts     carries out membership's decisions, records the events it returns
 *   events.ts       the job's event list and its log lines
 *   rows.ts         serving a worker the rows of its shard, in chunks
 *   checkpoints.ts  the coordinator's own state and the checkpoints it writes
 *   outputs.ts      the job's end: model, metrics, cluster.json, report.html, the outcome
 *   final-weights.ts  rank 0's final weights, streamed into model/ as they arrive
 *   history.ts      step losses (steps.jsonl), epoch records, generations
 *   views.ts        /api/status and /api/metrics, and the throughput estimate
 *   job-id.ts, generation-file.ts (coordinator.json)
 *
 * Off the hot path: in steady state a worker sends only heartbeats (with rank 0's step
 * losses), and rows are asked for once per epoch, ahead of need. The coordinator acts
 * at generation boundaries, checkpoints and the end.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import { probeEndpoint, type RingTls } from '@ringtrain/allreduce';
import { workerDecoder } from '@ringtrain/protocol';
import { microBatchesPerStep, type OpenedJob, snapshotProgress } from '@ringtrain/train';
import { jobLimits } from './admission.js';
import { Checkpoints, startingState } from './checkpoints.js';
import { Connections } from './connections.js';
import { EventLog } from './events.js';
import { Executor } from './executor.js';
import { generationWriter, readGeneration } from './generation-file.js';
import { WorkerMessages } from './handlers.js';
import { RunHistory } from './history.js';
import { jobIdOf } from './job-id.js';
import type { LatestWriter } from './latest-writer.js';
import { initialMembership, type MembershipState, type Policy } from './membership.js';
import { type Outcome, Outputs } from './outputs.js';
import { Rejections } from './rejections.js';
import type { JobStatus, MetricHistory } from './status.js';
import { metricsOf, RateEstimate, statusOf } from './views.js';

export type { Outcome } from './outputs.js';
export { CLUSTER_LOG } from './outputs.js';

/**
 * How often membership's deadlines are checked (a `tick`: silent members, stop reports
 * not in) and the refusal log's intervals closed. The deadlines are seconds
 * (heartbeatTimeoutMs, stopTimeoutMs); a quarter second finds a miss soon enough and
 * costs nothing.
 */
export const TICK_MS = 250;

export interface RuntimeOptions {
  readonly job: OpenedJob;
  readonly outDir: string;
  readonly log: Logger;
  /** The first generation waits for this many workers (`local --workers N` waits for its N). */
  readonly startWorkers?: number;
  readonly backend: string;
  /** The job's token: the coordinator proves it holds it when it probes a worker's ring endpoint. */
  readonly token: string;
  /** The workers' ring endpoints serve TLS: probes dial wss and verify as ring members do. */
  readonly ringTls?: Pick<RingTls, 'ca' | 'serverName'>;
}

export class JobRuntime extends EventEmitter {
  /** A stop that releases the workers was asked for (stop()). */
  private forGood = false;
  readonly job: OpenedJob;
  readonly policy: Policy;
  /** What was refused (bad messages in connections.ts, bad or unauthenticated requests in server.ts): counted for /metrics, logged per peer at most twice per 10 s. */
  readonly rejections: Rejections;
  readonly outcome: Promise<Outcome>;
  private readonly jobId: string;
  private readonly started = Date.now();
  private readonly history: RunHistory;
  private readonly events: EventLog;
  private readonly checkpoints: Checkpoints;
  private readonly connections: Connections;
  private readonly executor: Executor;
  private readonly outputs: Outputs;
  private readonly handlers: WorkerMessages;
  private readonly rate = new RateEstimate();
  /** coordinator.json: one write at a time, the newest generation last. */
  private readonly generations: LatestWriter<number>;
  private readonly ticker: NodeJS.Timeout;

  constructor(o: RuntimeOptions) {
    super();
    const { job, outDir } = o;
    const log = o.log.child({ component: 'coordinator', job: job.spec.name });
    const changed = (): void => void this.emit('update');
    this.job = job;
    this.rejections = new Rejections(o.log.child({ component: 'rejections' }));
    this.policy = policyOf(job, o.startWorkers);
    this.jobId = jobIdOf(job);
    const start = startingState(job);
    const limits = jobLimits(job, this.jobId, snapshotProgress(start.header));
    this.history = new RunHistory(outDir, job.checkpoint?.header.loop.history ?? []);
    this.events = new EventLog(log, () => this.executor.membership.generation, changed);
    this.checkpoints = new Checkpoints({
      job,
      outDir,
      limits,
      start,
      log,
      events: this.events,
      history: this.history,
      written: (progress) => this.executor.apply({ type: 'checkpointed', progress }),
    });
    this.connections = new Connections({
      decode: workerDecoder(limits),
      rejections: this.rejections,
      onMessage: (conn, m) => this.handlers.route(conn, m),
      onClosed: (id) => {
        // After the job, a worker going away is no loss of the job's.
        if (this.executor.membership.phase !== 'done') this.executor.apply({ type: 'lost', id, reason: 'connection closed' });
      },
    });
    this.generations = generationWriter(outDir, log);
    const tls = o.ringTls ? { tls: o.ringTls } : {};
    this.executor = new Executor({
      policy: this.policy,
      initial: { ...initialMembership(this.policy, snapshotProgress(start.header)), generation: readGeneration(outDir, log) },
      connections: this.connections,
      events: this.events,
      checkpoints: this.checkpoints,
      history: this.history,
      generations: this.generations,
      probe: (address) => probeEndpoint({ host: address.host, port: address.port, token: o.token, ...tls }),
      stopJob: (source, reason) => void this.outputs.stop(source, reason),
      log,
      changed,
    });
    this.outputs = new Outputs({
      job,
      outDir,
      backend: o.backend,
      log,
      started: this.started,
      events: this.events,
      history: this.history,
      checkpoints: this.checkpoints,
      connections: this.connections,
      membership: () => this.executor.membership,
      apply: (event) => this.executor.apply(event),
      step: () => this.status().step,
    });
    this.outcome = this.outputs.outcome;
    this.handlers = new WorkerMessages({
      job,
      jobId: this.jobId,
      limits,
      log,
      connections: this.connections,
      executor: this.executor,
      checkpoints: this.checkpoints,
      outputs: this.outputs,
      history: this.history,
      rate: this.rate,
      changed,
    });
    if (job.checkpoint) this.events.record('checkpoint', `resuming from ${job.checkpoint.dir} at step ${job.checkpoint.header.loop.globalStep}`);
    const first = this.executor.membership;
    if (first.phase === 'waiting') this.events.record('waiting', first.reason);
    this.ticker = setInterval(() => {
      this.executor.apply({ type: 'tick' });
      this.rejections.flush();
    }, TICK_MS);
  }

  /** The job's id (job-id.ts): a worker's held state counts only when it names it. */
  get id(): string {
    return this.jobId;
  }

  get phase(): MembershipState['phase'] {
    return this.executor.membership.phase;
  }

  /** A worker's authenticated control connection (server.ts); `remote` is host:port. */
  attach(ws: WebSocket, remote: string): void {
    this.connections.attach(ws, remote);
  }

  pause(): void {
    this.executor.apply({ type: 'pause' });
  }

  resume(): void {
    this.executor.apply({ type: 'resume' });
  }

  /**
   * Stops at a step boundary and checkpoints; `release` tells the workers to exit and
   * ends the job for good (POST /api/stop; false on SIGTERM: they wait for the
   * coordinator's return). A stop for good outranks one for a restart, whichever came
   * first: a SIGTERM as the pod goes must not revive a job its user stopped, nor may a
   * stop through the API while a SIGTERM's stop settles leave it waiting for workers
   * that have gone.
   */
  stop(reason: string, release: boolean): void {
    this.forGood ||= release;
    this.outputs.releaseOnStop = this.forGood;
    this.executor.apply({ type: 'stop', reason });
  }

  /** Whether a stop asked for ended the job for good (the coordinator then exits 4, not 3). */
  get stoppedForGood(): boolean {
    return this.forGood;
  }

  status(): JobStatus {
    return statusOf({
      spec: this.job.spec,
      trainRows: this.job.data.train.rows,
      membership: this.executor.membership,
      settled: this.outputs.settled,
      baselineStep: this.checkpoints.baseline.progress.step,
      members: new Set(this.executor.formed?.ranks.map((r) => r.id)),
      workers: this.connections.workers(),
      rate: this.rate.value,
      started: this.started,
      now: Date.now(),
      checkpoints: this.checkpoints.list(),
      messages: this.connections.messages(),
      events: this.events.all(),
      model: this.outputs.model,
    });
  }

  metrics(): MetricHistory {
    return metricsOf(this.history);
  }

  async close(): Promise<void> {
    clearInterval(this.ticker);
    await this.checkpoints.idle();
    await this.generations.flushed();
    this.history.flush();
    this.connections.terminateAll();
  }
}

/** Membership's policy from the job's `cluster` section; `startWorkers` (local's N) overrides the spec's. */
function policyOf(job: OpenedJob, startWorkers: number | undefined): Policy {
  const c = job.spec.cluster;
  const start = startWorkers ?? c.startWorkers;
  return {
    minWorkers: c.minWorkers,
    maxWorkers: Math.max(c.minWorkers, start ?? 0, c.maxWorkers),
    heartbeatTimeoutMs: c.heartbeatTimeoutMs,
    stopTimeoutMs: c.stopTimeoutMs,
    maxFailedGenerations: c.maxFailedGenerations,
    ...(start ? { startWorkers: start } : {}),
    ...(job.spec.training.reduction === 'exact' ? { microBatches: microBatchesPerStep(job.spec) } : {}),
  };
}

