/**
 * Carries out what membership.ts decides. `apply(event)` asks decide() for the next
 * state and its actions, and executes each in order: messages to workers (stop,
 * generation, reject), a probe of a ring endpoint (answered with a `probed` event),
 * closing a connection, the job's end (outputs.ts), and recording the events decide
 * returned (events.ts). It records nothing of its own and infers nothing from the
 * state: what happened is what decide said.
 *
 * It also keeps what the job's other parts ask of the newest generation: who is in it,
 * by rank, and whose state it took (admission.ts's `Formed`).
 */
import type { Logger } from 'pino';
import type { ProbeResult } from '@ringtrain/allreduce';
import type { Formed } from './admission.js';
import type { Checkpoints } from './checkpoints.js';
import type { Connections } from './connections.js';
import { unhandled } from './errors.js';
import type { EventLog } from './events.js';
import type { RunHistory } from './history.js';
import type { LatestWriter } from './latest-writer.js';
import { type Action, type Address, decide, type MembershipEvent, type MembershipState, type Policy } from './membership.js';

export interface ExecutorOptions {
  readonly policy: Policy;
  readonly initial: MembershipState;
  readonly connections: Pick<Connections, 'send' | 'drop' | 'transfer'>;
  readonly events: EventLog;
  readonly checkpoints: Pick<Checkpoints, 'baseline' | 'source'>;
  readonly history: Pick<RunHistory, 'generationFormed'>;
  /** coordinator.json's writer: each generation formed is persisted. */
  readonly generations: LatestWriter<number>;
  /** Runs the ring's handshake against a worker's ring address (libs/allreduce's probeEndpoint). */
  readonly probe: (address: Address) => Promise<ProbeResult>;
  /** The job stops for good: `source`'s state (null: the coordinator's) is saved, then the outputs (outputs.ts). */
  readonly stopJob: (source: string | null, reason: string) => void;
  readonly log: Logger;
  /** The job's phase changed. */
  readonly changed: () => void;
}

export class Executor {
  private state: MembershipState;
  private newest: Formed | null = null;
  /** Workers whose ring address the coordinator is checking now. */
  private readonly probing = new Set<string>();

  constructor(private readonly o: ExecutorOptions) {
    this.state = o.initial;
  }

  get membership(): MembershipState {
    return this.state;
  }

  /** The newest generation formed, by rank (a worker names the peer it could not reach by rank), and its state's source. */
  get formed(): Formed | null {
    return this.newest;
  }

  apply(event: MembershipEvent): void {
    const before = this.state.phase;
    const d = decide(this.state, event, Date.now(), this.o.policy);
    this.state = d.state;
    for (const a of d.actions) this.execute(a);
    if (this.state.phase !== before) {
      this.o.log.info({ phase: this.state.phase, generation: this.state.generation }, 'job state');
      this.o.changed();
    }
  }

  private execute(a: Action): void {
    const { connections } = this.o;
    switch (a.type) {
      case 'record':
        this.o.events.record(a.kind, a.message);
        return;
      case 'stop-ring':
        for (const id of a.ids) connections.send(id, { type: 'stop', generation: a.generation, reason: a.reason });
        return;
      case 'form':
        this.form(a);
        return;
      case 'wait':
        // Nothing to send: the workers wait for a `generation`, and the status says why.
        return;
      case 'probe':
        this.probe(a);
        return;
      case 'reject':
        connections.send(a.id, { type: 'reject', code: a.code, reason: a.reason });
        return;
      case 'drop':
        connections.drop(a.id, a.reason);
        return;
      case 'save-and-finish':
        // The job stopping itself is an error of the job's: the log says so at error, with its code.
        if (a.error) this.o.log.error({ code: a.error.code, generation: this.state.generation }, `the job stops: ${a.reason}`);
        this.o.stopJob(a.source.kind === 'member' ? a.source.id : null, a.reason);
        return;
      default:
        unhandled(a);
    }
  }

  /** Every member gets its rank, the ring and the state's source (and, when the coordinator is the source, rank 0 gets the state). */
  private form(a: Extract<Action, { type: 'form' }>): void {
    const baseline = this.o.checkpoints.baseline;
    const peers = a.ranks.map((r) => ({ rank: r.rank, host: r.address.host, port: r.address.port }));
    const sourceId = a.source.kind === 'member' ? a.source.id : null;
    const sourceRank = sourceId === null ? 0 : a.ranks.find((r) => r.id === sourceId)!.rank;
    // What every member checks the state it receives against: the source's claim, or the coordinator's own state.
    const own = baseline.progress;
    const progress = sourceId === null ? own : (this.state.members.find((m) => m.id === sourceId)?.held ?? own);
    for (const r of a.ranks) {
      const m = { type: 'generation' as const, generation: a.generation, rank: r.rank, world: a.ranks.length, peers, source: sourceRank, progress };
      if (sourceId !== null || r.rank !== 0) {
        this.o.connections.send(r.id, m);
        continue;
      }
      // The coordinator's own state goes to rank 0 as a transfer after its generation message.
      this.o.connections.transfer(r.id, (state) => ({ ...m, state }), this.o.checkpoints.source()).catch((err: unknown) => {
        this.o.log.warn({ err, worker: r.id, generation: a.generation }, 'the state transfer to the source rank failed');
      });
    }
    this.newest = { generation: a.generation, ranks: a.ranks, source: sourceId };
    this.o.history.generationFormed({ generation: a.generation, step: progress.step, time: new Date().toISOString(), world: a.ranks.length });
    this.o.generations.set(a.generation);
  }

  /** Checks the ring address `a.reporter` could not connect to; membership decides on the answer. */
  private probe(a: Extract<Action, { type: 'probe' }>): void {
    if (this.probing.has(a.id)) return;
    this.probing.add(a.id);
    void this.o.probe(a.address).then(({ reachable, detail }) => {
      this.probing.delete(a.id);
      if (this.state.phase === 'done') return;
      if (reachable) this.o.log.info({ worker: a.id, reporter: a.reporter }, `${a.reporter} could not connect to ${a.id} at ${a.address.host}:${a.address.port}, but the coordinator can`);
      this.apply({ type: 'probed', id: a.id, address: a.address, reporter: a.reporter, reachable, detail });
    });
  }
}
