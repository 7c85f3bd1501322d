/**
 * A training worker: serves its ring endpoint, joins the coordinator over the control
 * channel, and runs one training loop per generation it is given.
 *
 * A generation starts with a ring of its members and a state sync: the source rank
 * broadcasts its state (or the coordinator's, which it was handed), every member takes
 * it, and libs/train's loop continues from there with the ring as its collective. Rows
 * come from the coordinator, epoch by epoch, the next epoch's fetched ahead of need.
 * The generation ends when the coordinator says stop (the ring is aborted; the loop
 * stops at a step boundary), when the ring fails (a peer lost), or when training
 * completes. Either way the worker keeps its last committed state, reports how far it
 * got, and waits for the next generation. Losing the coordinator stops the generation
 * too (no checkpoints can be written without it): the worker reconnects with backoff
 * and registers again with the state it holds.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import type { Logger } from 'pino';
import { createRing, isRingError, listen, type Ring, type RingEndpoint } from '@ringtrain/allreduce';
import { batchIndices, rankRange, stepsPerEpoch, type Table } from '@ringtrain/data';
import { type Architecture, type BackendName, evaluate, type LossName, Mlp, selectBackend } from '@ringtrain/model';
import {
  bytesOf,
  type CoordinatorMessage,
  float32s,
  int32s,
  type Progress,
  type Split,
  type StepReport,
  type EpochReport,
  uint32s,
} from '@ringtrain/protocol';
import {
  CollectiveAborted,
  decodeSnapshot,
  encodeSnapshot,
  evalData,
  type Evaluator,
  type JobSpec,
  type SnapshotShape,
  train,
  type TrainSnapshot,
  snapshotProgress,
  snapshotShape,
  validateJobSpec,
} from '@ringtrain/train';
import { ControlChannel } from './control.js';
import { ringCollective } from './ring-collective.js';
import { RowStore } from './row-store.js';

export interface WorkerOptions {
  /** ws://host:port of the coordinator. */
  readonly coordinator: string;
  readonly token: string;
  /** Stable across reconnects of this process; default hostname-pid-random. */
  readonly id?: string;
  /** Interface the ring endpoint binds; default 0.0.0.0. */
  readonly bindHost?: string;
  /** The address peers dial; default this host's name. */
  readonly advertiseHost?: string;
  /** Ring endpoint port; default 0 (any). */
  readonly peerPort?: number;
  /** Overrides the job's training.backend. */
  readonly backend?: BackendName;
  readonly log: Logger;
  readonly minBackoffMs?: number;
  readonly maxBackoffMs?: number;
}

type JobMessage = Extract<CoordinatorMessage, { type: 'job' }>;
type GenerationMessage = Extract<CoordinatorMessage, { type: 'generation' }>;

interface Job {
  readonly id: string;
  readonly spec: JobSpec;
  readonly store: RowStore;
  readonly mlp: Mlp;
  readonly loss: LossName;
  readonly frozenLayers: ReadonlySet<number>;
  readonly shape: SnapshotShape;
  readonly message: JobMessage;
}

interface Running {
  readonly generation: number;
  readonly rank: number;
  ring: Ring | null;
  /** Set when the generation must end; applied to the ring as soon as it exists. */
  stop: string | null;
  steps: number;
  /** Training completed; the ring stays open only for slower peers. */
  completed: boolean;
  /** Resolves once the generation must end (stop was set). */
  readonly ended: Promise<void>;
  readonly end: () => void;
}

/** Step records kept, and replayed to a coordinator on joining. */
const HISTORY_STEPS = 10_000;
const REPLAY_STEPS = 2_000;
/**
 * Step records sent again with each `stopped` report: when a ring breaks, a rank other
 * than rank 0 may have committed the last step alone, and if the job then stops rather
 * than regroups, no generation start would ever replay it.
 */
const STOPPED_REPLAY_STEPS = 16;

/** At most this many bytes of features per fetch. */
const FETCH_BYTES = 16 * 1024 * 1024;

function progressOf(s: TrainSnapshot | null): Progress | null {
  return s ? snapshotProgress(s) : null;
}

export class TrainingWorker {
  readonly id: string;
  private readonly o: WorkerOptions;
  private readonly log: Logger;
  private endpoint: RingEndpoint | null = null;
  private channel: ControlChannel | null = null;
  private job: Job | null = null;
  private held: TrainSnapshot | null = null;
  private live: Progress | null = null;
  private running: Running | null = null;
  private loopDone: Promise<void> = Promise.resolve();
  private newestGeneration = -1;
  /** Generations told to stop before they started here, and the newest whose stop was reported. */
  private cancelledUpTo = -1;
  private reportedUpTo = -1;
  private backend: string | null = null;
  private leaving = false;
  private exitCode: number | null = null;
  private wake: (() => void) | null = null;
  private nextFetch = 0;
  private readonly fetches = new Map<number, { resolve: (m: Extract<CoordinatorMessage, { type: 'rows' }>) => void; reject: (e: Error) => void }>();
  private readonly fetchChain: Record<Split, Promise<void>> = { train: Promise.resolve(), validation: Promise.resolve(), test: Promise.resolve() };
  private steps: StepReport[] = [];
  /**
   * Every rank's record of recent step losses (the all-reduced sums are the same on every
   * rank). Rank 0 reports them as they come; all ranks replay the tail when they join a
   * coordinator or a generation, and the last few when they report a stopped generation,
   * so a coordinator restarted after a crash, the death of rank 0 before its next
   * heartbeat, or a stop right after a broken step loses no step's record while a worker
   * survives.
   */
  private readonly history = new Map<number, StepReport>();
  private epochs: EpochReport[] = [];
  private timing = { steps: 0, computeMs: 0, commMs: 0, waitMs: 0 };

  constructor(options: WorkerOptions) {
    this.o = options;
    this.id = options.id ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
    this.log = options.log.child({ component: 'worker', worker: this.id });
  }

  /** Runs until the job finishes (0) or the coordinator refuses this worker (2). */
  async run(): Promise<number> {
    this.endpoint = await listen({ host: this.o.bindHost ?? '0.0.0.0', port: this.o.peerPort ?? 0, logger: this.log });
    const address = { host: this.o.advertiseHost ?? hostname(), port: this.endpoint.port };
    this.log.info({ coordinator: this.o.coordinator, peer: address }, 'worker started');
    const minBackoff = this.o.minBackoffMs ?? 250;
    const maxBackoff = this.o.maxBackoffMs ?? 5000;
    let backoff = minBackoff;
    let lastBeat = 0;
    const heartbeat = setInterval(() => {
      if (performance.now() - lastBeat < (this.job?.message.heartbeatMs ?? 1000)) return;
      lastBeat = performance.now();
      this.heartbeat();
    }, 100);
    try {
      while (this.exitCode === null) {
        await this.loopDone;
        if (this.leaving) {
          this.exitCode = 0;
          break;
        }
        const closed = new Promise<string>((resolve) => {
          this.channel = new ControlChannel(this.o.coordinator, this.o.token, {
            onMessage: (m) => this.onMessage(m),
            onClose: (reason) => resolve(reason),
          });
        });
        const channel = this.channel!;
        if (this.job) channel.silenceMs = this.job.spec.cluster.heartbeatTimeoutMs;
        if (await channel.opened()) {
          backoff = minBackoff;
          channel.send({
            type: 'register',
            id: this.id,
            address,
            backend: this.backend ?? 'unknown',
            held: this.job && this.held ? { jobId: this.job.id, progress: progressOf(this.held)! } : null,
            generation: this.newestGeneration,
          });
          const reason = await closed;
          this.onChannelLost(reason);
          if (this.exitCode === null) this.log.warn({ reason }, 'lost the coordinator; reconnecting');
        } else {
          const reason = await closed;
          this.log.debug({ reason, retryMs: backoff }, 'coordinator not reachable');
        }
        if (this.exitCode !== null) break;
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, backoff);
          this.wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        this.wake = null;
        backoff = Math.min(maxBackoff, backoff * 2);
      }
    } finally {
      clearInterval(heartbeat);
      this.stopRunning('worker exiting');
      await this.loopDone;
      this.channel?.close();
      await this.endpoint.close();
      this.job?.mlp.dispose();
    }
    return this.exitCode ?? 0;
  }

  /** SIGTERM: finish the current step, hand the state over by leaving, exit. */
  leave(): void {
    if (this.leaving) return;
    this.leaving = true;
    this.log.info('leaving after the current step');
    const r = this.running;
    if (r === null) {
      this.channel?.send({ type: 'leave', progress: progressOf(this.held) });
      this.exitCode = 0;
      this.channel?.close('leaving');
      this.wake?.();
    } else if (r.steps === 0) {
      this.stopRunning('worker leaving');
    }
  }

  private onChannelLost(reason: string): void {
    for (const f of this.fetches.values()) f.reject(new Error(`coordinator connection lost: ${reason}`));
    this.fetches.clear();
    this.stopRunning('coordinator connection lost');
  }

  private stopRunning(reason: string): void {
    const r = this.running;
    if (!r) return;
    r.stop ??= reason;
    r.end();
    if (!r.completed) r.ring?.abort(reason);
  }

  private onMessage(m: CoordinatorMessage): void {
    switch (m.type) {
      case 'job':
        // Queued like generations: a generation message right behind it waits for the setup.
        this.loopDone = this.loopDone.then(() =>
          this.onJob(m).catch((err: Error) => {
            this.log.error({ err: err.message }, 'cannot run this job');
            this.exitCode = 2;
            this.channel?.close('bad job');
          }),
        );
        return;
      case 'reject':
        this.log.error({ code: m.code, reason: m.reason }, 'the coordinator refused this worker');
        this.exitCode = m.code === 'JOB_DONE' ? 0 : 2;
        this.channel?.close('refused');
        return;
      case 'generation':
        this.newestGeneration = Math.max(this.newestGeneration, m.generation);
        // One loop at a time: the next generation waits for the last to have stopped.
        this.loopDone = this.loopDone.then(() => this.runGeneration(m));
        return;
      case 'stop':
        if (this.running?.generation === m.generation) {
          this.stopRunning(m.reason);
        } else {
          // Not started yet (its generation message waits behind the job's setup), or over.
          this.cancelledUpTo = Math.max(this.cancelledUpTo, m.generation);
          this.loopDone = this.loopDone.then(() => {
            if (this.reportedUpTo < m.generation) this.reportStopped(m.generation, 'stopped before it started');
          });
        }
        return;
      case 'rows': {
        const f = this.fetches.get(m.id);
        this.fetches.delete(m.id);
        f?.resolve(m);
        return;
      }
      case 'upload':
        if (this.held) this.channel?.send({ type: 'state', generation: m.generation, snapshot: encodeSnapshot(this.held) });
        return;
      case 'finished':
        this.log.info({ reason: m.reason }, 'job finished');
        this.exitCode = 0;
        this.stopRunning('job finished');
        this.channel?.close('finished');
        return;
    }
  }

  private async onJob(m: JobMessage): Promise<void> {
    if (this.job?.id === m.jobId) return;
    const spec = validateJobSpec(m.spec, 'job spec from the coordinator');
    if (this.backend === null) {
      tf.env().set('PROD', true);
      const b = await selectBackend(this.o.backend ?? spec.training.backend);
      this.backend = b.name;
      this.log.info({ backend: b.name, provider: b.provider }, 'backend selected');
    }
    this.job?.mlp.dispose();
    const arch = m.arch as unknown as Architecture;
    const mlp = Mlp.create(arch, spec.training.seed);
    this.job = {
      id: m.jobId,
      spec,
      store: new RowStore(m.dataset),
      mlp,
      loss: m.loss,
      frozenLayers: new Set(m.frozenLayers),
      shape: snapshotShape(spec, mlp.layout.size),
      message: m,
    };
    this.held = null;
    this.live = null;
    if (this.channel) this.channel.silenceMs = spec.cluster.heartbeatTimeoutMs;
    this.log.info({ job: spec.name, jobId: m.jobId, parameters: mlp.layout.size, rows: m.dataset.rows }, 'job received');
  }

  private heartbeat(): void {
    const c = this.channel;
    if (!c?.isOpen) return;
    const t = this.timing;
    const n = Math.max(1, t.steps);
    c.send({
      type: 'heartbeat',
      generation: this.newestGeneration,
      ...(this.backend ? { backend: this.backend } : {}),
      progress: this.live ?? progressOf(this.held),
      timing: { steps: t.steps, computeMs: t.computeMs / n, commMs: t.commMs / n, waitMs: t.waitMs / n },
      steps: this.steps,
      epochs: this.epochs,
    });
    this.steps = [];
    this.epochs = [];
    this.timing = { steps: 0, computeMs: 0, commMs: 0, waitMs: 0 };
  }


  /** Sends the last `count` steps of the history (see `history`). */
  private replay(count: number): void {
    const c = this.channel;
    if (!c?.isOpen || this.history.size === 0) return;
    const tail = [...this.history.values()].slice(-count);
    c.send({
      type: 'heartbeat',
      generation: this.newestGeneration,
      ...(this.backend ? { backend: this.backend } : {}),
      progress: this.live ?? progressOf(this.held),
      timing: { steps: 0, computeMs: 0, commMs: 0, waitMs: 0 },
      steps: tail,
      epochs: [],
    });
  }

  private reportStopped(generation: number, reason: string, unreachable?: number): void {
    this.reportedUpTo = Math.max(this.reportedUpTo, generation);
    this.heartbeat();
    this.replay(STOPPED_REPLAY_STEPS);
    this.channel?.send({ type: 'stopped', generation, progress: progressOf(this.held), reason, ...(unreachable !== undefined ? { unreachable } : {}) });
  }

  /** Makes sure `indices` of `split` are held, fetching the missing ones; calls queue per split. */
  private ensure(split: Split, indices: Iterable<number>): Promise<void> {
    const job = this.job!;
    const next = this.fetchChain[split].catch(() => {}).then(async () => {
      const missing = job.store.missing(split, indices);
      const per = Math.max(1, Math.floor(FETCH_BYTES / (4 * Math.max(1, job.store.table(split).cols))));
      for (let start = 0; start < missing.length; start += per) {
        const want = missing.subarray(start, start + per);
        const m = await this.fetch(split, want);
        const labels = job.store.table(split).task.kind === 'classification' ? int32s(m.labels, 'labels') : float32s(m.labels, 'labels');
        job.store.put(split, uint32s(m.indices, 'indices'), float32s(m.features, 'features'), labels);
      }
    });
    this.fetchChain[split] = next;
    return next;
  }

  private fetch(split: Split, indices: Uint32Array): Promise<Extract<CoordinatorMessage, { type: 'rows' }>> {
    const c = this.channel;
    if (!c?.isOpen) return Promise.reject(new Error('no coordinator connection'));
    const id = this.nextFetch++;
    return new Promise((resolve, reject) => {
      this.fetches.set(id, { resolve, reject });
      c.send({ type: 'fetch', id, split, indices: bytesOf(Uint32Array.from(indices)) });
    });
  }

  private async runGeneration(m: GenerationMessage): Promise<void> {
    const job = this.job;
    if (!job || this.exitCode !== null) return;
    if (m.generation <= this.cancelledUpTo) return this.reportStopped(m.generation, 'stopped before it started');
    let end = (): void => {};
    const ended = new Promise<void>((resolve) => (end = resolve));
    const run: Running = { generation: m.generation, rank: m.rank, ring: null, stop: null, steps: 0, completed: false, ended, end };
    this.running = run;
    if (this.leaving) this.stopRunning('worker leaving');
    const log = this.log.child({ job: job.spec.name, generation: m.generation, rank: m.rank, world: m.world });
    const c = job.message.ring;
    let ring: Ring | null = null;
    try {
      if (run.stop) throw new Error(run.stop);
      ring = await createRing({
        membership: { generation: m.generation, rank: m.rank, world: m.world, peers: m.peers, token: this.o.token },
        endpoint: this.endpoint!,
        connectTimeoutMs: c.connectTimeoutMs,
        opTimeoutMs: c.opTimeoutMs,
        heartbeatTimeoutMs: c.heartbeatTimeoutMs,
        heartbeatIntervalMs: Math.max(100, Math.floor(c.heartbeatTimeoutMs / 5)),
        logger: log,
      });
      run.ring = ring;
      if (run.stop) ring.abort(run.stop);
      // State sync: everyone takes the source's state, bit for bit.
      let mine: Uint8Array | undefined;
      if (m.rank === m.source) {
        mine = m.state ?? (this.held ? encodeSnapshot(this.held) : undefined);
        if (!mine) throw new Error('chosen as the state source but holds no state');
      }
      const synced = decodeSnapshot(await ring.broadcast(mine, m.source), job.shape);
      this.held = synced;
      this.live = progressOf(synced);
      log.info({ step: synced.loop.globalStep, epoch: synced.loop.epoch + 1, source: m.source }, 'generation started');
      this.replay(REPLAY_STEPS);
      const result = await this.trainIn(job, ring, m, run, synced);
      // A worker's loop ends early only by a ring abort (CollectiveAborted), never by shouldStop.
      if (result.interrupted) throw new Error('the training loop returned interrupted without a stop request');
      run.completed = true;
      this.heartbeat(); // the last step reports go before the result
      this.channel?.send({
        type: 'done',
        generation: m.generation,
        result: { history: result.history, bestEpoch: result.bestEpoch, stoppedEarly: result.stoppedEarly, steps: result.steps, final: result.final },
        params: bytesOf(Float32Array.from(result.mlp.params)),
      });
      log.info({ steps: result.steps }, 'training complete');
      // Keep the ring open until the job is over: a peer may still be finishing the last
      // evaluation, and closing our links now would fail its ring.
      await run.ended;
    } catch (err) {
      if (err instanceof CollectiveAborted) this.held = err.snapshot;
      const reason = err instanceof CollectiveAborted ? ((err.cause as Error)?.message ?? err.message) : (err as Error).message;
      log.info({ step: this.held?.loop.globalStep ?? null, reason }, 'generation stopped');
      if (this.leaving) {
        this.heartbeat();
        this.channel?.send({ type: 'leave', progress: progressOf(this.held) });
        this.exitCode = 0;
        this.channel?.close('leaving');
      } else {
        // A successor it could not connect to at all: the coordinator checks that address.
        const unreachable = ring === null && isRingError(err) && err.details.unreachable ? err.details.peer : undefined;
        this.reportStopped(m.generation, reason, unreachable);
      }
    } finally {
      this.live = null;
      this.running = null;
      await ring?.close();
    }
  }

  private trainIn(job: Job, ring: Ring, m: GenerationMessage, run: Running, resume: TrainSnapshot) {
    const { spec, store } = job;
    const n = store.dataset.train.rows;
    const perEpoch = stepsPerEpoch(n, spec.training.batchSize);
    const rank0 = m.rank === 0;
    let epochs = resume.loop.history.length;
    const classify = store.dataset.task.kind === 'classification';
    const epochRows = (epoch: number): number[] => {
      const out: number[] = [];
      for (let step = 0; step < perEpoch; step++) {
        for (const i of batchIndices({ n, batchSize: spec.training.batchSize, seed: spec.training.seed, epoch, step, rank: m.rank, world: m.world })) out.push(i);
      }
      return out;
    };
    const evaluator: Evaluator = async (split, mlp, tag) => {
      const t = store.table(split);
      if (t.rows === 0) return null;
      const [a, b] = rankRange(t.rows, m.rank, m.world);
      await this.ensure(split, Array.from({ length: b - a }, (_, k) => a + k));
      const sums = new Float32Array(3);
      if (b > a) {
        const part: Table = { ...t, rows: b - a, features: t.features.subarray(a * t.cols, b * t.cols), labels: t.labels.subarray(a, b) };
        const r = evaluate(mlp, evalData(part), job.loss);
        sums.set([r.lossSum, r.count, r.correct]);
      }
      await ring.allReduce(sums, { step: tag });
      return { loss: sums[0]! / sums[1]!, accuracy: classify ? sums[2]! / sums[1]! : null };
    };
    return train({
      spec,
      data: store.dataset,
      mlp: job.mlp,
      loss: job.loss,
      frozenLayers: job.frozenLayers,
      collective: ringCollective(ring),
      resume,
      evaluator,
      prepareEpoch: async (epoch) => {
        const t0 = performance.now();
        await this.ensure('train', epochRows(epoch));
        this.timing.waitMs += performance.now() - t0;
        // The next epoch's rows, ahead of need.
        if (epoch + 1 < spec.training.epochs) void this.ensure('train', epochRows(epoch + 1)).catch(() => {});
      },
      checkpoint: {
        everySteps: rank0 ? spec.checkpoint.everySteps : 0,
        everyEpoch: rank0 ? spec.checkpoint.everyEpoch : false,
        save: async (snapshot, reason) => {
          if (reason === 'end') this.held = snapshot;
          if (rank0) this.channel?.send({ type: 'checkpoint', generation: m.generation, reason, snapshot: encodeSnapshot(snapshot) });
        },
      },
      onStep: (p) => {
        run.steps += 1;
        this.live = { step: p.globalStep + 1, epochs };
        this.timing.steps += 1;
        // The all-reduce's time splits into waiting for the slowest peer to arrive and moving data.
        const waited = Math.min(p.commMs, ring.stats.lastOpWaitMs);
        this.timing.computeMs += p.computeMs;
        this.timing.commMs += p.commMs - waited;
        this.timing.waitMs += waited;
        const report = { step: p.globalStep, epoch: p.epoch, loss: p.stepLoss, samples: p.stepSamples };
        this.history.set(report.step, report);
        if (this.history.size > HISTORY_STEPS) this.history.delete(this.history.keys().next().value!);
        if (rank0) this.steps.push(report);
        if (this.leaving) this.stopRunning('worker leaving');
      },
      onEpoch: (r) => {
        epochs = r.epoch;
        if (rank0) this.epochs.push(r);
      },
    });
  }
}
