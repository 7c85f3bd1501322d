/**
 * The end of the job and what it leaves in the output directory. Completed: rank 0's
 * `done` carries the results and the confusion matrix, and its final weights follow as
 * a transfer that streams into model/ as it arrives (final-weights.ts: each piece checked
 * finite, never the whole held); once it is complete, model/ goes into place and
 * metrics.json and job.yaml follow (libs/train's writeRunRecords). Stopped: the state
 * source is asked for its state (`upload`), which is written as a `stop` checkpoint.
 * Either way cluster.json and report.html follow, the workers are released, and only
 * then is the outcome settled: until it is, a job that is over is `finishing`.
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import { paramLayout, writeFileAtomic } from '@ringtrain/model';
import { uint32s, type WorkerMessage } from '@ringtrain/protocol';
import { type OpenedJob, type RunFacts, type RunSummary, summarize, writeRunRecords } from '@ringtrain/train';
import type { Checkpoints, Receiving } from './checkpoints.js';
import type { Connections } from './connections.js';
import { CoordinatorError } from './errors.js';
import type { EventLog } from './events.js';
import { FinalWeights } from './final-weights.js';
import type { RunHistory } from './history.js';
import type { MembershipEvent, MembershipState, Progress } from './membership.js';
import type { Confusion } from './report-data.js';
import { writeReport } from './report.js';

export const CLUSTER_LOG = 'cluster.json';

/**
 * How long the end of a job waits for the other members' `done` before writing
 * cluster.json (which counts them): they finish the same final evaluation as rank 0, and
 * are moments behind it; 5 s bounds the wait for one that died meanwhile.
 */
export const DONE_GRACE_MS = 5_000;
/** How often that wait looks: a few milliseconds, next to the seconds it may last. */
const DONE_POLL_MS = 20;

/**
 * How long a stopping job waits for its state source's answer to `upload`: the source
 * finishes its step, encodes its state (tens of MB for a large model) and sends it over
 * its one connection; 30 s covers that on a slow network, and after it the latest
 * checkpoint stands.
 */
export const UPLOAD_DEADLINE_MS = 30_000;
/** How often that wait checks that the source is still connected. */
const UPLOAD_GONE_POLL_MS = 100;

/** `report`: OUT/report.html, null when it could not be written. */
export type Outcome =
  | { readonly kind: 'completed'; readonly model: string; readonly report: string | null }
  | { readonly kind: 'stopped'; readonly checkpoint: string | null; readonly reason: string; readonly report: string | null };

export type DoneMessage = Extract<WorkerMessage, { type: 'done' }>;

/** Rank 0's final weights being received: the transfer's sink, and how it ends. */
export interface ReceivingFinal {
  readonly push: (data: Uint8Array) => Promise<void>;
  /** Every byte arrived and its digest matched: the run's outputs are written. */
  readonly finish: () => void;
  /** The transfer failed: nothing of it stays, and the next `done` is taken. */
  readonly abort: (why: Error) => void;
}

export interface OutputsOptions {
  readonly job: OpenedJob;
  readonly outDir: string;
  readonly backend: string;
  readonly log: Logger;
  /** When the coordinator started (ms). */
  readonly started: number;
  readonly events: EventLog;
  readonly history: RunHistory;
  readonly checkpoints: Checkpoints;
  readonly connections: Pick<Connections, 'send' | 'has' | 'ids' | 'messages' | 'workers'>;
  readonly membership: () => MembershipState;
  readonly apply: (event: MembershipEvent) => void;
  /** The job's committed steps, as the status says. */
  readonly step: () => number;
}

/** The `upload` asked for when the job stops: of whom, for which generation, the progress it claimed; answered by `state` and its transfer, written as the stop checkpoint. */
interface PendingUpload {
  readonly id: string;
  readonly generation: number;
  readonly claim: Progress | null;
  /** Its stream has begun: a second `state` is not taken. */
  started: boolean;
  /** The stop checkpoint's directory, or null (no verified state came). */
  readonly resolve: (dir: string | null) => void;
}

export class Outputs {
  /** The job's end has begun: checkpoints and further results are not taken. */
  private ending = false;
  /** Whether the workers are told to exit when the job stops (not on SIGTERM: they wait for the coordinator's return). */
  releaseOnStop = true;
  private modelDir: string | null = null;
  private settledAs: Outcome | null = null;
  private resolveOutcome!: (o: Outcome) => void;
  readonly outcome: Promise<Outcome>;
  private upload: PendingUpload | null = null;
  /** Members that sent `done`, of one generation. */
  private done: { generation: number; readonly ids: Set<string> } = { generation: -1, ids: new Set() };
  /** Final weights under way (one `done`'s at a time): another rank 0's `done` meanwhile is not taken. */
  private receivingFinal = false;

  constructor(private readonly o: OutputsOptions) {
    this.outcome = new Promise((resolve) => (this.resolveOutcome = resolve));
  }

  get finishing(): boolean {
    return this.ending;
  }

  /** model/, once written. */
  get model(): string | null {
    return this.modelDir;
  }

  /** How the job ended, once every output is written; null before. */
  get settled(): Outcome['kind'] | null {
    return this.settledAs?.kind ?? null;
  }

  /** A member of `generation` sent its `done` (rank 0's is the one taken; cluster.json counts them all). */
  noteDone(id: string, generation: number): void {
    if (this.done.generation !== generation) this.done = { generation, ids: new Set() };
    this.done.ids.add(id);
  }

  /**
   * Rank 0's `done`: its final weights, which follow as a transfer, stream into model/
   * (null while another `done`'s are under way: that one is not taken). Once they are
   * complete the run's outputs are written; if that fails (a full disk, say), it says so,
   * and the next `done` tries again.
   */
  receiveFinal(m: DoneMessage): ReceivingFinal | null {
    if (this.receivingFinal || this.ending) return null;
    this.receivingFinal = true;
    const { job, outDir, log, events } = this.o;
    const weights = FinalWeights.open(join(outDir, 'model'), job.arch, job.metadata);
    return {
      push: weights.push,
      finish: () => {
        this.ending = true;
        this.writeCompleted(m, weights).catch((err: unknown) => {
          this.ending = false;
          this.receivingFinal = false;
          log.error({ err }, 'cannot write the run outputs');
          events.record('error', `cannot write the run outputs: ${(err as Error).message}`);
          void weights.abort();
        });
      },
      abort: (why) => {
        // The next `done` may be taken at once: its weights go to a temporary file of their own.
        this.receivingFinal = false;
        log.warn({ err: why }, 'final weights transfer failed; nothing written');
        void weights.abort();
      },
    };
  }

  /**
   * The answer to `upload`, a state stream of `bytes`, if `id` was asked for its state for
   * `generation` (else null): it is received as the `stop` checkpoint, which must be at the
   * progress `id` claimed; a stream that fails is recorded, and the latest checkpoint stands.
   */
  uploading(id: string, generation: number, bytes: number): Receiving | null {
    const asked = this.upload;
    if (asked === null || asked.id !== id || asked.generation !== generation || asked.started) return null;
    asked.started = true;
    const receiving = this.o.checkpoints.receive(bytes, 'stop', asked.claim);
    return {
      push: receiving.push,
      finish: async () => {
        const dir = await receiving.finish();
        asked.resolve(dir);
        return dir;
      },
      abort: (why) => {
        this.o.events.record('error', `the state ${id} uploaded is refused: ${why.message}`);
        receiving.abort(why);
        asked.resolve(null);
      },
    };
  }

  /** The job stops for good: the state of `source` (null: the coordinator's own stands) as a `stop` checkpoint, then the other outputs. */
  async stop(source: string | null, reason: string): Promise<void> {
    const { log, events, history, checkpoints, connections } = this.o;
    this.ending = true;
    let dir: string | null = null;
    if (source !== null) {
      dir = await this.askForState(source);
      if (!dir) log.error({ err: new CoordinatorError('UPLOAD_TIMEOUT', `no verified state from ${source} within ${UPLOAD_DEADLINE_MS / 1000} s; the latest checkpoint stands`), source }, 'no state upload');
    }
    await checkpoints.idle();
    history.flush();
    events.record('stopped', `stopped (${reason})${dir ? `; checkpoint ${dir}` : ''}`);
    await this.writeClusterLog();
    if (this.releaseOnStop) for (const id of connections.ids()) connections.send(id, { type: 'finished', reason: `job stopped: ${reason}` });
    const report = await this.writeReport(this.interruptedSummary(), null);
    this.settle({ kind: 'stopped', checkpoint: dir, reason, report });
  }

  /** Asks `source` for its state; resolves with the stop checkpoint written from it, or null. */
  private askForState(source: string): Promise<string | null> {
    const state = this.o.membership();
    const claim = state.members.find((m) => m.id === source)?.held ?? null;
    const generation = state.generation;
    return new Promise<string | null>((resolve) => {
      // The deadline is for the answer to begin; a stream under way is given its own (the transfer's stall deadline).
      const timer = setTimeout(() => {
        if (!this.upload?.started) answer(null);
      }, UPLOAD_DEADLINE_MS);
      // A source whose connection is gone will not answer: no need to wait out the deadline.
      const gone = setInterval(() => {
        if (!this.upload?.started && !this.o.connections.has(source)) answer(null);
      }, UPLOAD_GONE_POLL_MS);
      const answer = (dir: string | null): void => {
        clearTimeout(timer);
        clearInterval(gone);
        this.upload = null;
        resolve(dir);
      };
      this.upload = { id: source, generation, claim, started: false, resolve: answer };
      this.o.connections.send(source, { type: 'upload', generation });
    });
  }

  private async writeCompleted(m: DoneMessage, weights: FinalWeights): Promise<void> {
    const { job, outDir, log, events, history, checkpoints, connections } = this.o;
    const { spec, data, loss } = job;
    await checkpoints.idle();
    history.flush();
    const model = join(outDir, 'model');
    const written = await weights.finish();
    log.info({ dir: model, bytes: written.bytes, sha256: written.sha256 }, 'final model written');
    const epochs = history.epochs();
    const samples = epochs.reduce((a, r) => a + r.samplesPerSecond * r.seconds, 0);
    const result: RunFacts = {
      parameters: written.bytes / 4,
      history: m.result.history,
      bestEpoch: m.result.bestEpoch,
      stoppedEarly: m.result.stoppedEarly,
      interrupted: false,
      steps: m.result.steps,
      seconds: (Date.now() - this.o.started) / 1000,
      samplesPerSecond: samples / Math.max(1e-9, m.result.history.reduce((a, r) => a + r.seconds, 0)),
      final: m.result.final,
    };
    const state = this.o.membership();
    const ring = state.phase === 'training' ? state.ring : [];
    const summary = summarize(spec, data, this.trainedOn(ring), loss, result);
    await writeRunRecords(outDir, spec, summary);
    this.modelDir = model;
    this.o.apply({ type: 'finished' });
    events.record('completed', `training complete: ${m.result.steps} steps; model written to ${this.modelDir}`);
    // cluster.json counts every member's `done`: the others are at most moments behind.
    const deadline = Date.now() + DONE_GRACE_MS;
    while (ring.some((id) => !this.done.ids.has(id) && connections.has(id)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, DONE_POLL_MS));
    await this.writeClusterLog();
    for (const id of connections.ids()) connections.send(id, { type: 'finished', reason: 'training complete' });
    const report = await this.writeReport(summary, reportConfusion(job, m.result.confusion));
    this.settle({ kind: 'completed', model: this.modelDir, report });
  }

  private settle(outcome: Outcome): void {
    this.settledAs = outcome;
    this.resolveOutcome(outcome);
  }

  /** A stopped job's run so far, for its report: the epochs recorded, no final metrics. */
  private interruptedSummary(): RunSummary {
    const { job, history, checkpoints } = this.o;
    const { spec, data, loss } = job;
    const epochs = history.epochs();
    const seconds = epochs.reduce((a, r) => a + r.seconds, 0);
    const samples = epochs.reduce((a, r) => a + r.samplesPerSecond * r.seconds, 0);
    const result: RunFacts = {
      parameters: paramLayout(job.arch).size,
      history: epochs,
      bestEpoch: checkpoints.baseline.loop.best?.epoch ?? epochs.length,
      stoppedEarly: false,
      interrupted: true,
      steps: this.o.step(),
      seconds: (Date.now() - this.o.started) / 1000,
      samplesPerSecond: samples / Math.max(1e-9, seconds),
      final: null,
    };
    return summarize(spec, data, this.trainedOn(this.o.connections.ids()), loss, result);
  }

  /**
   * What the run trained on, for metrics.json and the report: the backends its workers
   * named in their heartbeats ("webgpu", or "wasm+webgpu" for a mixed ring), not the
   * coordinator's own (which only made the starting weights); the coordinator's when no
   * worker has said.
   */
  private trainedOn(ids: Iterable<string>): string {
    const members = new Set(ids);
    const named = new Set(this.o.connections.workers().filter((w) => members.has(w.id) && w.backend !== '?' && w.backend !== 'unknown').map((w) => w.backend));
    return named.size > 0 ? [...named].sort().join('+') : this.o.backend;
  }

  /** OUT/report.html (report.ts) with this run's generations; a failure is logged and the run's other outputs stand. */
  private writeReport(summary: RunSummary, confusion: Confusion | null): Promise<string | null> {
    const { job, outDir, history, log } = this.o;
    return writeReport(outDir, { spec: job.spec, data: job.data, summary, confusion, generations: history.generations() }).catch((err: unknown) => {
      log.error({ err }, 'cannot write report.html');
      return null;
    });
  }

  /** cluster.json: what happened to the cluster during this coordinator's run (generations, events, checkpoints, message counts). */
  private async writeClusterLog(): Promise<void> {
    const { outDir, history, events, checkpoints, connections, log } = this.o;
    const body = { generations: history.generations(), events: events.all(), checkpoints: checkpoints.list(), messages: connections.messages() };
    await writeFileAtomic(join(outDir, CLUSTER_LOG), `${JSON.stringify(body, null, 2)}\n`).catch((err: unknown) => log.error({ err }, 'cannot write cluster.json'));
  }
}

/** report.html's confusion matrix from the counts `done` carried (their split, rows and sum checked at the wire against the job: job-limits.ts). */
export function reportConfusion(job: Pick<OpenedJob, 'data'>, c: DoneMessage['result']['confusion']): Confusion | null {
  const { task } = job.data;
  if (c === null || task.kind !== 'classification') return null;
  const k = task.classes.length;
  const counts = uint32s(c.counts, 'confusion counts');
  const matrix = Array.from({ length: k }, (_, i) => Array.from(counts.subarray(i * k, (i + 1) * k)));
  return { split: c.split, classes: task.classes, matrix, rows: c.rows, splitRows: job.data[c.split].rows };
}
