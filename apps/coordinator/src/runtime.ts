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
import {
  bytesOf,
  type CoordinatorMessage,
  decodeWorkerMessage,
  encodeMessage,
  float32s,
  type EpochReport,
  ProtocolError,
  type Timing,
  uint32s,
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
  snapshotProgress,
  snapshotShape,
  type RunSummary,
  StepLog,
  summarize,
  type TrainSnapshot,
  writeCheckpoint,
  writeRunOutput,
} from '@ringtrain/train';
import { LatestWriter } from './latest-writer.js';
import { type Action, decide, initialMembership, type MembershipEvent, type MembershipState, type Policy, type RankAssignment } from './membership.js';
import { probeAddress } from './probe.js';
import { writeReport } from './report.js';
import type { CheckpointInfo, JobEvent, JobState, JobStatus, MetricHistory, WorkerStatus } from './status.js';

export interface RuntimeOptions {
  readonly job: OpenedJob;
  readonly outDir: string;
  readonly log: Logger;
  /** The first generation waits for this many workers (`local --workers N` waits for its N). */
  readonly startWorkers?: number;
  readonly backend: string;
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
  private state: MembershipState;
  /** The coordinator's own state: the latest checkpoint, or the starting weights. */
  private baseline: { bytes: Uint8Array; snapshot: TrainSnapshot };
  private readonly conns = new Set<Conn>();
  private readonly byId = new Map<string, Conn>();
  private readonly stepLog: StepLog;
  private readonly stepLosses = new Map<number, number>();
  private readonly epochRecords = new Map<number, EpochReport>();
  private readonly generations: { generation: number; step: number; time: string; world: number }[] = [];
  /** The newest generation formed, by rank: a worker names the peer it could not reach by rank. */
  private formed: { generation: number; ranks: readonly RankAssignment[] } | null = null;
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
  private uploadWaiter: ((bytes: Uint8Array) => void) | null = null;
  private releaseOnStop = true;
  private finishing = false;
  private modelPath: string | null = null;
  private readonly started = Date.now();
  private readonly ticker: NodeJS.Timeout;
  private resolveOutcome!: (o: Outcome) => void;
  readonly outcome: Promise<Outcome>;
  private lastStepAt: { step: number; time: number } | null = null;
  private rate: number | null = null;

  constructor(o: RuntimeOptions) {
    super();
    this.job = o.job;
    this.outDir = o.outDir;
    this.log = o.log.child({ component: 'coordinator', job: o.job.spec.name });
    this.backend = o.backend;
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
    this.ticker = setInterval(() => this.apply({ type: 'tick' }), 250);
    this.event('waiting', this.state.phase === 'waiting' ? this.state.reason : '');
  }

  get id(): string {
    return this.jobId;
  }

  private readPersisted(): number {
    const path = join(this.outDir, STATE_FILE);
    if (!existsSync(path)) return 0;
    try {
      const g = (JSON.parse(readFileSync(path, 'utf8')) as { generation?: unknown }).generation;
      return typeof g === 'number' && Number.isSafeInteger(g) && g >= 0 ? g : 0;
    } catch {
      return 0;
    }
  }

  // ---- connections -------------------------------------------------------------

  /** A worker's authenticated control connection. */
  attach(ws: WebSocket, remote: string): void {
    const conn: Conn = { ws, remote, id: null, backend: '?', address: '?', lastSeen: Date.now(), timing: null, step: null };
    this.conns.add(conn);
    const registerBy = setTimeout(() => {
      if (conn.id === null) this.closeConn(conn, 1008, 'no register within 10 s');
    }, 10_000);
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) return this.closeConn(conn, 1008, 'PROTOCOL_BAD_MESSAGE: text frame');
      let m: WorkerMessage;
      try {
        m = decodeWorkerMessage(data);
      } catch (err) {
        this.log.warn({ remote, worker: conn.id, err: (err as Error).message }, 'bad message from a worker; closing its connection');
        return this.closeConn(conn, 1008, `PROTOCOL_BAD_MESSAGE: ${(err as Error).message}`);
      }
      this.messages[m.type] = (this.messages[m.type] ?? 0) + 1;
      conn.lastSeen = Date.now();
      try {
        this.onWorkerMessage(conn, m);
      } catch (err) {
        // A message that decoded but asks for something impossible, or carries a state that
        // does not fit this job, is the worker's fault (1008); anything else is ours (1011).
        if (err instanceof ProtocolError || (err as { code?: unknown }).code === 'SNAPSHOT_INVALID') {
          const message = (err as Error).message;
          this.log.warn({ worker: conn.id, type: m.type, err: message }, 'bad request from a worker; closing its connection');
          this.closeConn(conn, 1008, `PROTOCOL_BAD_MESSAGE: ${message}`);
        } else {
          this.log.error({ worker: conn.id, type: m.type, err: (err as Error).message }, 'failed to handle a worker message');
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
    ws.on('error', () => {});
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

  private onWorkerMessage(conn: Conn, m: WorkerMessage): void {
    if (m.type === 'register') {
      if (conn.id !== null) return this.closeConn(conn, 1008, 'PROTOCOL_BAD_MESSAGE: registered twice');
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
    if (id === null) return this.closeConn(conn, 1008, 'PROTOCOL_BAD_MESSAGE: register first');
    switch (m.type) {
      case 'heartbeat':
        if (m.backend) conn.backend = m.backend;
        conn.timing = m.timing.steps > 0 ? m.timing : conn.timing;
        conn.step = m.progress?.step ?? conn.step;
        this.record(m.steps, m.epochs);
        this.apply({ type: 'heartbeat', id, held: m.progress });
        return;
      case 'fetch':
        return this.serveRows(id, m.id, m.split, uint32s(m.indices, 'indices'));
      case 'stopped':
        conn.step = m.progress?.step ?? conn.step;
        this.apply({ type: 'stopped', id, generation: m.generation, held: m.progress, reason: m.reason, ...this.unreachableId(m.generation, m.unreachable) });
        return;
      case 'checkpoint':
        if (m.generation !== this.state.generation || this.finishing) return;
        this.saveCheckpoint(m.snapshot, m.reason);
        return;
      case 'state':
        this.uploadWaiter?.(m.snapshot);
        return;
      case 'done': {
        if (m.generation === this.state.generation) this.doneFrom.add(id);
        if (m.generation !== this.state.generation || this.finishing) return;
        const size = float32s(m.params, 'params').length;
        if (size !== this.job.mlp.layout.size) throw new ProtocolError('PROTOCOL_BAD_MESSAGE', `done: ${size} parameters; the model has ${this.job.mlp.layout.size}`);
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

  private serveRows(id: string, requestId: number, split: 'train' | 'validation' | 'test', indices: Uint32Array): void {
    const table: Table = this.job.data[split];
    const cols = table.cols;
    const features = new Float32Array(indices.length * cols);
    const labels = table.labels instanceof Int32Array ? new Int32Array(indices.length) : new Float32Array(indices.length);
    for (let k = 0; k < indices.length; k++) {
      const i = indices[k]!;
      if (i >= table.rows) throw new ProtocolError('PROTOCOL_BAD_MESSAGE', `fetch: ${split} row ${i} is past its ${table.rows} rows`);
      features.set(table.features.subarray(i * cols, (i + 1) * cols), k * cols);
      labels[k] = table.labels[i]!;
    }
    this.send(id, { type: 'rows', id: requestId, split, indices: bytesOf(indices), features: bytesOf(features), labels: bytesOf(labels) });
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
        const sourceRank = a.source.kind === 'member' ? a.ranks.find((r) => r.id === (a.source as { id: string }).id)!.rank : 0;
        for (const r of a.ranks) {
          this.send(r.id, {
            type: 'generation',
            generation: a.generation,
            rank: r.rank,
            world: a.ranks.length,
            peers,
            source: sourceRank,
            ...(a.source.kind === 'coordinator' && r.rank === 0 ? { state: this.baseline.bytes } : {}),
          });
        }
        this.formed = { generation: a.generation, ranks: a.ranks };
        this.doneFrom.clear();
        const step = this.state.members.reduce((best, m) => Math.max(best, m.held?.step ?? 0), this.baseline.snapshot.loop.globalStep);
        this.generations.push({ generation: a.generation, step, time: new Date().toISOString(), world: a.ranks.length });
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
        void probeAddress(a.address).then(({ reachable, detail }) => {
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
        this.event('error', `${a.id} refused: ${a.code} ${a.reason}`);
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
  private unreachableId(generation: number, rank: number | undefined): { unreachable?: string } {
    if (rank === undefined || this.formed?.generation !== generation) return {};
    const id = this.formed.ranks.find((r) => r.rank === rank)?.id;
    return id === undefined ? {} : { unreachable: id };
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
    const snapshot = decodeSnapshot(bytes, this.shape);
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

  private async saveAndFinish(source: string | null, reason: string): Promise<void> {
    this.finishing = true;
    let dir: string | null = null;
    if (source !== null) {
      const bytes = await new Promise<Uint8Array | null>((resolve) => {
        const timer = setTimeout(() => resolve(null), 30_000);
        this.uploadWaiter = (b) => {
          clearTimeout(timer);
          resolve(b);
        };
        this.send(source, { type: 'upload', generation: this.state.generation });
      });
      this.uploadWaiter = null;
      if (bytes) dir = await this.saveCheckpoint(bytes, 'stop');
      else this.log.error({ source }, 'no state upload within 30 s; the latest checkpoint stands');
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
    let step = this.baseline.snapshot.loop.globalStep;
    for (const c of this.byId.values()) if (c.step !== null) step = Math.max(step, c.step);
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
              : this.modelPath
                ? 'completed'
                : 'stopped';
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
