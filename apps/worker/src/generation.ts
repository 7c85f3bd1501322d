/**
 * One generation on one worker: its ring, the state sync, and libs/train's loop with the
 * ring as its collective. lifecycle.ts decides when a generation starts and when it must
 * end; this does the work and reports each milestone as an event (`ring-formed`,
 * `synced`, `step`, `trained`, and `generation-ended` once its ring is closed).
 *
 * The state sync: the source rank broadcasts its state (or the coordinator's, which it
 * was handed), and every member checks what it receives before it takes it (job.ts,
 * verifiedState). A state that fails names its source in this worker's `stopped`
 * report, and the coordinator excludes that source; nobody trains from it. Rows come
 * epoch by epoch through rows.ts, the next epoch's fetched ahead of need. The loop ends
 * early only by a ring that fails (aborted: the coordinator said stop, or the worker is
 * leaving or has lost the coordinator; or a peer was lost), and then throws
 * CollectiveAborted with the last committed state, which the worker keeps.
 */
import type { Logger } from 'pino';
import { createRing, isRingError, type Ring, type RingEndpoint } from '@ringtrain/allreduce';
import { batchIndices, rankRange, stepsPerEpoch, type Table } from '@ringtrain/data';
import { EVALUATION_BATCH, evaluateYielding } from '@ringtrain/model';
import { type CoordinatorMessage, type Progress, type Split, type TransferHead, type TransferSource, type WorkerMessage } from '@ringtrain/protocol';
import { CollectiveAborted, confusionPlan, evalData, microBatchRows, TrainError, type Evaluator, snapshotProgress, stateSource, train, type TrainResult, type TrainSnapshot } from '@ringtrain/train';
import { ConfusionCounter, type SampleContext } from './confusion.js';
import { stoppedCause, WorkerError } from './errors.js';
import { type Job, verifiedState } from './job.js';
import type { Blame } from './lifecycle.js';
import { ringCollective } from './ring-collective.js';
import type { StepRecords } from './reports.js';
import { broadcastState } from './state-sync.js';
import type { RowFetcher } from './rows.js';

export type GenerationMessage = Extract<CoordinatorMessage, { type: 'generation' }>;
type DoneMessage = Extract<WorkerMessage, { type: 'done' }>;

/** A completed generation's result: the `done` message, and (rank 0) the final weights that follow it as its transfer. */
export interface Done {
  readonly message: (params?: TransferHead) => DoneMessage;
  readonly params: Float32Array | null;
}

/** The ring's heartbeats: five within its heartbeat timeout, at most ten a second. */
const RING_HEARTBEATS_PER_TIMEOUT = 5;
const MIN_RING_HEARTBEAT_MS = 100;

/** The state a worker holds, shared with the executor: the last committed, and how far a generation in progress has got. */
export interface Holding {
  /** The last committed state, between generations (null while one trains: its run holds the state). */
  held: TrainSnapshot | null;
  /** How far a generation in progress has got. */
  live: Progress | null;
}

export type GenerationEvent = { readonly type: 'ring-formed' | 'synced' | 'step' | 'trained' } | ({ readonly type: 'generation-ended'; readonly code: string; readonly reason: string } & Blame);

export interface GenerationContext {
  readonly job: Job;
  readonly endpoint: RingEndpoint;
  readonly token: string;
  readonly log: Logger;
  readonly holding: Holding;
  readonly rows: RowFetcher;
  readonly records: StepRecords;
  /** Sends a message to the coordinator (a no-op without a connection). */
  readonly send: (m: WorkerMessage) => void;
  /** Sends a state or weights to the coordinator as a transfer (transfers.ts); resolves once it has them. */
  readonly transfer: (announce: (head: TransferHead) => WorkerMessage, source: TransferSource) => Promise<void>;
  /** The coordinator's state, when it sent one with this generation (this rank is its source): arriving as a transfer. */
  readonly coordinatorState: Promise<TrainSnapshot> | null;
  readonly emit: (e: GenerationEvent) => void;
}

export class Generation {
  /** Once training completed: the result every member sends (the coordinator takes rank 0's). */
  done: Done | null = null;
  private ring: Ring | null = null;
  private readonly ending = new AbortController();
  private readonly closing: Promise<void>;
  private release: () => void = () => {};

  constructor(
    private readonly ctx: GenerationContext,
    readonly m: GenerationMessage,
  ) {
    this.closing = new Promise<void>((resolve) => (this.release = resolve));
  }

  /** Ends the generation: its ring fails, and so does the loop, at a step boundary. */
  abort(reason: string): void {
    this.ending.abort(reason);
    this.ring?.abort(reason);
  }

  /** A completed generation's ring may close: no peer needs it any more. */
  close(): void {
    this.ending.abort('released');
    this.release();
  }

  /** Runs the generation to its end; never rejects. */
  async run(): Promise<void> {
    const { ctx, m } = this;
    const { job, holding } = ctx;
    const log = ctx.log.child({ job: job.spec.name, generation: m.generation, rank: m.rank, world: m.world });
    const c = job.message.ring;
    let ended: { code: string; reason: string } & Blame = { code: 'GENERATION_RELEASED', reason: 'released' };
    /** The state the source broadcast did not verify here: the `stopped` report names it. */
    let invalidSource = false;
    try {
      this.ring = await createRing({
        membership: { generation: m.generation, rank: m.rank, world: m.world, peers: m.peers, token: ctx.token },
        endpoint: ctx.endpoint,
        connectTimeoutMs: c.connectTimeoutMs,
        opTimeoutMs: c.opTimeoutMs,
        heartbeatTimeoutMs: c.heartbeatTimeoutMs,
        heartbeatIntervalMs: Math.max(MIN_RING_HEARTBEAT_MS, Math.floor(c.heartbeatTimeoutMs / RING_HEARTBEATS_PER_TIMEOUT)),
        logger: log,
      });
      const ring = this.ring;
      ctx.emit({ type: 'ring-formed' });
      // State sync: everyone takes the source's state, bit for bit.
      // Every member offers its own state: one that already holds the source's is spared the copy (state-sync.ts).
      let mine: TrainSnapshot | undefined = holding.held ?? undefined;
      if (m.rank === m.source) {
        mine = m.state && ctx.coordinatorState ? await ctx.coordinatorState : mine;
        if (!mine) throw new WorkerError('WORKER_NO_STATE', 'chosen as the state source but holds no state');
      }
      const syncStart = performance.now();
      let synced: TrainSnapshot;
      try {
        synced = verifiedState(job, await broadcastState(ring, mine, m.source, job.shape), m.progress);
      } catch (err) {
        // A ring that failed on the way is not the source's fault; a state that does not verify is.
        if (!(err instanceof TrainError && err.code === 'SNAPSHOT_INVALID')) throw err;
        invalidSource = true;
        // A source whose own state fails holds nothing it can train from: it drops it, and says so by its report's progress.
        if (m.rank === m.source && m.state === undefined) holding.held = null;
        ring.abort(`the state of rank ${m.source} did not verify at rank ${m.rank}`);
        throw err;
      }
      holding.held = synced;
      holding.live = snapshotProgress(synced);
      const syncSeconds = (performance.now() - syncStart) / 1000;
      log.info({ step: synced.loop.globalStep, epoch: synced.loop.epoch + 1, source: m.source, stateBytes: stateSource(synced).bytes, syncSeconds }, 'generation started');
      ctx.emit({ type: 'synced' });
      const confusion = new ConfusionCounter(confusionPlan(job.store.dataset));
      const training = this.train(ring, synced, confusion);
      // The run has taken the state's arrays as its own (libs/train's openRun, before its
      // first await) and updates them step by step, so they are no longer a committed
      // state to hold: a failed generation hands its state back (CollectiveAborted).
      holding.held = null;
      const result = await training;
      // A worker's loop ends early only by a ring abort (CollectiveAborted), never by shouldStop.
      if (result.interrupted) throw new WorkerError('WORKER_LOOP_INTERRUPTED', 'the training loop returned interrupted without a stop request');
      // A sampled split's matrix is counted now, with the final model (confusion.ts); a split within the bound was counted by the final evaluation.
      await confusion.countSample(result.mlp, result.steps, this.sampleContext(ring, confusion));
      const summary = { history: result.history, bestEpoch: result.bestEpoch, stoppedEarly: result.stoppedEarly, steps: result.steps, final: result.final, confusion: confusion.message() };
      this.done = {
        message: (params) => ({ type: 'done', generation: m.generation, result: summary, ...(params ? { params } : {}) }),
        // The model's own array, not a copy: after the run nothing writes into it (a later
        // run adopts another array, Mlp.adoptParams), so the transfer reads what it was given.
        params: m.rank === 0 ? result.mlp.params : null,
      };
      log.info({ steps: result.steps }, 'training complete');
      ctx.emit({ type: 'trained' });
      // Keep the ring open until the job is over: a peer may still be finishing the last
      // evaluation, and closing our links now would fail its ring.
      await this.closing;
    } catch (err) {
      if (err instanceof CollectiveAborted) holding.held = err.snapshot;
      const cause = err instanceof CollectiveAborted ? (err.cause ?? err) : err;
      const { code, reason } = stoppedCause(cause);
      log.info({ step: holding.held?.loop.globalStep ?? null, code, reason }, 'generation stopped');
      // A predecessor it could not connect to at all (the rank it dials): the coordinator checks that address.
      const unreachable = this.ring === null && isRingError(err) && err.details.unreachable ? err.details.peer : undefined;
      ended = { code, reason, ...(unreachable !== undefined ? { unreachable } : {}), ...(invalidSource ? { invalidSource: m.source } : {}) };
    } finally {
      holding.live = null;
      this.ending.abort('ended');
      await this.ring?.close().catch((err: unknown) => log.warn({ err }, 'closing the ring failed'));
    }
    ctx.emit({ type: 'generation-ended', ...ended });
  }

  /** What the sampled confusion count needs: this rank's place, the rows it holds, the ring. */
  private sampleContext(ring: Ring, confusion: ConfusionCounter): SampleContext {
    const { job } = this.ctx;
    const split = confusion.plan?.split ?? 'test';
    return {
      rank: this.m.rank,
      world: this.m.world,
      table: job.store.table(split),
      loss: job.loss,
      ensure: (s, indices) => this.ctx.rows.ensure(job.store, s, indices, { signal: this.ending.signal, deadlineMs: job.rowsDeadlineMs }),
      allReduce: (sums, step) => ring.allReduce(sums, { step }),
    };
  }

  private train(ring: Ring, resume: TrainSnapshot, confusion: ConfusionCounter): Promise<TrainResult> {
    const { ctx, m } = this;
    const { job, records, holding } = ctx;
    const { spec, store } = job;
    const n = store.dataset.train.rows;
    const perEpoch = stepsPerEpoch(n, spec.training.batchSize);
    const rank0 = m.rank === 0;
    let epochs = resume.loop.history.length;
    const classify = store.dataset.task.kind === 'classification';
    const ensure = (split: Split, indices: Iterable<number>): Promise<void> => ctx.rows.ensure(store, split, indices, { signal: this.ending.signal, deadlineMs: job.rowsDeadlineMs });
    // The exact reduction shares a step out by whole micro-batches (libs/train's exact-step.ts): fetch those rows.
    const shardByMicroBatch = spec.training.reduction === 'exact' ? { microBatch: microBatchRows(spec) } : {};
    const epochRows = (epoch: number): number[] => {
      const out: number[] = [];
      for (let step = 0; step < perEpoch; step++) {
        for (const i of batchIndices({ n, batchSize: spec.training.batchSize, seed: spec.training.seed, epoch, step, rank: m.rank, world: m.world, ...shardByMicroBatch })) out.push(i);
      }
      return out;
    };
    // Loss, count and correct sums, all-reduced; for the confusion matrix's split, its k x k counts too (confusion.ts).
    // With the exact reduction, ranks take whole evaluation batches and each batch's loss
    // sum has a slot of its own, added up in batch order as one process adds them: the
    // same bits whatever the worker count (so early stopping decides as one process would).
    const exact = spec.training.reduction === 'exact';
    const evaluator: Evaluator = async (split, mlp, tag) => {
      const t = store.table(split);
      if (t.rows === 0) return null;
      const batches = Math.ceil(t.rows / EVALUATION_BATCH);
      const [first, end] = exact ? rankRange(batches, m.rank, m.world) : [0, 0];
      const [a, b] = exact ? [Math.min(t.rows, first * EVALUATION_BATCH), Math.min(t.rows, end * EVALUATION_BATCH)] : rankRange(t.rows, m.rank, m.world);
      await ensure(split, Array.from({ length: b - a }, (_, k) => a + k));
      const counts = confusion.countsFor(split);
      // [loss sum, count, correct, confusion counts]; exact: [count, correct, a loss sum per batch, confusion counts], in float64.
      const head = exact ? 2 + batches : 3;
      const sums = exact ? new Float64Array(head + counts) : new Float32Array(head + counts);
      if (b > a) {
        const part: Table = { ...t, rows: b - a, features: t.features.subarray(a * t.cols, b * t.cols), labels: t.labels.subarray(a, b) };
        // Yielding between batches: a long evaluation must not hold back this worker's heartbeats.
        const r = await evaluateYielding(mlp, evalData(part), job.loss, EVALUATION_BATCH);
        if (exact) {
          sums.set([r.count, r.correct]);
          sums.set(r.batchLossSums, 2 + first);
        } else {
          sums.set([r.lossSum, r.count, r.correct]);
        }
        if (counts > 0) ConfusionCounter.flatten(r.confusion, sums.subarray(head));
      }
      await ring.allReduce(sums, { step: tag });
      if (counts > 0) confusion.took(sums.subarray(head));
      if (!exact) return { loss: sums[0]! / sums[1]!, accuracy: classify ? sums[2]! / sums[1]! : null };
      let lossSum = 0;
      for (let i = 0; i < batches; i++) lossSum += sums[2 + i]!;
      return { loss: lossSum / sums[0]!, accuracy: classify ? sums[1]! / sums[0]! : null };
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
        await ensure('train', epochRows(epoch));
        records.waited(performance.now() - t0);
        // The next epoch's rows, ahead of need (asked again when needed, should this fail).
        if (epoch + 1 < spec.training.epochs) void ensure('train', epochRows(epoch + 1)).catch(() => {});
      },
      checkpoint: {
        everySteps: rank0 ? spec.checkpoint.everySteps : 0,
        everyEpoch: rank0 ? spec.checkpoint.everyEpoch : false,
        // Rank 0 streams its state to the coordinator while the ring waits at its next step:
        // the stream reads the snapshot's own arrays, which must not change until it is sent.
        save: async (snapshot, reason) => {
          if (reason === 'end') holding.held = snapshot;
          if (!rank0) return;
          await ctx.transfer((state) => ({ type: 'checkpoint', generation: m.generation, reason, state }), stateSource(snapshot)).catch((err: unknown) => {
            ctx.log.warn({ err, reason, step: snapshot.loop.globalStep }, 'checkpoint not sent');
          });
        },
      },
      onStep: (p) => {
        holding.live = { step: p.globalStep + 1, epochs };
        records.step({ ...p, ringWaitMs: ring.stats.lastOpWaitMs }, rank0);
        ctx.emit({ type: 'step' });
      },
      onEpoch: (r) => {
        epochs = r.epoch;
        records.epoch(r, rank0);
      },
    });
  }
}
