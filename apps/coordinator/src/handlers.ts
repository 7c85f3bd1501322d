/**
 * What each worker message does. connections.ts hands over each decoded message (its
 * fields within the job's bounds already) and `route` gives it to its handler; the
 * switch ends in a `never` check, so a message type without a handler does not compile.
 * What depends on who sends a message is checked first, with admission.ts: a
 * ProtocolError thrown here closes the connection with its code. Then the message
 * becomes a membership event (executor.ts), rows to serve (rows.ts), a checkpoint
 * (checkpoints.ts) or the job's end (outputs.ts).
 */
import type { Logger } from 'pino';
import {
  type Address as WireAddress,
  type CoordinatorMessage,
  type IncomingTransfer,
  type JobLimits,
  type Progress as WireProgress,
  PROTOCOL_VERSION,
  ProtocolError,
  type TransferHead,
  uint32s,
  type WorkerMessage,
} from '@ringtrain/protocol';
import type { OpenedJob } from '@ringtrain/train';
import { fetchIssue, generationIssue, memberAt, type Role, roleOf, sourceAt } from './admission.js';
import type { Checkpoints, Receiving } from './checkpoints.js';
import type { Conn, Connections } from './connections.js';
import { unhandled } from './errors.js';
import type { Executor } from './executor.js';
import type { RunHistory } from './history.js';
import type { Address, Progress } from './membership.js';
import type { Outputs } from './outputs.js';
import { serveRows } from './rows.js';
import type { RateEstimate } from './views.js';

/**
 * membership.ts's Address and Progress are the protocol's shapes under the coordinator's
 * names (membership.ts imports nothing; its comment says why): this fails to compile if
 * the two ever differ.
 */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Holds<T extends true> = T;
export type WireShapesMatch = [Holds<Same<Address, WireAddress>>, Holds<Same<Progress, WireProgress>>];

/**
 * The shortest deadline a rank has to connect to its ring: its predecessor (the rank it dials) may still be
 * starting its endpoint or finishing the previous generation's stop, so never under 5 s,
 * and never under the job's stopTimeoutMs.
 */
export const MIN_RING_CONNECT_MS = 5_000;

export interface HandlerContext {
  readonly job: OpenedJob;
  readonly jobId: string;
  readonly limits: JobLimits;
  readonly log: Logger;
  readonly connections: Connections;
  readonly executor: Executor;
  readonly checkpoints: Checkpoints;
  readonly outputs: Outputs;
  readonly history: RunHistory;
  readonly rate: RateEstimate;
  /** Something the views show changed (steps or epochs recorded). */
  readonly changed: () => void;
}

type Message<T extends WorkerMessage['type']> = Extract<WorkerMessage, { type: T }>;

/** The id of a registered connection; anything but `register` before it is refused. */
function registered(conn: Conn): string {
  if (conn.id === null) throw new ProtocolError('PROTOCOL_BAD_MESSAGE', 'register first');
  return conn.id;
}

export class WorkerMessages {
  constructor(private readonly c: HandlerContext) {}

  route(conn: Conn, m: WorkerMessage): void {
    switch (m.type) {
      case 'register':
        return this.register(conn, m);
      case 'heartbeat':
        return this.heartbeat(conn, registered(conn), m);
      case 'fetch':
        return this.fetch(conn, registered(conn), m);
      case 'stopped':
        return this.stopped(conn, registered(conn), m);
      case 'checkpoint':
        return this.checkpoint(conn, registered(conn), m);
      case 'state':
        return this.state(conn, registered(conn), m);
      case 'done':
        return this.done(conn, registered(conn), m);
      case 'chunk':
        registered(conn);
        return this.c.connections.chunk(conn, m);
      case 'ack':
        registered(conn);
        return conn.outgoing.get(m.id)?.ack(m);
      case 'leave':
        return this.leave(registered(conn));
      default:
        return unhandled(m);
    }
  }

  /** A worker joins (or rejoins under its id): it gets the job, and membership decides. */
  private register(conn: Conn, m: Message<'register'>): void {
    const { connections, executor, jobId } = this.c;
    if (conn.id !== null) throw new ProtocolError('PROTOCOL_BAD_MESSAGE', 'registered twice');
    const leap = generationIssue(m.generation, executor.membership.generation);
    if (leap) throw new ProtocolError('PROTOCOL_BAD_MESSAGE', `register: ${leap}`);
    connections.adopt(conn, m.id, m.backend, m.address);
    const held = m.held && m.held.jobId === jobId ? m.held.progress : null;
    conn.step = held?.step ?? null;
    connections.send(m.id, jobMessage(this.c.job, jobId));
    executor.apply({ type: 'join', id: m.id, address: m.address, held, seenGeneration: m.generation });
  }

  private heartbeat(conn: Conn, id: string, m: Message<'heartbeat'>): void {
    const { executor, history, rate } = this.c;
    if (m.backend) conn.backend = m.backend;
    conn.timing = m.timing.steps > 0 ? m.timing : conn.timing;
    if (m.memory) conn.memory = m.memory;
    conn.step = m.progress?.step ?? conn.step;
    // Step and epoch records are the ring's: those of a worker outside the newest ring are not the job's.
    if (executor.formed?.ranks.some((r) => r.id === id)) {
      rate.observe(m.steps, Date.now());
      if (history.record(m.steps, m.epochs)) this.c.changed();
    }
    executor.apply({ type: 'heartbeat', id, held: m.progress });
  }

  private fetch(conn: Conn, id: string, m: Message<'fetch'>): void {
    const { executor, connections, limits, job, log } = this.c;
    const refused = fetchIssue(executor.formed, id, m.split, m.indices.byteLength / 4, limits, conn.serving.has(m.split));
    if (refused) throw new ProtocolError(refused.code, refused.reason);
    const indices = uint32s(m.indices, 'indices');
    conn.serving.add(m.split);
    serveRows(connections.rowsTo(conn), job.data[m.split], { id: m.id, split: m.split, indices }, () => conn.serving.delete(m.split)).catch((err: unknown) =>
      log.error({ err, worker: id, split: m.split }, 'cannot serve rows'),
    );
  }

  private stopped(conn: Conn, id: string, m: Message<'stopped'>): void {
    const { executor } = this.c;
    conn.step = m.progress?.step ?? conn.step;
    const formed = executor.formed;
    executor.apply({
      type: 'stopped',
      id,
      generation: m.generation,
      held: m.progress,
      reason: `${m.code}: ${m.reason}`,
      unreachable: memberAt(formed, m.generation, m.unreachable),
      invalidSource: sourceAt(formed, m.generation, m.invalidSource),
    });
  }

  /** Who `id` is for a message of `generation` (admission.ts), and the job's current generation. */
  private roleOf(id: string, generation: number): { role: Role; current: number } {
    const { executor } = this.c;
    const current = executor.membership.generation;
    return { role: roleOf(executor.formed, current, id, generation), current };
  }

  private checkpoint(conn: Conn, id: string, m: Message<'checkpoint'>): void {
    const { outputs, checkpoints, connections } = this.c;
    const { role, current } = this.roleOf(id, m.generation);
    // A late checkpoint's bytes are still on their way: taken and dropped, so that its sender's transfer ends.
    if (role === 'late' || (role === 'rank0' && outputs.finishing)) return void connections.receive(conn, m.state, async () => {});
    if (role !== 'rank0') throw new ProtocolError('PROTOCOL_ROLE', `checkpoint of generation ${m.generation}: only rank 0 of generation ${current} checkpoints`);
    this.stream(conn, m.state, checkpoints.receive(m.state.bytes, m.reason));
  }

  /** The answer to `upload`, from the worker asked only: streamed into the `stop` checkpoint. */
  private state(conn: Conn, id: string, m: Message<'state'>): void {
    const { outputs } = this.c;
    const receiving = outputs.uploading(id, m.generation, m.state.bytes);
    if (!receiving) throw new ProtocolError('PROTOCOL_ROLE', `state of generation ${m.generation}: not asked for`);
    this.stream(conn, m.state, receiving);
  }

  /** Transfer `head` from `conn` into a checkpoint being received. */
  private stream(conn: Conn, head: TransferHead, receiving: Receiving): void {
    const t = this.c.connections.receive(conn, head, receiving.push);
    t.done.then(
      () => void receiving.finish(),
      (err: unknown) => receiving.abort(err as Error),
    );
  }

  /**
   * Every member sends its result; rank 0's is the one taken, its final weights streamed
   * after it into model/ as they arrive (outputs.ts, final-weights.ts: each chunk checked
   * finite, the whole never held). The confusion matrix for report.html comes in the
   * result itself, checked at the wire against the job (job-limits.ts).
   */
  private done(conn: Conn, id: string, m: Message<'done'>): void {
    const { outputs, checkpoints, connections } = this.c;
    const { role, current } = this.roleOf(id, m.generation);
    if (role === 'outsider') throw new ProtocolError('PROTOCOL_ROLE', `done of generation ${m.generation}: ${id} is not a member of generation ${current}`);
    if (role !== 'late') outputs.noteDone(id, m.generation);
    const drain = (): void => void (m.params && connections.receive(conn, m.params, async () => {}));
    if (role === 'late' || role === 'member' || outputs.finishing) return drain();
    if (!m.params) throw new ProtocolError('PROTOCOL_BAD_MESSAGE', 'done: rank 0 sends its final weights');
    const base = checkpoints.baseline.progress.step;
    if (m.result.steps < base) throw new ProtocolError('PROTOCOL_BAD_MESSAGE', `done: ${m.result.steps} steps, behind the coordinator's checkpoint at step ${base}`);
    // Null: an earlier `done`'s weights are still arriving (a rank 0 of a newer ring); they are the ones taken.
    const receiving = outputs.receiveFinal(m);
    if (!receiving) return drain();
    let t: IncomingTransfer;
    try {
      t = connections.receive(conn, m.params, receiving.push);
    } catch (err) {
      receiving.abort(err as Error);
      throw err;
    }
    t.done.then(receiving.finish, (err: unknown) => receiving.abort(err as Error));
  }

  private leave(id: string): void {
    this.c.connections.forget(id);
    this.c.executor.apply({ type: 'leave', id });
  }
}

/** The `job` message a registered worker gets: the resolved spec, the dataset's shape, the model, the deadlines. */
export function jobMessage(job: OpenedJob, jobId: string): CoordinatorMessage {
  const { spec, data, arch, frozenLayers, loss } = job;
  const t = data.train;
  const c = spec.cluster;
  return {
    type: 'job',
    protocol: PROTOCOL_VERSION,
    jobId,
    spec: spec as unknown as Record<string, unknown>,
    dataset: {
      source: data.source,
      cols: t.cols,
      featureNames: [...t.featureNames],
      ...(t.imageShape ? { imageShape: t.imageShape } : {}),
      task: data.task.kind === 'classification' ? { kind: 'classification', classes: [...data.task.classes] } : { kind: 'regression', target: data.task.target },
      rows: { train: t.rows, validation: data.validation.rows, test: data.test.rows },
    },
    arch: { ...arch, hidden: [...arch.hidden] },
    frozenLayers: [...frozenLayers],
    loss,
    heartbeatMs: c.heartbeatMs,
    ring: { opTimeoutMs: c.ringOpTimeoutMs, heartbeatTimeoutMs: c.ringHeartbeatTimeoutMs, connectTimeoutMs: Math.max(MIN_RING_CONNECT_MS, c.stopTimeoutMs) },
  };
}
