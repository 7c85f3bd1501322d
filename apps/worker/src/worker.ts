/**
 * A training worker: serves its ring endpoint, joins the coordinator over the control
 * channel, and runs one training loop per generation it is given.
 *
 * This is the executor of lifecycle.ts: every message from the coordinator, every
 * milestone of a generation, the signal and the clock go to `decide` as events, and
 * this carries out the actions it returns: connect and register (control.ts), set a job
 * up (job.ts), run a generation (generation.ts), fetch rows (rows.ts), send heartbeats,
 * replays and reports (reports.ts), exit. What a worker holds between generations (the
 * job, its last committed state) lives here; when to do what lives in the lifecycle.
 *
 * A generation ends when the coordinator says stop (the ring is aborted; the loop stops
 * at a step boundary), when the ring fails (a peer lost), or when training completes.
 * Either way the worker keeps its last committed state, reports how far it got, and
 * waits for the next generation. Losing the coordinator stops the generation too (no
 * checkpoints can be written without it): the worker reconnects with backoff and
 * registers again with the state it holds.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { listen, type RingEndpoint, type RingTls } from '@ringtrain/allreduce';
import type { BackendName } from '@ringtrain/model';
import { bytesOf, type CoordinatorMessage, type Progress, PROTOCOL_VERSION, type TransferHead, type WorkerMessage } from '@ringtrain/protocol';
import { SnapshotAssembler, snapshotProgress, StateParser, stateSource, TrainError, type TrainSnapshot } from '@ringtrain/train';
import { ControlChannel } from './control.js';
import { isFatal, WorkerError } from './errors.js';
import { Generation, type GenerationMessage, type Holding } from './generation.js';
import { type Job, type JobMessage, setUpJob } from './job.js';
import { type Action, decide, initialWorker, MAX_BACKOFF_MS, MIN_BACKOFF_MS, type Policy, type ProgressKind, type WorkerEvent, type WorkerState } from './lifecycle.js';
import { StepRecords } from './reports.js';
import { RowFetcher } from './rows.js';
import { Transfers } from './transfers.js';

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
  /** Bytes the job's memory plan may use (--memory-limit); null: no limit; default the cgroup's, else the machine's (memory.ts). */
  readonly memoryLimit?: number | null;
  /**
   * TLS (with a wss:// coordinator): the ring endpoint serves `cert` and `key`; the
   * coordinator's and the peers' certificates are verified against `ca`, and peers' by
   * `serverName` when set (libs/allreduce, tls.ts).
   */
  readonly tls?: RingTls;
  readonly log: Logger;
  /** Reconnection backoff (lifecycle.ts): default 250 ms, doubling to 5 s. */
  readonly minBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** --coordinator-timeout: exit (EXIT.noCoordinator) once no coordinator has answered for this long; default: retry for ever. */
  readonly coordinatorTimeoutMs?: number;
}

/** How often the clock is given to the lifecycle (heartbeats are due every job.heartbeatMs). */
const TICK_MS = 100;

type Event = WorkerEvent<JobMessage, GenerationMessage>;
type Exit = { readonly code: number; readonly error: Error | null };

export class TrainingWorker {
  readonly id: string;
  private readonly o: WorkerOptions;
  private readonly log: Logger;
  private readonly policy: Policy;
  private state: WorkerState<JobMessage, GenerationMessage>;
  /** Events that came while one was being decided: decided next, in order. */
  private readonly inbox: Event[] = [];
  private deciding = false;
  private readonly exited: Promise<Exit>;
  private finish: (exit: Exit) => void = () => {};
  private readonly holding: Holding = { held: null, live: null };
  private readonly records = new StepRecords();
  private readonly rows = new RowFetcher((m) => this.channel?.send(m) ?? false);
  private readonly transfers = new Transfers((m) => this.channel?.send(m) ?? false);
  /** The coordinator's state for a generation this worker is the source of, arriving as a transfer. */
  private incomingState: { readonly generation: number; readonly snapshot: Promise<TrainSnapshot> } | null = null;
  /** Waiting for the job to be set up: a state's header is checked against the job's shape. */
  private jobWaiters: ((job: Job) => void)[] = [];
  private endpoint: RingEndpoint | null = null;
  private channel: ControlChannel | null = null;
  private job: Job | null = null;
  private backend: string | null = null;
  private current: Generation | null = null;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(options: WorkerOptions) {
    this.o = options;
    this.id = options.id ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
    this.log = options.log.child({ component: 'worker', worker: this.id });
    this.policy = { minBackoffMs: options.minBackoffMs ?? MIN_BACKOFF_MS, maxBackoffMs: options.maxBackoffMs ?? MAX_BACKOFF_MS, coordinatorTimeoutMs: options.coordinatorTimeoutMs ?? null };
    this.state = initialWorker(this.policy);
    this.exited = new Promise((resolve) => (this.finish = resolve));
  }

  /** Runs until the job finishes (0), the coordinator refuses this worker (2), it leaves (3) or no coordinator answers in time (5): EXIT of @ringtrain/protocol. Rejects with a coded WorkerError when TLS with the coordinator fails. */
  async run(): Promise<number> {
    // With the token, the endpoint answers the coordinator's probes (libs/allreduce probe.ts).
    const endpoint = await listen({ host: this.o.bindHost ?? '0.0.0.0', port: this.o.peerPort ?? 0, token: this.o.token, logger: this.log, ...(this.o.tls ? { tls: this.o.tls } : {}) });
    this.endpoint = endpoint;
    this.log.info({ coordinator: this.o.coordinator, peer: this.address(), ringTls: endpoint.tls }, 'worker started');
    const ticker = setInterval(() => this.dispatch({ type: 'tick' }), TICK_MS);
    this.dispatch({ type: 'start' });
    const exit = await this.exited;
    clearInterval(ticker);
    clearTimeout(this.retryTimer);
    this.channel?.close();
    await endpoint.close();
    if (exit.error) throw exit.error;
    return exit.code;
  }

  /** SIGTERM: finish the current step, hand the state over by leaving, exit 3 (the job goes on). */
  leave(): void {
    this.dispatch({ type: 'leave' });
  }

  private address(): { host: string; port: number } {
    return { host: this.o.advertiseHost ?? hostname(), port: this.endpoint!.port };
  }

  private dispatch(event: Event): void {
    this.inbox.push(event);
    if (this.deciding) return;
    this.deciding = true;
    try {
      for (let e = this.inbox.shift(); e !== undefined; e = this.inbox.shift()) {
        const d = decide(this.state, e, performance.now(), this.policy);
        this.state = d.state;
        for (const a of d.actions) this.perform(a);
      }
    } finally {
      this.deciding = false;
    }
  }

  private onMessage(m: CoordinatorMessage): void {
    switch (m.type) {
      case 'rows':
        this.rows.take(m);
        return;
      case 'chunk':
        return this.transfers.chunk(m);
      case 'ack':
        return this.transfers.ack(m);
      case 'generation':
        // Its state's chunks follow at once, before the generation may start: they are taken from now.
        if (m.state) this.incomingState = { generation: m.generation, snapshot: this.receiveState(m.state) };
        this.dispatch(m);
        return;
      case 'job':
      case 'stop':
      case 'reject':
      case 'upload':
      case 'finished':
        this.dispatch(m);
        return;
      default: {
        const never: never = m;
        return never;
      }
    }
  }

  private perform(a: Action<JobMessage, GenerationMessage>): void {
    switch (a.type) {
      case 'connect':
        return this.connect();
      case 'register': {
        const progress = this.progress('held');
        const held = this.job && progress ? { jobId: this.job.id, progress } : null;
        this.send({ type: 'register', protocol: PROTOCOL_VERSION, id: this.id, address: this.address(), backend: this.backend ?? 'unknown', held, generation: a.generation });
        return;
      }
      case 'close-channel':
        return this.channel?.close(a.reason);
      case 'schedule-retry':
        this.retryTimer = setTimeout(() => this.dispatch({ type: 'retry' }), a.delayMs);
        return;
      case 'setup-job':
        return void this.setUp(a.order);
      case 'start-generation':
        return this.startGeneration(a.order);
      case 'abort-ring':
        if (this.current?.m.generation === a.generation) this.current.abort(a.reason);
        return;
      case 'release-ring':
        if (this.current?.m.generation === a.generation) this.current.close();
        return;
      case 'cancel-fetches':
        return this.rows.cancelAll(a.reason);
      case 'send-heartbeat':
        // Only on an open channel: the records it reports are forgotten once sent.
        if (this.channel?.isOpen) this.send(this.records.heartbeat(a.generation, this.backend, this.progress(a.progress), this.job?.memory));
        return;
      case 'replay': {
        const m = this.records.replay(a.count, a.generation, this.backend, this.progress(a.progress));
        if (m) this.send(m);
        return;
      }
      case 'report-stopped': {
        const { generation, code, reason, unreachable, invalidSource } = a;
        const blame = { ...(unreachable !== undefined ? { unreachable } : {}), ...(invalidSource !== undefined ? { invalidSource } : {}) };
        this.send({ type: 'stopped', generation, progress: this.progress(a.progress), code, reason, ...blame });
        return;
      }
      case 'send-done': {
        const done = this.current?.m.generation === a.generation ? this.current.done : null;
        if (done?.params) this.sendTransfer('final weights', done.message, { bytes: done.params.byteLength, parts: [bytesOf(done.params)] });
        else if (done) this.send(done.message());
        return;
      }
      case 'send-leave':
        this.send({ type: 'leave', progress: this.progress(a.progress) });
        return;
      case 'upload-state':
        if (this.holding.held) this.sendTransfer('state', (state) => ({ type: 'state', generation: a.generation, state }), stateSource(this.holding.held));
        return;
      case 'log':
        this.log[a.level](a.fields, a.msg);
        return;
      case 'exit':
        return this.finish({ code: a.code, error: a.error });
      default: {
        const never: never = a;
        return never;
      }
    }
  }

  private send(m: WorkerMessage): void {
    this.channel?.send(m);
  }

  /** Sends `what` as a transfer; a failure (the channel closed) is logged: the coordinator asks again or goes on without it. */
  private sendTransfer(what: string, announce: (head: TransferHead) => WorkerMessage, source: { bytes: number; parts: readonly Uint8Array[] }): void {
    this.transfers.transfer(announce, source).catch((err: unknown) => this.log.warn({ err }, `${what} not sent`));
  }

  /** The coordinator's state as it streams in: parsed against the job's shape, each float copied once into place. */
  private receiveState(head: TransferHead): Promise<TrainSnapshot> {
    const assembler = new SnapshotAssembler();
    let parser: StateParser | null = null;
    const t = this.transfers.receive(head, async (data) => {
      parser ??= new StateParser((await this.readyJob()).shape, assembler, head.bytes);
      parser.push(data);
    });
    const snapshot = t.done.then(() => {
      if (parser === null) throw new TrainError('SNAPSHOT_INVALID', 'state snapshot: an empty stream');
      parser.end();
      return assembler.snapshot();
    });
    snapshot.catch(() => {}); // a generation that never starts never asks for it
    return snapshot;
  }

  private readyJob(): Promise<Job> {
    return this.job ? Promise.resolve(this.job) : new Promise((resolve) => this.jobWaiters.push(resolve));
  }

  /** The progress a message carries (lifecycle.ts says which): `live` counts the steps of a generation in progress. */
  private progress(kind: ProgressKind): Progress | null {
    // While a generation trains, its run holds the state (generation.ts); it commits every step, so `live` is what it holds.
    const held = this.holding.held ? snapshotProgress(this.holding.held) : this.holding.live;
    if (kind === 'none') return null;
    return kind === 'live' ? (this.holding.live ?? held) : held;
  }

  private connect(): void {
    const ca = this.o.tls?.ca;
    this.channel = new ControlChannel(
      this.o.coordinator,
      this.o.token,
      {
        onOpen: () => this.dispatch({ type: 'connected' }),
        onMessage: (m) => this.onMessage(m),
        onClose: (error) => {
          this.transfers.closed(`the control channel closed: ${error.message}`);
          this.dispatch({ type: 'disconnected', error, fatal: isFatal(error) });
        },
      },
      ca !== undefined ? { ca } : {},
    );
    if (this.job) this.channel.silenceMs = this.job.spec.cluster.heartbeatTimeoutMs;
  }

  private async setUp(m: JobMessage): Promise<void> {
    try {
      const { job, backend } = await setUpJob(m, this.backend, this.o.backend, this.log, this.o.memoryLimit);
      this.backend = backend;
      this.job = job;
      this.holding.held = null;
      this.holding.live = null;
      if (this.channel) this.channel.silenceMs = job.spec.cluster.heartbeatTimeoutMs;
      for (const resolve of this.jobWaiters.splice(0)) resolve(job);
      this.dispatch({ type: 'job-ready', jobId: job.id, heartbeatMs: m.heartbeatMs });
    } catch (err) {
      this.dispatch({ type: 'job-failed', error: err instanceof Error ? err : new Error(String(err)) });
    }
  }

  private startGeneration(m: GenerationMessage): void {
    const generation = new Generation(
      {
        job: this.job!,
        endpoint: this.endpoint!,
        token: this.o.token,
        log: this.log,
        holding: this.holding,
        rows: this.rows,
        records: this.records,
        send: (msg) => this.send(msg),
        transfer: (announce, source) => this.transfers.transfer(announce, source),
        coordinatorState: this.incomingState?.generation === m.generation ? this.incomingState.snapshot : null,
        emit: (e) => this.dispatch(e),
      },
      m,
    );
    this.current = generation;
    void generation.run().finally(() => {
      if (this.current === generation) this.current = null;
    });
  }
}
