/**
 * The coordinator's own state and the checkpoints it writes. Its state (`baseline`) is
 * the latest checkpoint it wrote, the one it resumed from, or the starting weights: what
 * a generation takes when no member is ahead of it. A member's state reaches the
 * coordinator only as rank 0's checkpoints (on the spec's schedule) and as the answer to
 * `upload` when the job stops; each is decoded and verified against the job before it is
 * used (`verified`), and checkpoints are written in order, one at a time, then read back
 * through their manifest.
 */
import type { Logger } from 'pino';
import { type JobLimits, progressIssue } from '@ringtrain/protocol';
import {
  type CheckpointReason,
  checkpointOptions,
  decodeSnapshot,
  encodeSnapshot,
  type OpenedJob,
  readCheckpoint,
  type SnapshotShape,
  snapshotProgress,
  snapshotShape,
  TrainError,
  type TrainSnapshot,
  verifySnapshot,
  writeCheckpoint,
} from '@ringtrain/train';
import type { EventLog } from './events.js';
import type { RunHistory } from './history.js';
import type { Progress } from './membership.js';
import type { CheckpointInfo } from './status.js';

/** The checkpoints the status lists, the newest: the directory keeps the spec's `keep`; the list is for watching, and 50 is more than a page shows. */
export const MAX_CHECKPOINTS_LISTED = 50;

export interface CheckpointsOptions {
  readonly job: OpenedJob;
  readonly outDir: string;
  readonly limits: JobLimits;
  /** The starting state: the checkpoint resumed from, or the initial weights. */
  readonly start: TrainSnapshot;
  readonly log: Logger;
  readonly events: EventLog;
  readonly history: RunHistory;
  /** A checkpoint at `progress` is written: membership's `checkpointed` event. */
  readonly written: (progress: Progress) => void;
}

export class Checkpoints {
  private own: { readonly bytes: Uint8Array; readonly snapshot: TrainSnapshot };
  private readonly listed: CheckpointInfo[] = [];
  private writes: Promise<unknown> = Promise.resolve();
  private readonly shape: SnapshotShape;

  constructor(private readonly o: CheckpointsOptions) {
    this.shape = snapshotShape(o.job.spec, o.job.mlp.layout.size);
    this.own = { bytes: encodeSnapshot(o.start), snapshot: o.start };
  }

  /** The coordinator's own state, encoded and decoded. */
  get baseline(): { readonly bytes: Uint8Array; readonly snapshot: TrainSnapshot } {
    return this.own;
  }

  /** The checkpoints written by this coordinator, oldest first (a copy). */
  list(): CheckpointInfo[] {
    return [...this.listed];
  }

  /** Resolves once every write started so far is done (or failed). */
  async idle(): Promise<void> {
    await this.writes;
  }

  /**
   * Writes `bytes` (a member's encoded state) as a checkpoint, in order with other writes;
   * resolves with its directory, or null when it could not be written. Throws
   * SNAPSHOT_INVALID at once for a state that does not verify.
   */
  save(bytes: Uint8Array, reason: CheckpointReason): Promise<string | null> {
    const { job, outDir, log, events, history } = this.o;
    const snapshot = this.verified(bytes);
    const write = this.writes.then(async () => {
      history.flush();
      const dir = await writeCheckpoint(outDir, snapshot, checkpointOptions(job, reason));
      // Read back through the manifest: what a resume would see.
      let verified = false;
      try {
        await readCheckpoint(dir);
        verified = true;
      } catch (err) {
        log.error({ dir, err }, 'checkpoint failed verification');
      }
      this.own = { bytes, snapshot };
      this.listed.push({ step: snapshot.loop.globalStep, epoch: snapshot.loop.history.length, reason, time: new Date().toISOString(), dir, bytes: bytes.byteLength, verified });
      if (this.listed.length > MAX_CHECKPOINTS_LISTED) this.listed.shift();
      events.record('checkpoint', `checkpoint at step ${snapshot.loop.globalStep} (${reason})`);
      this.o.written(snapshotProgress(snapshot));
      return dir;
    });
    this.writes = write.catch((err: unknown) => log.error({ err }, 'checkpoint write failed'));
    return write.catch(() => null);
  }

  /**
   * A member's encoded state, decoded and verified against the job: its shape
   * (decodeSnapshot), finite numbers and a loop the job could reach (verifySnapshot), a
   * progress within the job's bounds. Throws SNAPSHOT_INVALID.
   */
  verified(bytes: Uint8Array): TrainSnapshot {
    const { job, limits } = this.o;
    const snapshot = decodeSnapshot(bytes, this.shape);
    verifySnapshot(snapshot, job.spec, job.data.train.rows);
    const issue = progressIssue(snapshotProgress(snapshot), limits);
    if (issue) throw new TrainError('SNAPSHOT_INVALID', `state snapshot: ${issue}`, [issue]);
    return snapshot;
  }

  /** The answer to `upload`, if it verifies and backs the progress its sender claimed; else null, with an event saying why. */
  verifiedUpload(bytes: Uint8Array, claim: Progress | null, id: string): Uint8Array | null {
    try {
      const got = snapshotProgress(this.verified(bytes));
      if (claim !== null && (got.step !== claim.step || got.epochs !== claim.epochs)) {
        throw new TrainError('SNAPSHOT_INVALID', `state snapshot at step ${got.step} (${got.epochs} epochs); it claimed step ${claim.step} (${claim.epochs} epochs)`);
      }
      return bytes;
    } catch (err) {
      this.o.events.record('error', `the state ${id} uploaded is refused: ${(err as Error).message}`);
      return null;
    }
  }
}
