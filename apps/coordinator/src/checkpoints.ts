/**
 * The coordinator's own state and the checkpoints it writes. Its state (`baseline`) is
 * the latest checkpoint it wrote, the one it resumed from, or the starting weights: what
 * a generation takes when no member is ahead of it. A member's state reaches the
 * coordinator only as rank 0's checkpoints (on the spec's schedule) and as the answer to
 * `upload` when the job stops, each as a transfer (libs/protocol's transfer.ts) that
 * streams into a checkpoint directory as it arrives (libs/train's CheckpointWriter):
 * its header is verified against the job before any float is taken, every float is
 * checked finite, and the directory is renamed into place only once the whole stream
 * and its SHA-256 are complete. So the coordinator holds one chunk of a state at a time,
 * never the state; once a checkpoint is written, its own state is that directory, and a
 * generation's source gets it streamed from the files (`source`).
 */
import type { Logger } from 'pino';
import { paramLayout, paramPieces, PARAM_PIECE_BYTES, type ParamSegment } from '@ringtrain/model';
import { type JobLimits, progressIssue, type TransferSource } from '@ringtrain/protocol';
import {
  type CheckpointReason,
  checkpointOptions,
  checkpointStream,
  CheckpointWriter,
  type LoopState,
  type OpenedJob,
  type SnapshotShape,
  snapshotProgress,
  snapshotShape,
  INITIAL_LOOP,
  type StateHeader,
  statePrefix,
  TrainError,
  verifyCheckpoint,
} from '@ringtrain/train';
import { unhandled } from './errors.js';
import type { EventLog } from './events.js';
import type { RunHistory } from './history.js';
import { compareProgress, type Progress } from './membership.js';
import type { CheckpointInfo } from './status.js';

/** The checkpoints the status lists, the newest: the directory keeps the spec's `keep`; the list is for watching, and 50 is more than a page shows. */
export const MAX_CHECKPOINTS_LISTED = 50;

export interface CheckpointsOptions {
  readonly job: OpenedJob;
  readonly outDir: string;
  readonly limits: JobLimits;
  /** The starting state (startingState): the checkpoint resumed from, or the initial weights. */
  readonly start: OwnState;
  readonly log: Logger;
  readonly events: EventLog;
  readonly history: RunHistory;
  /** A checkpoint at `progress` is written: membership's `checkpointed` event. */
  readonly written: (progress: Progress) => void;
}

/**
 * The coordinator's own state, never held in memory: a job's starting weights (a fresh
 * job's computed a piece at a time from the architecture and the seed, the same bits as
 * the job's model; a fine-tuning job's read a piece at a time from its base model's files,
 * with a new head from the seed) and a fresh optimizer's zeros, or a checkpoint's
 * directory (the one resumed from, then the newest written), streamed from its files.
 */
export type OwnState =
  | { readonly kind: 'start'; readonly params: readonly ParamSegment[]; readonly header: StateHeader }
  | { readonly kind: 'checkpoint'; readonly dir: string; readonly header: StateHeader };

/** The coordinator's state at start: the checkpoint resumed from, or the job's starting weights with a fresh optimizer. */
export function startingState(job: OpenedJob): OwnState {
  const { data, spec, checkpoint, startParams } = job;
  if (checkpoint) return { kind: 'checkpoint', dir: checkpoint.dir, header: checkpoint.header };
  if (!startParams) throw new Error('startingState: a job with neither a checkpoint nor starting weights');
  const shape = snapshotShape(spec, paramLayout(job.arch).size);
  const header = { loop: INITIAL_LOOP, optimizer: { name: shape.optimizer, iterations: 0 }, trainRows: data.train.rows, params: shape.params, slots: shape.slots, best: 0 };
  return { kind: 'start', params: startParams, header };
}

/** A fresh state's stream: the header, the weights' pieces, and zeros for the optimizer's slots (a piece at a time, not held). */
function freshSource(header: StateHeader, params: readonly ParamSegment[]): TransferSource {
  const prefix = statePrefix(header);
  async function* parts(): AsyncGenerator<Uint8Array> {
    yield prefix;
    yield* paramPieces(params);
    const zeros = new Uint8Array(Math.min(4 * header.slots, PARAM_PIECE_BYTES));
    for (let left = 4 * header.slots; left > 0; left -= zeros.byteLength) yield zeros.subarray(0, Math.min(left, zeros.byteLength));
  }
  return { bytes: prefix.byteLength + 4 * (header.params + header.slots), parts: parts() };
}

/** A state stream being received as a checkpoint: the transfer's sink, and how it ends. */
export interface Receiving {
  readonly push: (data: Uint8Array) => Promise<void>;
  /** Every byte arrived and its digest matched: the checkpoint goes into place. Resolves with its directory, or null when it could not be written. */
  readonly finish: () => Promise<string | null>;
  /** The transfer failed: nothing of it stays. */
  readonly abort: (why: Error) => void;
}

export class Checkpoints {
  private own: OwnState;
  private readonly listed: CheckpointInfo[] = [];
  /** Checkpoints being received or placed: `idle` waits for them. */
  private readonly inFlight = new Set<Promise<unknown>>();
  /** Renames into place, in order: the newest state is the last placed. */
  private placing: Promise<unknown> = Promise.resolve();
  private readonly shape: SnapshotShape;

  constructor(private readonly o: CheckpointsOptions) {
    this.shape = snapshotShape(o.job.spec, o.start.header.params);
    this.own = o.start;
  }

  /** The coordinator's own state: how far it has got, and its loop state. */
  get baseline(): { readonly progress: Progress; readonly loop: LoopState } {
    const { loop } = this.own.header;
    return { progress: snapshotProgress({ loop }), loop };
  }

  /** The coordinator's own state as a stream, for a generation's source: from memory or from its checkpoint's files. */
  source(): TransferSource {
    const own = this.own;
    switch (own.kind) {
      case 'start':
        return freshSource(own.header, own.params);
      case 'checkpoint':
        return checkpointStream(own.dir, own.header);
      default:
        return unhandled(own);
    }
  }

  /** The checkpoints written by this coordinator, oldest first (a copy). */
  list(): CheckpointInfo[] {
    return [...this.listed];
  }

  /** Resolves once every checkpoint started so far is written (or failed). */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  /**
   * Receives a member's state stream of `bytes` as a checkpoint (`reason`). `claim`: the
   * progress its sender claimed, which the state must be at (an `upload`). The header is
   * checked as soon as it arrives (SNAPSHOT_INVALID: the push rejects, and the transfer
   * fails); a stream that fails leaves nothing.
   */
  receive(bytes: number, reason: CheckpointReason, claim: Progress | null = null): Receiving {
    const { job, outDir, limits, log, events, history } = this.o;
    const accept = (h: StateHeader): void => {
      const got = snapshotProgress(h);
      const issue = progressIssue(got, limits);
      if (issue) throw new TrainError('SNAPSHOT_INVALID', `state snapshot: ${issue}`, [issue]);
      if (claim !== null && (got.step !== claim.step || got.epochs !== claim.epochs)) {
        throw new TrainError('SNAPSHOT_INVALID', `state snapshot at step ${got.step} (${got.epochs} epochs); it claimed step ${claim.step} (${claim.epochs} epochs)`);
      }
    };
    const began = performance.now();
    const opening = CheckpointWriter.open(outDir, { ...checkpointOptions(job, reason), shape: this.shape, trainRows: job.data.train.rows, accept }, bytes);
    let settle!: () => void;
    const tracked = new Promise<void>((resolve) => (settle = resolve));
    this.inFlight.add(tracked);
    const done = (): void => {
      settle();
      this.inFlight.delete(tracked);
    };
    return {
      push: async (data) => (await opening).push(data),
      finish: async () => {
        try {
          history.flush();
          const writer = await opening;
          const place = this.placing.then(() => writer.finish());
          this.placing = place.catch(() => {});
          const { dir, header } = await place;
          const seconds = (performance.now() - began) / 1000;
          log.info({ dir, step: header.loop.globalStep, reason, bytes, seconds, mbPerSecond: bytes / 1e6 / seconds }, 'checkpoint written');
          await this.written(dir, header, reason, bytes);
          return dir;
        } catch (err) {
          log.error({ err }, 'checkpoint write failed');
          events.record('error', `checkpoint write failed: ${(err as Error).message}`);
          await opening.then((w) => w.abort()).catch(() => {});
          return null;
        } finally {
          done();
        }
      },
      abort: (why) => {
        log.warn({ err: why, reason }, 'checkpoint transfer failed; nothing written');
        void opening
          .then((w) => w.abort())
          .catch(() => {})
          .finally(done);
      },
    };
  }

  /** A checkpoint is in place: it is the coordinator's state if it is the most advanced, and it is listed. */
  private async written(dir: string, header: StateHeader, reason: CheckpointReason, bytes: number): Promise<void> {
    const { log, events } = this.o;
    // Read back through the manifest: what a resume would see.
    let verified = false;
    try {
      await verifyCheckpoint(dir);
      verified = true;
    } catch (err) {
      log.error({ dir, err }, 'checkpoint failed verification');
    }
    const progress = snapshotProgress(header);
    if (compareProgress(progress, this.baseline.progress) >= 0) this.own = { kind: 'checkpoint', dir, header };
    this.listed.push({ step: progress.step, epoch: progress.epochs, reason, time: new Date().toISOString(), dir, bytes, verified });
    if (this.listed.length > MAX_CHECKPOINTS_LISTED) this.listed.shift();
    events.record('checkpoint', `checkpoint at step ${progress.step} (${reason})`);
    this.o.written(progress);
  }
}
