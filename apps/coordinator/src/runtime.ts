/**
 * The coordinator's executor: it owns the job (its data, its checkpoints, its outputs)
 * and carries out what membership.ts decides. Worker connections arrive already
 * authenticated (server.ts); each speaks libs/protocol's messages.
 *
 * Off the hot path: in steady state a worker sends only heartbeats (with rank 0's step
 * losses), and rows are asked for once per epoch, ahead of need. The coordinator acts
 * at generation boundaries, checkpoints and the end.
 */
import { EventEmitter } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import { stepsPerEpoch, type Table } from '@ringtrain/data';
import { createOptimizer, Mlp, writeFileAtomic } from '@ringtrain/model';
import { probeEndpoint, type RingTls } from '@ringtrain/allreduce';
import {
  bytesOf,
  type CoordinatorMessage,
  encodeMessage,
  float32s,
  type EpochReport,
  type JobLimits,
  MAX_GENERATION,
  ProtocolError,
  progressIssue,
  rowsPerChunk,
  type Split,
  type Timing,
  uint32s,
  workerDecoder,
  type WorkerMessage,
} from '@ringtrain/protocol';
import {
  checkpointOptions,
  decodeSnapshot,
  encodeSnapshot,
  INITIAL_LOOP,
  jobSpecToYaml,
  type OpenedJob,
  optimizerSpec,
  readCheckpoint,
  type SnapshotShape,
  TrainError,
  snapshotProgress,
  snapshotShape,
  type RunSummary,
  StepLog,
  summarize,
  type TrainSnapshot,
  verifySnapshot,
  writeCheckpoint,
  writeRunOutput,
} from '@ringtrain/train';
import { fetchIssue, type Formed, generationIssue, jobLimits, roleOf } from './admission.js';
import { LatestWriter } from './latest-writer.js';
import { type Action, decide, initialMembership, type MembershipEvent, type MembershipState, type Policy, type Progress } from './membership.js';
import { Rejections } from './rejections.js';
import { writeReport } from './report.js';
import type { CheckpointInfo, JobEvent, JobState, JobStatus, MetricHistory, WorkerStatus } from './status.js';

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

interface Conn {
  readonly ws: WebSocket;
  readonly remote: string;
  id: string | null;
  backend: string;
  address: string;
  lastSeen: number;
  timing: Timing | null;
  step: number | null;
  /** Splits with a fetch being answered on this connection (one each at a time). */
  readonly serving: Set<Split>;
}

/** `report`: OUT/report.html, null when it could not be written. */
export type Outcome =
  | { readonly kind: 'completed'; readonly model: string; readonly report: string | null }
  | { readonly kind: 'stopped'; readonly checkpoint: string | null; readonly reason: string; readonly report: string | null };

/** The persisted part of the coordinator's own state: generations only ever grow. */
const STATE_FILE = 'coordinator.json';
const MAX_EVENTS = 200;
export const CLUSTER_LOG = 'cluster.json';
/** How long the end of a job waits for the other members' `done` before writing cluster.json. */
const DONE_GRACE_MS = 5000;

/** A close frame's reason is at most 123 bytes of UTF-8 (ws throws past that): cut at a character boundary. */
function closeReason(reason: string): string {
  let out = '';
  for (const ch of reason) {
    if (Buffer.byteLength(out + ch) > 123) break;
    out += ch;
  }
  return out;
}

export class JobRuntime extends EventEmitter {
  readonly job: OpenedJob;
  readonly policy: Policy;
  private readonly outDir: string;
  private readonly log: Logger;
  private readonly backend: string;
  private readonly jobId: string;
  private readonly shape: SnapshotShape;
  /** The job's bounds on what workers send (libs/protocol's job-limits.ts). */
  private readonly limits: JobLimits;
  /** Decodes one worker message with the job's bounds: the one decode of this channel. */
  private readonly decode: (data: Uint8Array) => WorkerMessage;
  private readonly token: string;
  private readonly ringTls: Pick<RingTls, 'ca' | 'serverName'> | undefined;
  private state: MembershipState;
  /** The coordinator's own state: the latest checkpoint, or the starting weights. */
  private baseline: { bytes: Uint8Array; snapshot: TrainSnapshot };
  private readonly conns = new Set<Conn>();
  private readonly byId = new Map<string, Conn>();
  private readonly stepLog: StepLog;
  private readonly stepLosses = new Map<number, number>();
  private readonly epochRecords = new Map<number, EpochReport>();
  private readonly generations: { generation: number; step: number; time: string; world: number }[] = [];
  /** The newest generation formed, by rank (a worker names the peer it could not reach by rank), and its state's source. */
  private formed: Formed | null = null;
  /** Members that sent `done` for the newest generation formed. */
  private readonly doneFrom = new Set<string>();
  /** Workers whose ring address the coordinator is checking now. */
  private readonly probing = new Set<string>();
  private readonly events: JobEvent[] = [];
  private readonly checkpoints: CheckpointInfo[] = [];
  private readonly messages: Record<string, number> = {};
  private writes: Promise<unknown> = Promise.resolve();
  /** coordinator.json: one write at a time, the newest generation last. */
  private readonly persisted: LatestWriter<number>;
  /** The `upload` asked for when the job stops: of whom, for which generation, the progress it claimed; answered by `state`. */
  private upload: { id: string; generation: number; claim: Progress | null; resolve: (bytes: Uint8Array | null) => void } | null = null;
  private releaseOnStop = true;
  private finishing = false;
  private modelPath: string | null = null;
  private readonly started = Date.now();
  private readonly ticker: NodeJS.Timeout;
  private resolveOutcome!: (o: Outcome) => void;
  /** The outcome once every output is written: until then a job that is over is 'finishing'. */
  private settled: Outcome | null = null;
  readonly outcome: Promise<Outcome>;
  private lastStepAt: { step: number; time: number } | null = null;
  private rate: number | null = null;
  /** What was refused (bad messages here, bad or unauthenticated requests in server.ts): counted for /metrics, logged per peer at most twice per 10 s. */
  readonly rejections: Rejections;

  constructor(o: RuntimeOptions) {
    super();
    this.job = o.job;
    this.outDir = o.outDir;
    this.log = o.log.child({ component: 'coordinator', job: o.job.spec.name });
    this.rejections = new Rejections(o.log.child({ component: 'rejections' }));
    this.backend = o.backend;
    this.token = o.token;
    this.ringTls = o.ringTls;
    const c = o.job.spec.cluster;
    const startWorkers = o.startWorkers ?? c.startWorkers;
    this.policy = {
      minWorkers: c.minWorkers,
      maxWorkers: Math.max(c.minWorkers, startWorkers ?? 0, c.maxWorkers),
      heartbeatTimeoutMs: c.heartbeatTimeoutMs,
      stopTimeoutMs: c.stopTimeoutMs,
      ...(startWorkers ? { startWorkers } : {}),
    };
    const { data, mlp, spec, checkpoint } = o.job;
    this.jobId = createHash('sha256')
      .update(jobSpecToYaml({ ...spec, name: 'x', checkpoint: { everySteps: 0, everyEpoch: true, keep: 1, keepBest: true } }))
      .update(JSON.stringify(data.normalizer))
      .update(String(data.train.rows))
      .digest('hex')
      .slice(0, 16);
    const optimizer = createOptimizer(optimizerSpec(spec), mlp.layout.size);
    const start: TrainSnapshot = checkpoint?.snapshot ?? {
      loop: INITIAL_LOOP,
      params: Float32Array.from(mlp.params),
      optimizer: optimizer.exportState(),
      bestParams: null,
      trainRows: data.train.rows,
    };
    this.shape = snapshotShape(spec, mlp.layout.size);
    this.baseline = { bytes: encodeSnapshot(start), snapshot: start };
    this.limits = jobLimits(o.job, this.jobId, snapshotProgress(start));
    this.decode = workerDecoder(this.limits);
    const persisted = this.readPersisted();
    this.persisted = new LatestWriter(
      (generation) => writeFileAtomic(join(this.outDir, STATE_FILE), `${JSON.stringify({ generation })}\n`),
      (err) => this.log.error({ err: err.message }, 'cannot persist the generation number'),
    );
    this.state = { ...initialMembership(this.policy, snapshotProgress(start)), generation: persisted };
    this.stepLog = new StepLog(this.outDir);
    if (checkpoint) {
      for (const r of checkpoint.snapshot.loop.history) this.epochRecords.set(r.epoch, r);
      this.event('checkpoint', `resuming from ${checkpoint.dir} at step ${checkpoint.snapshot.loop.globalStep}`);
    }
    this.outcome = new Promise((resolve) => (this.resolveOutcome = resolve));
    void this.outcome.then((o) => (this.settled = o));
    this.ticker = setInterval(() => {
      this.apply({ type: 'tick' });
      this.rejections.flush();
    }, 250);
    this.event('waiting', this.state.phase === 'waiting' ? this.state.reason : '');
  }

  get id(): string {
    return this.jobId;
  }

  /**
   * coordinator.json's generation: an integer below MAX_GENERATION (the next ring's number
   * must be a u32 too). Anything else (unreadable, a number out of range, as an older
   * coordinator that adopted a worker's bad number may have written) is logged and read
   * as 0: the workers' own newest generations, checked as they register, carry the
   * numbering on.
   */
  private readPersisted(): number {
    const path = join(this.outDir, STATE_FILE);
    if (!existsSync(path)) return 0;
    let g: unknown;
    try {
      g = (JSON.parse(readFileSync(path, 'utf8')) as { generation?: unknown }).generation;
    } catch (err) {
      g = `unreadable (${(err as Error).message})`;
    }
    if (typeof g === 'number' && Number.isInteger(g) && g >= 0 && g < MAX_GENERATION) return g;
    this.log.warn({ file: path, generation: g }, `${STATE_FILE}: the generation is not an integer in 0..${MAX_GENERATION - 1}; starting from 0`);
    return 0;
  }

  // ---- connections -------------------------------------------------------------

  /** A worker's authenticated control connection. */
  attach(ws: WebSocket, remote: string): void {
    const conn: Conn = { ws, remote, id: null, backend: '?', address: '?', lastSeen: Date.now(), timing: null, step: null, serving: new Set() };
    this.conns.add(conn);
    const registerBy = setTimeout(() => {
      if (conn.id === null) this.closeConn(conn, 1008, 'no register within 10 s');
    }, 10_000);
    /** The peer's address without the port: what refusals are counted and logged by. */
    const host = remote.slice(0, remote.lastIndexOf(':'));
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        this.rejections.note('bad_message', host, 'bad message from a worker (a text frame); closing its connection', { worker: conn.id });
        return this.closeConn(conn, 1008, 'PROTOCOL_BAD_MESSAGE: text frame');
      }
      let m: WorkerMessage;
      try {
        m = this.decode(data);
      } catch (err) {
        this.rejections.note('bad_message', host, 'bad message from a worker; closing its connection', { worker: conn.id, err: (err as Error).message });
        return this.closeConn(conn, 1008, `PROTOCOL_BAD_MESSAGE: ${(err as Error).message}`);
      }
      this.messages[m.type] = (this.messages[m.type] ?? 0) + 1;
      // A connection replaced by a newer one of its worker, dropped, or gone after `leave`: what is still in flight on it is moot.
      if (conn.id !== null && this.byId.get(conn.id) !== conn) return;
      conn.lastSeen = Date.now();
      try {
        this.onWorkerMessage(conn, m);
      } catch (err) {
        // A message that decoded but asks for something impossible, carries a state that
        // does not fit this job, or is not the sender's to send, is the worker's fault
        // (1008); anything else is ours (1011).
        if (err instanceof ProtocolError || (err as { code?: unknown }).code === 'SNAPSHOT_INVALID') {
          const message = (err as Error).message;
          const role = err instanceof ProtocolError && err.code === 'PROTOCOL_ROLE';
          const what = role ? 'a message this worker may not send now; closing its connection' : 'bad request from a worker; closing its connection';
          this.rejections.note(role ? 'wrong_role' : 'bad_message', host, what, { worker: conn.id, type: m.type, err: message });
          this.closeConn(conn, 1008, `${role ? 'PROTOCOL_ROLE' : 'PROTOCOL_BAD_MESSAGE'}: ${message}`);
        } else {
          this.rejections.note('internal_error', host, 'failed to handle a worker message', { worker: conn.id, type: m.type, err: (err as Error).message });
          this.closeConn(conn, 1011, (err as Error).message);
        }
      }
    });
    ws.on('close', () => {
      clearTimeout(registerBy);
      this.conns.delete(conn);
      if (conn.id !== null && this.byId.get(conn.id) === conn) {
        this.byId.delete(conn.id);
        if (this.state.phase !== 'done') this.apply({ type: 'lost', id: conn.id, reason: 'connection closed' });
      }
    });
    // A WebSocket protocol violation (an unmasked or oversized frame, bad UTF-8...): ws closes the connection itself.
    ws.on('error', (err) => this.rejections.note('bad_message', host, 'WebSocket protocol error from a worker connection', { worker: conn.id, err: err.message }));
  }

  private closeConn(conn: Conn, code: number, reason: string): void {
    try {
      conn.ws.close(code, closeReason(reason));
    } catch {
      conn.ws.terminate();
    }
    setTimeout(() => conn.ws.terminate(), 2000).unref();
  }

  private send(id: string, m: CoordinatorMessage): void {
    const conn = this.byId.get(id);
    if (conn && conn.ws.readyState === conn.ws.OPEN) conn.ws.send(encodeMessage(m));
  }

  /**
   * One decoded message (its fields within the job's bounds already). What depends on
   * who sends it is checked here, with admission.ts: a ProtocolError thrown here closes
   * the connection with its code.
   */
  private onWorkerMessage(conn: Conn, m: WorkerMessage): void {
    if (m.type === 'register') {
      if (conn.id !== null) throw new ProtocolError('PROTOCOL_BAD_MESSAGE', 'registered twice');
      const leap = generationIssue(m.generation, this.state.generation);
      if (leap) throw new ProtocolError('PROTOCOL_BAD_MESSAGE', `register: ${leap}`);
      conn.id = m.id;
      conn.backend = m.backend;
      conn.address = `${m.address.host}:${m.address.port}`;
      const old = this.byId.get(m.id);
      this.byId.set(m.id, conn);
      if (old) this.closeConn(old, 1000, 'replaced by a new connection');
      const held = m.held && m.held.jobId === this.jobId ? m.held.progress : null;
      conn.step = held?.step ?? null;
      this.sendJob(m.id);
      this.apply({ type: 'join', id: m.id, address: m.address, held, seenGeneration: m.generation });
      return;
    }
    const id = conn.id;
    if (id === null) throw new ProtocolError('PROTOCOL_BAD_MESSAGE', 'register first');
    switch (m.type) {
      case 'heartbeat':
        if (m.backend) conn.backend = m.backend;
        conn.timing = m.timing.steps > 0 ? m.timing : conn.timing;
        conn.step = m.progress?.step ?? conn.step;
        // Step and epoch records are the ring's: those of a worker outside the newest ring are not the job's.
        if (this.formed?.ranks.some((r) => r.id === id)) this.record(m.steps, m.epochs);
        this.apply({ type: 'heartbeat', id, held: m.progress });
        return;
      case 'fetch': {
        const refused = fetchIssue(this.formed, id, m.split, m.indices.byteLength / 4, this.limits, conn.serving.has(m.split));
        if (refused) throw new ProtocolError(refused.code, refused.reason);
        this.serveRows(conn, m.id, m.split, uint32s(m.indices, 'indices'));
        return;
      }
      case 'stopped':
        conn.step = m.progress?.step ?? conn.step;
        this.apply({
          type: 'stopped',
          id,
          generation: m.generation,
          held: m.progress,
          reason: m.reason,
          ...this.rankId('unreachable', m.generation, m.unreachable),
          ...this.rankId('invalidSource', m.generation, m.invalidSource),
        });
        return;
      case 'checkpoint': {
        const role = roleOf(this.formed, this.state.generation, id, m.generation);
        if (role === 'late' || (role === 'rank0' && this.finishing)) return;
        if (role !== 'rank0') throw new ProtocolError('PROTOCOL_ROLE', `checkpoint of generation ${m.generation}: only rank 0 of generation ${this.state.generation} checkpoints`);
        this.saveCheckpoint(m.snapshot, m.reason);
        return;
      }
      case 'state': {
        const asked = this.upload;
        if (asked === null || asked.id !== id || asked.generation !== m.generation) {
          throw new ProtocolError('PROTOCOL_ROLE', `state of generation ${m.generation}: not asked for`);
        }
        asked.resolve(this.verifiedUpload(m.snapshot, asked.claim, id));
        return;
      }
      case 'done': {
        const role = roleOf(this.formed, this.state.generation, id, m.generation);
        if (role === 'late') return;
        if (role === 'outsider') throw new ProtocolError('PROTOCOL_ROLE', `done of generation ${m.generation}: ${id} is not a member of generation ${this.state.generation}`);
        this.doneFrom.add(id);
        // Every member sends its result; rank 0's is the one taken.
        if (role === 'member' || this.finishing) return;
        const base = this.baseline.snapshot.loop.globalStep;
        if (m.result.steps < base) throw new ProtocolError('PROTOCOL_BAD_MESSAGE', `done: ${m.result.steps} steps, behind the coordinator's checkpoint at step ${base}`);
        void this.finish(m).catch((err: Error) => {
          // The outputs could not be written (a full disk, say): say so, and let the next `done` try again.
          this.finishing = false;
          this.log.error({ err: err.message }, 'cannot write the run outputs');
          this.event('error', `cannot write the run outputs: ${err.message}`);
        });
        return;
      }
      case 'leave':
        this.byId.delete(id);
        this.apply({ type: 'leave', id });
        return;
    }
  }

  private sendJob(id: string): void {
    const { spec, data, mlp, frozenLayers, loss } = this.job;
    const t = data.train;
    const c = spec.cluster;
    this.send(id, {
      type: 'job',
      jobId: this.jobId,
      spec: spec as unknown as Record<string, unknown>,
      dataset: {
        source: data.source,
        cols: t.cols,
        featureNames: [...t.featureNames],
        ...(t.imageShape ? { imageShape: t.imageShape } : {}),
        task: data.task.kind === 'classification' ? { kind: 'classification', classes: [...data.task.classes] } : { kind: 'regression', target: data.task.target },
        rows: { train: t.rows, validation: data.validation.rows, test: data.test.rows },
      },
      arch: mlp.arch as unknown as Record<string, unknown>,
      frozenLayers: [...frozenLayers],
      loss,
      heartbeatMs: c.heartbeatMs,
      ring: { opTimeoutMs: c.ringOpTimeoutMs, heartbeatTimeoutMs: c.ringHeartbeatTimeoutMs, connectTimeoutMs: Math.max(5000, c.stopTimeoutMs) },
    });
  }

  /**
   * Answers a fetch (its indices checked against the split by the decoder, its size
   * against the shard by admission.ts) in `rows` chunks of at most ROWS_CHUNK_BYTES, one
   * at a time: the next chunk is built once ws has written the last, so a request costs
   * the coordinator one chunk of memory however large it is and however slowly its
   * worker reads. The split is free for the next request once its last chunk is sent.
   */
  private serveRows(conn: Conn, requestId: number, split: Split, indices: Uint32Array): void {
    conn.serving.add(split);
    const table: Table = this.job.data[split];
    const cols = table.cols;
    const per = rowsPerChunk(cols);
    const chunks = async (): Promise<void> => {
      for (let offset = 0; ; offset += per) {
        if (conn.ws.readyState !== conn.ws.OPEN) return;
        const part = indices.subarray(offset, offset + per);
        const features = new Float32Array(part.length * cols);
        const labels = table.labels instanceof Int32Array ? new Int32Array(part.length) : new Float32Array(part.length);
        for (let k = 0; k < part.length; k++) {
          const i = part[k]!;
          features.set(table.features.subarray(i * cols, (i + 1) * cols), k * cols);
          labels[k] = table.labels[i]!;
        }
        const last = offset + part.length >= indices.length;
        if (last) conn.serving.delete(split);
        const frame = encodeMessage({ type: 'rows', id: requestId, split, offset, indices: bytesOf(part), features: bytesOf(features), labels: bytesOf(labels) });
        await new Promise<void>((resolve) => conn.ws.send(frame, () => resolve()));
        if (last) return;
      }
    };
    void chunks().finally(() => conn.serving.delete(split));
  }

  private record(steps: readonly { step: number; epoch: number; loss: number; samples: number }[], epochs: readonly EpochReport[]): void {
    for (const s of steps) {
      // Replays (workers resend recent steps on joining) repeat what is known already.
      if (this.stepLosses.get(s.step) === s.loss) continue;
      this.stepLosses.set(s.step, s.loss);
      this.stepLog.add(s);
    }
    // On disk at once: a coordinator killed with -9 keeps every step it was told of.
    this.stepLog.flush();
    for (const e of epochs) this.epochRecords.set(e.epoch, e);
    const last = steps.at(-1);
    if (last) {
      const now = Date.now();
      if (this.lastStepAt && last.step > this.lastStepAt.step && now > this.lastStepAt.time) {
        const perStep = steps.reduce((a, s) => a + s.samples, 0) / steps.length;
        const instant = ((last.step - this.lastStepAt.step) * perStep * 1000) / (now - this.lastStepAt.time);
        this.rate = this.rate === null ? instant : 0.7 * this.rate + 0.3 * instant;
      }
      this.lastStepAt = { step: last.step, time: now };
    }
    if (steps.length > 0 || epochs.length > 0) this.emit('update');
  }

  // ---- decisions and actions -----------------------------------------------------

  private apply(event: MembershipEvent): void {
    const before = this.state;
    const d = decide(this.state, event, Date.now(), this.policy);
    this.state = d.state;
    for (const a of d.actions) this.execute(a);
    if (before.phase !== this.state.phase) {
      this.log.info({ phase: this.state.phase, generation: this.state.generation }, 'job state');
      this.emit('update');
    }
    if (event.type === 'join') this.event('join', `${event.id} joined from ${event.address.host}:${event.address.port}`);
    if (event.type === 'leave') this.event('leave', `${event.id} left`);
    if (event.type === 'lost') this.event('lost', `${event.id} lost: ${event.reason}`);
  }

  private execute(a: Action): void {
    switch (a.type) {
      case 'stop-ring':
        this.event('stopping', `generation ${a.generation} stopping: ${a.reason}`);
        for (const id of a.ids) this.send(id, { type: 'stop', generation: a.generation, reason: a.reason });
        return;
      case 'form': {
        const peers = a.ranks.map((r) => ({ rank: r.rank, host: r.address.host, port: r.address.port }));
        const sourceId = a.source.kind === 'member' ? a.source.id : null;
        const sourceRank = sourceId === null ? 0 : a.ranks.find((r) => r.id === sourceId)!.rank;
        // What every member checks the state it receives against: the source's claim, or the coordinator's own state.
        const own = snapshotProgress(this.baseline.snapshot);
        const progress = sourceId === null ? own : (this.state.members.find((m) => m.id === sourceId)?.held ?? own);
        for (const r of a.ranks) {
          this.send(r.id, {
            type: 'generation',
            generation: a.generation,
            rank: r.rank,
            world: a.ranks.length,
            peers,
            source: sourceRank,
            progress,
            ...(sourceId === null && r.rank === 0 ? { state: this.baseline.bytes } : {}),
          });
        }
        this.formed = { generation: a.generation, ranks: a.ranks, source: sourceId };
        this.doneFrom.clear();
        this.generations.push({ generation: a.generation, step: progress.step, time: new Date().toISOString(), world: a.ranks.length });
        this.event('generation', `generation ${a.generation}: ${a.ranks.map((r) => r.id).join(', ')} (state from ${a.source.kind === 'member' ? a.source.id : 'the coordinator'})`);
        this.persisted.set(a.generation);
        return;
      }
      case 'wait':
        this.event('waiting', a.reason);
        return;
      case 'probe': {
        if (this.probing.has(a.id)) return;
        this.probing.add(a.id);
        const where = `${a.address.host}:${a.address.port}`;
        const tls = this.ringTls ? { tls: this.ringTls } : {};
        void probeEndpoint({ host: a.address.host, port: a.address.port, token: this.token, ...tls }).then(({ reachable, detail }) => {
          this.probing.delete(a.id);
          if (this.state.phase === 'done') return;
          if (reachable) this.log.info({ worker: a.id, reporter: a.reporter }, `${a.reporter} could not connect to ${a.id} at ${where}, but the coordinator can`);
          const until = this.state.excluded[a.id];
          this.apply({ type: 'probed', id: a.id, address: a.address, reachable, detail });
          // Not when it left or moved meanwhile: membership decides, the event follows.
          if (this.state.excluded[a.id] !== until) {
            this.event('excluded', `${a.id} excluded: ${a.reporter} could not connect to its ring address ${where}, nor could the coordinator (${detail})`);
          }
        });
        return;
      }
      case 'reject':
        this.send(a.id, { type: 'reject', code: a.code, reason: a.reason });
        if (a.code === 'SOURCE_INVALID') this.event('excluded', `${a.id} excluded: ${a.reason}`);
        else this.event('error', `${a.id} refused: ${a.code} ${a.reason}`);
        return;
      case 'drop': {
        const conn = this.byId.get(a.id);
        this.byId.delete(a.id);
        if (conn) this.closeConn(conn, 4000, `lost: ${a.reason}`);
        return;
      }
      case 'save-and-finish':
        void this.saveAndFinish(a.source.kind === 'member' ? a.source.id : null, a.reason);
        return;
    }
  }

  /** The `unreachable` field of a stopped event: the id of the rank a worker could not connect to. */
  /**
   * A `stopped` report's rank field as the worker id of the newest generation formed:
   * `unreachable` names any member, `invalidSource` only the member that generation took
   * its state from (the coordinator's own state is verified before it is sent).
   */
  private rankId<K extends 'unreachable' | 'invalidSource'>(key: K, generation: number, rank: number | undefined): { [k in K]?: string } {
    const f = this.formed;
    if (rank === undefined || f?.generation !== generation) return {};
    const id = f.ranks.find((r) => r.rank === rank)?.id;
    if (id === undefined || (key === 'invalidSource' && id !== f.source)) return {};
    return { [key]: id } as { [k in K]?: string };
  }

  private event(kind: JobEvent['kind'], message: string): void {
    if (message === '') return;
    this.events.push({ time: new Date().toISOString(), kind, generation: this.state?.generation ?? 0, message });
    if (this.events.length > MAX_EVENTS) this.events.splice(0, this.events.length - MAX_EVENTS);
    // Checkpoints are routine (every epoch by default): the event list has them, the log at debug.
    this.log[kind === 'checkpoint' ? 'debug' : 'info']({ event: kind, generation: this.state?.generation ?? 0 }, message);
    this.emit('update');
  }

  // ---- checkpoints and outputs ---------------------------------------------------

  /** Writes `bytes` (a member's encoded state) as a checkpoint, in order with other writes. */
  private saveCheckpoint(bytes: Uint8Array, reason: 'steps' | 'epoch' | 'end' | 'stop'): Promise<string | null> {
    const snapshot = this.verifiedState(bytes);
    const write = this.writes.then(async () => {
      this.stepLog.flush();
      const dir = await writeCheckpoint(this.outDir, snapshot, checkpointOptions(this.job, reason));
      // Read back through the manifest: what a resume would see.
      let verified = false;
      try {
        await readCheckpoint(dir);
        verified = true;
      } catch (err) {
        this.log.error({ dir, err: (err as Error).message }, 'checkpoint failed verification');
      }
      this.baseline = { bytes, snapshot };
      this.checkpoints.push({
        step: snapshot.loop.globalStep,
        epoch: snapshot.loop.history.length,
        reason,
        time: new Date().toISOString(),
        dir,
        bytes: bytes.byteLength,
        verified,
      });
      if (this.checkpoints.length > 50) this.checkpoints.shift();
      this.event('checkpoint', `checkpoint at step ${snapshot.loop.globalStep} (${reason})`);
      this.apply({ type: 'checkpointed', progress: snapshotProgress(snapshot) });
      return dir;
    });
    this.writes = write.catch((err: Error) => this.log.error({ err: err.message }, 'checkpoint write failed'));
    return write.catch(() => null);
  }

  private async finish(m: Extract<WorkerMessage, { type: 'done' }>): Promise<void> {
    this.finishing = true;
    const { spec, data, loss, metadata } = this.job;
    await this.writes;
    this.stepLog.flush();
    const mlp = Mlp.fromParams(this.job.mlp.arch, Float32Array.from(float32s(m.params, 'params')));
    try {
      const seconds = (Date.now() - this.started) / 1000;
      const samples = [...this.epochRecords.values()].reduce((a, r) => a + r.samplesPerSecond * r.seconds, 0);
      const result = {
        mlp,
        history: m.result.history,
        bestEpoch: m.result.bestEpoch,
        stoppedEarly: m.result.stoppedEarly,
        interrupted: false as const,
        steps: m.result.steps,
        seconds,
        samplesPerSecond: samples / Math.max(1e-9, m.result.history.reduce((a, r) => a + r.seconds, 0)),
        final: m.result.final,
      };
      const summary = summarize(spec, data, this.backend, loss, result);
      await mkdir(this.outDir, { recursive: true });
      await writeRunOutput(this.outDir, spec, data, summary, result, metadata);
      this.modelPath = join(this.outDir, 'model');
      const ring = this.state.phase === 'training' ? this.state.ring : [];
      this.apply({ type: 'finished' });
      this.event('completed', `training complete: ${m.result.steps} steps; model written to ${this.modelPath}`);
      // cluster.json counts every member's `done`: the others are at most moments behind.
      const deadline = Date.now() + DONE_GRACE_MS;
      while (ring.some((id) => !this.doneFrom.has(id) && this.byId.has(id)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await this.writeClusterLog();
      for (const id of this.byId.keys()) this.send(id, { type: 'finished', reason: 'training complete' });
      const report = await this.writeReport(summary, mlp);
      this.resolveOutcome({ kind: 'completed', model: this.modelPath, report });
    } finally {
      mlp.dispose();
    }
  }

  /**
   * A member's encoded state, decoded and verified against the job: its shape
   * (decodeSnapshot), finite numbers and a loop the job could reach (verifySnapshot), a
   * progress within the job's bounds. Throws SNAPSHOT_INVALID.
   */
  private verifiedState(bytes: Uint8Array): TrainSnapshot {
    const snapshot = decodeSnapshot(bytes, this.shape);
    verifySnapshot(snapshot, this.job.spec, this.job.data.train.rows);
    const issue = progressIssue(snapshotProgress(snapshot), this.limits);
    if (issue) throw new TrainError('SNAPSHOT_INVALID', `state snapshot: ${issue}`, [issue]);
    return snapshot;
  }

  /** The answer to `upload`, if it verifies and backs the progress its sender claimed; else null, with an event saying why. */
  private verifiedUpload(bytes: Uint8Array, claim: Progress | null, id: string): Uint8Array | null {
    try {
      const got = snapshotProgress(this.verifiedState(bytes));
      if (claim !== null && (got.step !== claim.step || got.epochs !== claim.epochs)) {
        throw new TrainError('SNAPSHOT_INVALID', `state snapshot at step ${got.step} (${got.epochs} epochs); it claimed step ${claim.step} (${claim.epochs} epochs)`);
      }
      return bytes;
    } catch (err) {
      this.event('error', `the state ${id} uploaded is refused: ${(err as Error).message}`);
      return null;
    }
  }

  private async saveAndFinish(source: string | null, reason: string): Promise<void> {
    this.finishing = true;
    let dir: string | null = null;
    if (source !== null) {
      const claim = this.state.members.find((m) => m.id === source)?.held ?? null;
      const generation = this.state.generation;
      const bytes = await new Promise<Uint8Array | null>((resolve) => {
        const timer = setTimeout(() => resolve(null), 30_000);
        this.upload = {
          id: source,
          generation,
          claim,
          resolve: (b) => {
            clearTimeout(timer);
            resolve(b);
          },
        };
        this.send(source, { type: 'upload', generation });
      });
      this.upload = null;
      if (bytes) dir = await this.saveCheckpoint(bytes, 'stop');
      else this.log.error({ source }, 'no verified state upload within 30 s; the latest checkpoint stands');
    }
    await this.writes;
    this.stepLog.flush();
    this.event('stopped', `stopped (${reason})${dir ? `; checkpoint ${dir}` : ''}`);
    await this.writeClusterLog();
    if (this.releaseOnStop) for (const id of this.byId.keys()) this.send(id, { type: 'finished', reason: `job stopped: ${reason}` });
    const report = await this.writeReport(this.interruptedSummary(), null);
    this.resolveOutcome({ kind: 'stopped', checkpoint: dir, reason, report });
  }

  /** A stopped job's run so far, for its report: the epochs recorded, no final metrics. */
  private interruptedSummary(): RunSummary {
    const { spec, data, loss, mlp } = this.job;
    const history = [...this.epochRecords.values()].sort((a, b) => a.epoch - b.epoch);
    const seconds = history.reduce((a, r) => a + r.seconds, 0);
    const samples = history.reduce((a, r) => a + r.samplesPerSecond * r.seconds, 0);
    const result = {
      mlp,
      history,
      bestEpoch: this.baseline.snapshot.loop.best?.epoch ?? history.length,
      stoppedEarly: false,
      interrupted: true as const,
      steps: this.status().step,
      seconds: (Date.now() - this.started) / 1000,
      samplesPerSecond: samples / Math.max(1e-9, seconds),
      final: null,
    };
    return summarize(spec, data, this.backend, loss, result);
  }

  /** OUT/report.html (report.ts) with this run's generations; a failure is logged and the run's other outputs stand. */
  private writeReport(summary: RunSummary, model: Mlp | null): Promise<string | null> {
    const { spec, data } = this.job;
    return writeReport(this.outDir, { spec, data, summary, model, generations: this.generations }).catch((err: Error) => {
      this.log.error({ err: err.message }, 'cannot write report.html');
      return null;
    });
  }

  /** cluster.json: what happened to the cluster during this coordinator's run (generations, events, checkpoints, message counts). */
  private async writeClusterLog(): Promise<void> {
    const body = { generations: this.generations, events: this.events, checkpoints: this.checkpoints, messages: this.messages };
    await writeFileAtomic(join(this.outDir, CLUSTER_LOG), `${JSON.stringify(body, null, 2)}\n`).catch((err: Error) =>
      this.log.error({ err: err.message }, 'cannot write cluster.json'),
    );
  }

  // ---- control -------------------------------------------------------------------

  pause(): void {
    this.apply({ type: 'pause' });
    this.event('paused', 'paused');
  }

  resume(): void {
    this.apply({ type: 'resume' });
  }

  /** Stops at a step boundary and checkpoints; `release` tells the workers to exit (false on SIGTERM: they wait for the coordinator's return). */
  stop(reason: string, release: boolean): void {
    this.releaseOnStop = release;
    this.apply({ type: 'stop', reason });
  }

  get phase(): MembershipState['phase'] {
    return this.state.phase;
  }

  // ---- views ---------------------------------------------------------------------

  status(): JobStatus {
    const s = this.state;
    const spec = this.job.spec;
    const perEpoch = stepsPerEpoch(this.job.data.train.rows, spec.training.batchSize);
    const ring = s.phase === 'training' ? s.ring : [];
    // The job's progress: the coordinator's own state, and what the newest ring's members report (a worker's claim outside it is no progress of the job).
    let step = this.baseline.snapshot.loop.globalStep;
    const members = new Set(this.formed?.ranks.map((r) => r.id));
    for (const c of this.byId.values()) if (c.step !== null && members.has(c.id!)) step = Math.max(step, c.step);
    const total = perEpoch * spec.training.epochs;
    const jobState: JobState =
      s.phase === 'waiting'
        ? 'waiting'
        : s.phase === 'training'
          ? 'running'
          : s.phase === 'stopping'
            ? 'recovering'
            : s.phase === 'paused'
              ? 'paused'
              : this.settled === null
                ? 'finishing'
                : this.settled.kind;
    const reason = s.phase === 'training' ? `training with ${ring.length} worker${ring.length === 1 ? '' : 's'}` : s.reason;
    const now = Date.now();
    const workers: WorkerStatus[] = [...this.byId.values()].map((c) => ({
      id: c.id!,
      rank: ring.indexOf(c.id!) >= 0 ? ring.indexOf(c.id!) : null,
      address: c.address,
      backend: c.backend,
      step: c.step,
      timing: c.timing,
      lastHeartbeatMs: now - c.lastSeen,
    }));
    workers.sort((a, b) => (a.rank ?? 1e9) - (b.rank ?? 1e9));
    const rate = jobState === 'running' ? this.rate : null;
    return {
      job: spec.name,
      state: jobState,
      reason,
      generation: s.generation,
      step,
      epoch: Math.min(spec.training.epochs, Math.floor(step / perEpoch) + 1),
      epochs: spec.training.epochs,
      stepsPerEpoch: perEpoch,
      startedAt: new Date(this.started).toISOString(),
      elapsedSeconds: (now - this.started) / 1000,
      etaSeconds: rate ? ((total - step) * spec.training.batchSize) / rate : null,
      samplesPerSecond: rate,
      workers,
      ring,
      checkpoints: [...this.checkpoints],
      messages: { ...this.messages },
      events: [...this.events],
      spec,
      model: this.modelPath,
    };
  }

  metrics(): MetricHistory {
    return {
      steps: [...this.stepLosses.entries()].sort((a, b) => a[0] - b[0]),
      epochs: [...this.epochRecords.values()].sort((a, b) => a.epoch - b.epoch),
      generations: [...this.generations],
    };
  }

  async close(): Promise<void> {
    clearInterval(this.ticker);
    await this.writes;
    await this.persisted.flushed();
    this.stepLog.flush();
    for (const c of this.conns) c.ws.terminate();
  }
}
