/**
 * A training worker: serves its ring endpoint, joins the coordinator over the control
 * channel, and runs one training loop per generation it is given.
 *
 * A generation starts with a ring of its members and a state sync: the source rank
 * broadcasts its state (or the coordinator's, which it was handed), every member takes
 * it, and libs/train's loop continues from there with the ring as its collective. Rows
 * come from the coordinator, epoch by epoch, the next epoch's fetched ahead of need.
 * Every member checks the state it receives before it takes it: this job's shape,
 * finite numbers, a loop the job could reach, and the progress the coordinator chose
 * the source for. A state that fails names its source in this worker's `stopped`
 * report, and the coordinator excludes that source (a worker that claimed progress it
 * could not back up); nobody trains from it. Rows arrive in chunks (`rows` messages
 * of at most 4 MiB), each stored as it comes (row-store.ts); a generation's fetches end
 * with it. The generation ends when the coordinator says stop (the ring is aborted; the loop
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
import { createRing, isRingError, listen, type Ring, type RingEndpoint, type RingTls } from '@ringtrain/allreduce';
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
  TrainError,
  type TrainSnapshot,
  snapshotProgress,
  snapshotShape,
  validateJobSpec,
  verifySnapshot,
} from '@ringtrain/train';
import { ControlChannel, type ControlTlsError } from './control.js';
import { ringCollective } from './ring-collective.js';
import { chunkIssue, RowStore } from './row-store.js';

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
  /**
   * TLS (with a wss:// coordinator): the ring endpoint serves `cert` and `key`; the
   * coordinator's and the peers' certificates are verified against `ca`, and peers' by
   * `serverName` when set (libs/allreduce, tls.ts).
   */
  readonly tls?: RingTls;
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

/** A fetch being answered: the rows asked for, in order, and how many have arrived. */
interface Fetch {
  readonly split: Split;
  readonly indices: Uint32Array;
  received: number;
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
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
  /** Why the worker cannot go on (a TLS failure with the coordinator); run() throws it. */
  private fatal: ControlTlsError | null = null;
  private wake: (() => void) | null = null;
  private nextFetch = 0;
  private readonly fetches = new Map<number, Fetch>();
  /** The job the coordinator of this connection runs, once its `job` message came: progress is reported for it only. */
  private channelJob: string | null = null;
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

  /** Runs until the job finishes (0) or the coordinator refuses this worker (2); rejects with a coded ControlTlsError when TLS with the coordinator fails. */
  async run(): Promise<number> {
    // With the token, the endpoint answers the coordinator's probes (libs/allreduce probe.ts).
    this.endpoint = await listen({ host: this.o.bindHost ?? '0.0.0.0', port: this.o.peerPort ?? 0, token: this.o.token, logger: this.log, ...(this.o.tls ? { tls: this.o.tls } : {}) });
    const address = { host: this.o.advertiseHost ?? hostname(), port: this.endpoint.port };
    this.log.info({ coordinator: this.o.coordinator, peer: address, ringTls: this.endpoint.tls }, 'worker started');
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
        this.channelJob = null;
        const closed = new Promise<string>((resolve) => {
          this.channel = new ControlChannel(
            this.o.coordinator,
            this.o.token,
            {
              onMessage: (m) => this.onMessage(m),
              onClose: (reason, fatal) => {
                if (fatal) {
                  this.fatal ??= fatal;
                  this.exitCode = 2;
                }
                resolve(reason);
              },
            },
            this.o.tls?.ca !== undefined ? { ca: this.o.tls.ca } : {},
          );
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
    if (this.fatal) throw this.fatal;
    return this.exitCode ?? 0;
  }

  /** SIGTERM: finish the current step, hand the state over by leaving, exit. */
  leave(): void {
    if (this.leaving) return;
    this.leaving = true;
    this.log.info('leaving after the current step');
    const r = this.running;
    if (r === null) {
      this.channel?.send({ type: 'leave', progress: this.progress(false) });
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
        this.channelJob = m.jobId;
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
        if (!f) return; // given up on: the connection it was asked on was lost
        try {
          this.takeRows(f, m);
        } catch (err) {
          this.fetches.delete(m.id);
          f.reject(err as Error);
          return;
        }
        if (f.received === f.indices.length) {
          this.fetches.delete(m.id);
          f.resolve();
        }
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

  /**
   * How far this worker's state of the coordinator's job has got (`live`: counting the
   * steps of a generation in progress); null before the coordinator's `job` message, or
   * when the state held is another job's (a new job's setup may still be running).
   */
  private progress(live: boolean): Progress | null {
    if (this.job === null || this.job.id !== this.channelJob) return null;
    return (live ? this.live : null) ?? progressOf(this.held);
  }

  private heartbeat(): void {
    const c = this.channel;
    // Nothing before the job's message: what this worker holds may be another job's.
    if (!c?.isOpen || this.channelJob === null) return;
    const t = this.timing;
    const n = Math.max(1, t.steps);
    c.send({
      type: 'heartbeat',
      generation: this.newestGeneration,
      ...(this.backend ? { backend: this.backend } : {}),
      progress: this.progress(true),
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
    if (!c?.isOpen || this.channelJob === null || this.history.size === 0) return;
    const tail = [...this.history.values()].slice(-count);
    c.send({
      type: 'heartbeat',
      generation: this.newestGeneration,
      ...(this.backend ? { backend: this.backend } : {}),
      progress: this.progress(true),
      timing: { steps: 0, computeMs: 0, commMs: 0, waitMs: 0 },
      steps: tail,
      epochs: [],
    });
  }

  /** `blame`: the rank this worker could not connect to (`unreachable`), or whose state did not verify (`invalidSource`). */
  private reportStopped(generation: number, reason: string, blame: { readonly unreachable?: number; readonly invalidSource?: number } = {}): void {
    this.reportedUpTo = Math.max(this.reportedUpTo, generation);
    this.heartbeat();
    this.replay(STOPPED_REPLAY_STEPS);
    this.channel?.send({ type: 'stopped', generation, progress: this.progress(false), reason, ...blame });
  }

  /**
   * Makes sure `indices` of `split` are held, fetching the missing ones for generation
   * `run`; calls queue per split, so that one request per split is out at a time (the
   * coordinator refuses a second). Once `run` has ended nothing more is asked for: every
   * request of a generation reaches the coordinator before this worker's `stopped`
   * report for it, so it is judged against that generation's shard.
   */
  private ensure(split: Split, indices: Iterable<number>, run: Running): Promise<void> {
    const job = this.job!;
    const next = this.fetchChain[split].catch(() => {}).then(async () => {
      const missing = job.store.missing(split, indices);
      const per = Math.max(1, Math.floor(FETCH_BYTES / (4 * Math.max(1, job.store.table(split).cols))));
      for (let start = 0; start < missing.length; start += per) {
        if (this.running !== run || run.stop !== null) throw new Error(`generation ${run.generation} ended before its ${split} rows arrived`);
        await this.fetch(split, missing.subarray(start, start + per));
      }
    });
    this.fetchChain[split] = next;
    return next;
  }

  /** Asks for rows; resolves once every chunk of the answer is stored (takeRows). */
  private fetch(split: Split, indices: Uint32Array): Promise<void> {
    const c = this.channel;
    if (!c?.isOpen) return Promise.reject(new Error('no coordinator connection'));
    const id = this.nextFetch++;
    const asked = Uint32Array.from(indices);
    return new Promise((resolve, reject) => {
      this.fetches.set(id, { split, indices: asked, received: 0, resolve, reject });
      c.send({ type: 'fetch', id, split, indices: bytesOf(asked) });
    });
  }

  /** Stores one chunk of the answer to `f`: the next rows asked for, in order, or it throws. */
  private takeRows(f: Fetch, m: Extract<CoordinatorMessage, { type: 'rows' }>): void {
    const store = this.job!.store;
    const indices = uint32s(m.indices, 'indices');
    const issue = m.split === f.split ? chunkIssue(f.indices, f.received, m.offset, indices) : `${m.split} rows for a ${f.split} request`;
    if (issue) throw new Error(`rows for fetch ${m.id}: ${issue}`);
    const labels = store.table(f.split).task.kind === 'classification' ? int32s(m.labels, 'labels') : float32s(m.labels, 'labels');
    store.put(f.split, indices, float32s(m.features, 'features'), labels);
    f.received += indices.length;
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
    /** The state the source broadcast did not verify here: the `stopped` report names it. */
    let invalidSource = false;
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
      const received = await ring.broadcast(mine, m.source);
      let synced: TrainSnapshot;
      try {
        synced = this.verifiedState(job, received, m.progress);
      } catch (err) {
        invalidSource = true;
        // A source whose own state fails holds nothing it can train from: it drops it, and says so by its report's progress.
        if (m.rank === m.source && m.state === undefined) this.held = null;
        ring.abort(`the state of rank ${m.source} did not verify at rank ${m.rank}`);
        throw err;
      }
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
        this.channel?.send({ type: 'leave', progress: this.progress(false) });
        this.exitCode = 0;
        this.channel?.close('leaving');
      } else {
        // A successor it could not connect to at all: the coordinator checks that address.
        const unreachable = ring === null && isRingError(err) && err.details.unreachable ? err.details.peer : undefined;
        this.reportStopped(m.generation, reason, { ...(unreachable !== undefined ? { unreachable } : {}), ...(invalidSource ? { invalidSource: m.source } : {}) });
      }
    } finally {
      this.live = null;
      this.running = null;
      await ring?.close();
    }
  }

  /**
   * The state a generation starts from, decoded and checked before anything takes it:
   * this job's shape (decodeSnapshot), finite numbers and a reachable loop
   * (verifySnapshot), and the progress the coordinator chose its source for. Throws
   * SNAPSHOT_INVALID.
   */
  private verifiedState(job: Job, bytes: Uint8Array, expected: Progress): TrainSnapshot {
    const s = decodeSnapshot(bytes, job.shape);
    verifySnapshot(s, job.spec, job.store.dataset.train.rows);
    const got = snapshotProgress(s);
    if (got.step !== expected.step || got.epochs !== expected.epochs) {
      throw new TrainError('SNAPSHOT_INVALID', `state snapshot at step ${got.step} (${got.epochs} epochs); its source was chosen for step ${expected.step} (${expected.epochs} epochs)`);
    }
    return s;
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
      await this.ensure(split, Array.from({ length: b - a }, (_, k) => a + k), run);
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
        await this.ensure('train', epochRows(epoch), run);
        this.timing.waitMs += performance.now() - t0;
        // The next epoch's rows, ahead of need.
        if (epoch + 1 < spec.training.epochs) void this.ensure('train', epochRows(epoch + 1), run).catch(() => {});
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
