/**
 * A fake coordinator for the worker's tests: a WebSocket server on loopback speaking
 * the control protocol, with a small job of its own (synthetic data, libs/train's
 * openJob), that records what the worker sends and answers fetches in chunks unless a
 * test says otherwise. Generations have one member, so its ring needs no peer.
 */
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino, { type Logger } from 'pino';
import { WebSocketServer, type WebSocket as ServerSocket } from 'ws';
import { createOptimizer } from '@ringtrain/model';
import { bytesOf, type CoordinatorMessage, decodeWorkerMessage, encodeMessage, type Progress, PROTOCOL_VERSION, uint32s, type WorkerMessage } from '@ringtrain/protocol';
import { encodeSnapshot, INITIAL_LOOP, openJob, type OpenedJob, optimizerSpec, parseJobSpec } from '@ringtrain/train';

export const TOKEN = 'worker-test-token-0123456789';

/** 96 training rows in batches of 16: 6 steps an epoch, 18 in all. */
export const STEPS_PER_EPOCH = 6;
export const EPOCHS = 3;

export function jobYaml(ringOpTimeoutMs = 60_000): string {
  return `name: worker-test
data:
  source: synthetic:rows=120,features=4,classes=3,seed=1
  split: { validation: 0.1, test: 0.1, seed: 2 }
model:
  hidden:
    - { units: 8, activation: relu }
training:
  optimizer: { name: adam, learningRate: 0.01 }
  batchSize: 16
  epochs: ${EPOCHS}
  seed: 3
cluster: { heartbeatMs: 50, heartbeatTimeoutMs: 5000, ringOpTimeoutMs: ${ringOpTimeoutMs} }
`;
}

type Fetch = Extract<WorkerMessage, { type: 'fetch' }>;

export class FakeCoordinator {
  readonly received: WorkerMessage[] = [];
  /** How each fetch is answered; by default at once, in chunks of 7 rows. */
  onFetch: (f: Fetch) => void = (f) => this.answer(f);
  connections = 0;
  private transfers = 0;
  private socket: ServerSocket | null = null;

  private constructor(
    readonly job: OpenedJob,
    private readonly server: Server,
    private readonly wss: WebSocketServer,
    readonly port: number,
  ) {
    wss.on('connection', (ws) => {
      this.connections += 1;
      this.socket = ws;
      ws.on('message', (data: Buffer) => {
        const m = decodeWorkerMessage(data);
        this.received.push(m);
        if (m.type === 'fetch') this.onFetch(m);
        // Every chunk is taken at once: the worker's transfers complete.
        if (m.type === 'chunk') this.send({ type: 'ack', id: m.id, offset: m.offset + m.data.byteLength });
      });
    });
  }

  static async start(ringOpTimeoutMs?: number): Promise<FakeCoordinator> {
    const job = await openJob(parseJobSpec(jobYaml(ringOpTimeoutMs)), null);
    const server = createServer();
    const wss = new WebSocketServer({ server });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return new FakeCoordinator(job, server, wss, (server.address() as AddressInfo).port);
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  send(m: CoordinatorMessage): void {
    this.socket!.send(encodeMessage(m));
  }

  /** Any map, as msgpack (a message of another version, say). */
  sendRaw(m: Record<string, unknown>): void {
    this.socket!.send(encodeMessage(m as never));
  }

  /** The job, as the coordinator sends it after `register`. */
  sendJob(): void {
    this.send(this.jobMessage());
  }

  /** The `job` message for this fake's job. */
  jobMessage(): Extract<CoordinatorMessage, { type: 'job' }> {
    const { spec, data, mlp, loss, frozenLayers } = this.job;
    const t = data.train;
    const c = spec.cluster;
    return {
      type: 'job',
      protocol: PROTOCOL_VERSION,
      jobId: 'job-1',
      spec: spec as unknown as Record<string, unknown>,
      dataset: {
        source: data.source,
        cols: t.cols,
        featureNames: [...t.featureNames],
        task: data.task.kind === 'classification' ? { kind: 'classification', classes: [...data.task.classes] } : { kind: 'regression', target: data.task.target },
        rows: { train: t.rows, validation: data.validation.rows, test: data.test.rows },
      },
      arch: { ...mlp.arch, hidden: [...mlp.arch.hidden] },
      frozenLayers: [...frozenLayers],
      loss,
      heartbeatMs: c.heartbeatMs,
      ring: { opTimeoutMs: c.ringOpTimeoutMs, heartbeatTimeoutMs: c.ringHeartbeatTimeoutMs, connectTimeoutMs: 5000 },
    };
  }

  /** Generation `generation` with the worker alone: from the coordinator's initial state, or from the worker's own at `progress`. */
  sendGeneration(generation: number, progress: Progress | null = null): void {
    const register = this.received.findLast((m) => m.type === 'register')!;
    const { spec, mlp, data } = this.job;
    const initial = {
      loop: INITIAL_LOOP,
      params: Float32Array.from(mlp.params),
      optimizer: createOptimizer(optimizerSpec(spec), mlp.layout.size).exportState(),
      bestParams: null,
      trainRows: data.train.rows,
    };
    const state = progress ? null : encodeSnapshot(initial);
    const head = state ? { id: ++this.transfers, bytes: state.byteLength } : null;
    this.send({
      type: 'generation',
      generation,
      rank: 0,
      world: 1,
      peers: [{ rank: 0, host: register.address.host, port: register.address.port }],
      source: 0,
      progress: progress ?? { step: 0, epochs: 0 },
      ...(head ? { state: head } : {}),
    });
    if (state && head) this.send({ type: 'chunk', id: head.id, offset: 0, data: state, sha256: createHash('sha256').update(state).digest('hex') });
  }

  /** The bytes of the transfer `head` announced (its chunks received so far, in order). */
  payload(head: { readonly id: number }): Uint8Array {
    const chunks = this.received.filter((m): m is Extract<WorkerMessage, { type: 'chunk' }> => m.type === 'chunk' && m.id === head.id);
    return Buffer.concat(chunks.map((c) => c.data));
  }

  /** Answers fetch `f` in chunks of `per` rows, in order. */
  answer(f: Fetch, per = 7): void {
    const t = this.job.data[f.split];
    const indices = uint32s(f.indices, 'indices');
    for (let offset = 0; offset < indices.length; offset += per) {
      const part = indices.slice(offset, offset + per);
      const features = new Float32Array(part.length * t.cols);
      const labels = t.labels instanceof Int32Array ? new Int32Array(part.length) : new Float32Array(part.length);
      part.forEach((i, k) => {
        features.set(t.features.subarray(i * t.cols, (i + 1) * t.cols), k * t.cols);
        labels[k] = t.labels[i]!;
      });
      this.send({ type: 'rows', id: f.id, split: f.split, offset, indices: bytesOf(part), features: bytesOf(features), labels: bytesOf(labels) });
    }
  }

  /** The first message received (from the `from`-th on) that `pred` accepts; rejects after `timeoutMs`. */
  async waitFor<T extends WorkerMessage>(what: string, pred: (m: WorkerMessage) => m is T, from = 0, timeoutMs = 20_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.received.slice(from).find(pred);
      if (m) return m;
      if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms; received: ${this.received.map((r) => r.type).join(', ')}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** Cuts the worker's connection, as a crashed coordinator would. */
  drop(): void {
    this.socket?.terminate();
  }

  async close(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    this.wss.close();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/** A logger that keeps its JSON lines, for tests that read them. */
export function recordingLogger(): { log: Logger; lines: () => Record<string, unknown>[] } {
  const out: string[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void out.push(s) });
  return { log, lines: () => out.map((s) => JSON.parse(s) as Record<string, unknown>) };
}

/** Type guards for waitFor. */
export const is =
  <K extends WorkerMessage['type']>(type: K, pred: (m: Extract<WorkerMessage, { type: K }>) => boolean = () => true) =>
  (m: WorkerMessage): m is Extract<WorkerMessage, { type: K }> =>
    m.type === type && pred(m as Extract<WorkerMessage, { type: K }>);
