/**
 * A worker's life as a pure state machine: decide(state, event, now) returns the next
 * state and the actions an executor (worker.ts) carries out; sockets, rings, timers and
 * the training loop live there, and report back as events. After membership.ts (the
 * coordinator's side), and tested the same way, with a fake clock.
 *
 * Two things go on at once. The link: down, connecting, or up; a lost connection is
 * retried after a backoff that doubles from minBackoffMs to maxBackoffMs and resets on
 * every open, but only once nothing runs, so that the worker registers with the state
 * its last generation ended with. And the work, one piece at a time in the order the
 * coordinator sent it: a job's setup, then its generations. A generation forms its ring,
 * syncs the source's state, trains, and either completes (its ring stays open until the
 * coordinator ends it: a slower peer may still be evaluating) or stops: told to, its
 * ring failed, or the link was lost. A stopped generation is reported (`stopped`, with
 * the last steps replayed before it), once; one told to stop before it started is
 * skipped and reported in its turn, after the work ahead of it, so that its report
 * carries the state that work ended with.
 *
 * Leaving (SIGTERM) finishes the current step, says `leave` and exits 3 (EXIT.interrupted:
 * the job goes on without this worker; 0 is for a job that is over). `finished`, a
 * `reject`, a job that cannot run, a TLS failure or no coordinator for
 * policy.coordinatorTimeoutMs end the worker too: the work is stopped, the link closed,
 * and `exit` comes once both are over.
 */
import {
  type Action,
  type Blame,
  DEFAULT_HEARTBEAT_MS,
  DEFAULT_POLICY,
  type Decision,
  type GenerationOrder,
  type GenerationPhase,
  type JobOrder,
  type Link,
  type Policy,
  type ProgressKind,
  type Queued,
  REPLAY_STEPS,
  STOPPED_REPLAY_STEPS,
  type Work,
  type WorkerEvent,
  type WorkerState,
} from './lifecycle-state.js';
import { EXIT } from '@ringtrain/protocol';

export * from './lifecycle-state.js';

type S<J extends JobOrder, G extends GenerationOrder> = WorkerState<J, G>;
type D<J extends JobOrder, G extends GenerationOrder> = Decision<J, G>;

const IDLE: Work = { kind: 'idle' };

function same<J extends JobOrder, G extends GenerationOrder>(state: S<J, G>, ...actions: Action<J, G>[]): D<J, G> {
  return { state, actions };
}

function then<J extends JobOrder, G extends GenerationOrder>(d: D<J, G>, next: (s: S<J, G>) => D<J, G>): D<J, G> {
  const n = next(d.state);
  return { state: n.state, actions: [...d.actions, ...n.actions] };
}

/** Messages go out only on an open link, and none once the worker is ending (its link is closing). */
function sending(s: S<JobOrder, GenerationOrder>): boolean {
  return s.link.kind === 'up' && s.exit === null;
}

/** Heartbeats and replays also wait for the coordinator's `job`: before it, what this worker holds may be another job's. */
function reporting(s: S<JobOrder, GenerationOrder>): boolean {
  return sending(s) && s.link.kind === 'up' && s.link.jobId !== null;
}

function progressFor(s: S<JobOrder, GenerationOrder>, kind: 'live' | 'held'): ProgressKind {
  return s.job !== null && s.link.kind === 'up' && s.link.jobId === s.job.id ? kind : 'none';
}

function heartbeat<J extends JobOrder, G extends GenerationOrder>(s: S<J, G>): Action<J, G>[] {
  return reporting(s) ? [{ type: 'send-heartbeat', generation: s.newestGeneration, progress: progressFor(s, 'live') }] : [];
}

/**
 * Tells the running generation to end: its ring is aborted (the loop stops at a step
 * boundary), or once it exists if it is still forming; a completed one's ring is
 * released. A no-op when it was told already.
 */
function stopGeneration<J extends JobOrder, G extends GenerationOrder>(s: S<J, G>, reason: string): D<J, G> {
  const w = s.work;
  if (w.kind !== 'generation' || w.stop !== null) return same(s);
  const state = { ...s, work: { ...w, stop: reason } };
  switch (w.phase) {
    case 'forming':
      return same(state);
    case 'completed':
      return same(state, { type: 'release-ring', generation: w.generation });
    case 'syncing':
    case 'training':
      return same(state, { type: 'abort-ring', generation: w.generation, reason });
  }
}

/** Reports `generation` stopped, once: the last step records first, then the report. */
function reportStopped<J extends JobOrder, G extends GenerationOrder>(s: S<J, G>, generation: number, code: string, reason: string, blame: Blame = {}): D<J, G> {
  const state = { ...s, reportedUpTo: Math.max(s.reportedUpTo, generation) };
  if (!sending(s)) return same(state);
  return same(
    state,
    ...heartbeat(s),
    ...(reporting(s) ? [{ type: 'replay', count: STOPPED_REPLAY_STEPS, generation: s.newestGeneration, progress: progressFor(s, 'live') } as const] : []),
    { type: 'report-stopped', generation, code, reason, progress: progressFor(s, 'held'), ...blame },
  );
}

/** The worker must end with `code`: its work stops, its link closes, and `exit` follows once both are over. */
function requestExit<J extends JobOrder, G extends GenerationOrder>(s: S<J, G>, code: number, error: Error | null, stopReason: string, closeReason: string): D<J, G> {
  if (s.exit !== null) return same(s);
  const stopped = stopGeneration<J, G>({ ...s, exit: { code, error }, queue: [] }, stopReason);
  const closing: Action<J, G>[] = s.link.kind === 'down' ? [] : [{ type: 'close-channel', reason: closeReason }];
  return settle({ state: stopped.state, actions: [...stopped.actions, ...closing] });
}

/** Says goodbye (the coordinator regroups without this worker) and exits EXIT.interrupted. */
function leaveNow<J extends JobOrder, G extends GenerationOrder>(s: S<J, G>, flush: boolean): D<J, G> {
  const goodbye: Action<J, G>[] = sending(s) ? [...(flush ? heartbeat(s) : []), { type: 'send-leave', progress: progressFor(s, 'held') }] : [];
  return then(same(s, ...goodbye), (t) => requestExit(t, EXIT.interrupted, null, 'worker leaving', 'leaving'));
}

/** With nothing running: the exit once the link is down, else the next queued work, else a reconnection that is due. */
function settle<J extends JobOrder, G extends GenerationOrder>(d: D<J, G>): D<J, G> {
  let s = d.state;
  const actions = [...d.actions];
  while (s.work.kind === 'idle') {
    const exit = s.exit;
    if (exit !== null) {
      if (s.link.kind === 'down' && !s.ended) {
        s = { ...s, ended: true };
        actions.push({ type: 'exit', code: exit.code, error: exit.error });
      }
      break;
    }
    const [item, ...rest] = s.queue;
    if (item === undefined) {
      if (s.link.kind === 'down' && s.link.due) {
        s = { ...s, link: { kind: 'connecting' } };
        actions.push({ type: 'connect' });
      }
      break;
    }
    s = { ...s, queue: rest };
    const next = dequeue(s, item);
    s = next.state;
    actions.push(...next.actions);
  }
  return { state: s, actions };
}

function dequeue<J extends JobOrder, G extends GenerationOrder>(s: S<J, G>, item: Queued<J, G>): D<J, G> {
  switch (item.kind) {
    case 'job':
      // The same job again (a reconnection): its state is kept.
      if (s.job?.id === item.order.jobId) return same(s);
      return same({ ...s, work: { kind: 'setup', jobId: item.order.jobId } }, { type: 'setup-job', order: item.order });
    case 'cancelled':
      return s.reportedUpTo < item.generation ? reportStopped(s, item.generation, 'GENERATION_CANCELLED', 'stopped before it started') : same(s);
    case 'generation': {
      const g = item.order.generation;
      if (s.job === null) return same(s);
      if (g <= s.cancelledUpTo) return reportStopped(s, g, 'GENERATION_CANCELLED', 'stopped before it started');
      // Its ring endpoint refuses a generation older than one it has served; no ring is tried.
      if (g <= s.reportedUpTo) return reportStopped(s, g, 'GENERATION_STALE', `generation ${g} is older than generation ${s.reportedUpTo}, already reported stopped`);
      if (s.leaving) return leaveNow(s, true);
      return same({ ...s, work: { kind: 'generation', generation: g, phase: 'forming', stop: null, stepped: false } }, { type: 'start-generation', order: item.order });
    }
  }
}

function enqueue<J extends JobOrder, G extends GenerationOrder>(s: S<J, G>, item: Queued<J, G>): D<J, G> {
  return settle(same({ ...s, queue: [...s.queue, item] }));
}

/** Moves the running generation from phase `from` to `to`; anything else is stale and ignored. */
function advance<J extends JobOrder, G extends GenerationOrder>(s: S<J, G>, from: GenerationPhase, to: GenerationPhase): S<J, G> | null {
  const w = s.work;
  return w.kind === 'generation' && w.phase === from ? { ...s, work: { ...w, phase: to } } : null;
}

export function decide<J extends JobOrder, G extends GenerationOrder>(s: S<J, G>, e: WorkerEvent<J, G>, now: number, policy: Policy = DEFAULT_POLICY): D<J, G> {
  if (s.ended) return same(s);
  switch (e.type) {
    case 'start':
      return s.link.kind === 'down' ? settle(same({ ...s, link: { kind: 'down', due: true }, unreachableSince: now })) : same(s);
    case 'connected':
      if (s.exit !== null) return same({ ...s, link: { kind: 'up', jobId: null } }, { type: 'close-channel', reason: 'worker exiting' });
      return same({ ...s, link: { kind: 'up', jobId: null }, backoffMs: policy.minBackoffMs, unreachableSince: null }, { type: 'register', generation: s.newestGeneration });
    case 'disconnected':
      return disconnected(s, e.error, e.fatal, now, policy);
    case 'retry':
      return s.link.kind === 'down' ? settle(same({ ...s, link: { kind: 'down', due: true } })) : same(s);
    case 'job': {
      const link: Link = s.link.kind === 'up' ? { kind: 'up', jobId: e.jobId } : s.link;
      return s.exit !== null ? same({ ...s, link }) : enqueue({ ...s, link }, { kind: 'job', order: e });
    }
    case 'generation': {
      const t = { ...s, newestGeneration: Math.max(s.newestGeneration, e.generation) };
      return t.exit !== null ? same(t) : enqueue(t, { kind: 'generation', order: e });
    }
    case 'stop': {
      if (s.work.kind === 'generation' && s.work.generation === e.generation) return stopGeneration(s, e.reason);
      // Not started yet (queued behind other work), or over: reported in its turn, once.
      const t = { ...s, cancelledUpTo: Math.max(s.cancelledUpTo, e.generation) };
      return t.exit !== null ? same(t) : enqueue(t, { kind: 'cancelled', generation: e.generation });
    }
    case 'reject': {
      const log: Action<J, G> = { type: 'log', level: 'error', msg: 'the coordinator refused this worker', fields: { code: e.code, reason: e.reason } };
      return then(same(s, log), (t) => requestExit(t, refusalExit(e.code), null, 'worker exiting', 'refused'));
    }
    case 'upload':
      return same(s, { type: 'upload-state', generation: e.generation });
    case 'finished': {
      const log: Action<J, G> = { type: 'log', level: 'info', msg: 'job finished', fields: { reason: e.reason } };
      return then(same(s, log), (t) => requestExit(t, EXIT.done, null, 'job finished', 'finished'));
    }
    case 'job-ready':
      if (s.work.kind !== 'setup') return same(s);
      return settle(same({ ...s, work: IDLE, job: { id: e.jobId, heartbeatMs: e.heartbeatMs } }));
    case 'job-failed': {
      if (s.work.kind !== 'setup') return same(s);
      const log: Action<J, G> = { type: 'log', level: 'error', msg: 'cannot run this job', fields: { err: e.error } };
      return then(same({ ...s, work: IDLE }, log), (t) => requestExit(t, EXIT.usage, null, 'worker exiting', 'bad job'));
    }
    case 'ring-formed': {
      const t = advance(s, 'forming', 'syncing');
      if (t === null || t.work.kind !== 'generation') return same(s);
      return t.work.stop === null ? same(t) : same(t, { type: 'abort-ring', generation: t.work.generation, reason: t.work.stop });
    }
    case 'synced': {
      const t = advance(s, 'syncing', 'training');
      if (t === null) return same(s);
      return same(t, ...(reporting(t) ? [{ type: 'replay', count: REPLAY_STEPS, generation: t.newestGeneration, progress: progressFor(t, 'live') } as const] : []));
    }
    case 'step': {
      const w = s.work;
      if (w.kind !== 'generation' || w.phase !== 'training') return same(s);
      const t = w.stepped ? s : { ...s, work: { ...w, stepped: true } };
      return s.leaving ? stopGeneration(t, 'worker leaving') : same(t);
    }
    case 'trained': {
      const t = advance(s, 'training', 'completed');
      if (t === null || t.work.kind !== 'generation') return same(s);
      const g = t.work.generation;
      // The last step records go before the result.
      const done: Action<J, G>[] = sending(t) ? [...heartbeat(t), { type: 'send-done', generation: g }] : [];
      return same(t, ...done, ...(t.work.stop !== null ? [{ type: 'release-ring', generation: g } as const] : []));
    }
    case 'generation-ended':
      return generationEnded(s, e);
    case 'tick': {
      if (s.exit === null && s.unreachableSince !== null && policy.coordinatorTimeoutMs !== null && now - s.unreachableSince >= policy.coordinatorTimeoutMs) {
        return giveUp(s, now - s.unreachableSince);
      }
      if (now - s.lastBeatAt < (s.job?.heartbeatMs ?? DEFAULT_HEARTBEAT_MS)) return same(s);
      const t = { ...s, lastBeatAt: now };
      return same(t, ...heartbeat(t));
    }
    case 'leave':
      return leave(s);
    default: {
      const never: never = e;
      return never;
    }
  }
}

/** A refusal's exit status: the job over; this worker excluded (a fault of this process or its machine); or a usage error (WORKER_LIMIT: more workers than cluster.maxWorkers). */
function refusalExit(code: string): number {
  if (code === 'JOB_DONE') return EXIT.done;
  if (code === 'PEER_UNREACHABLE' || code === 'SOURCE_INVALID') return EXIT.excluded;
  return EXIT.usage;
}

/** No coordinator for policy.coordinatorTimeoutMs: the job is over and its coordinator gone, or it never came. */
function giveUp<J extends JobOrder, G extends GenerationOrder>(s: S<J, G>, forMs: number): D<J, G> {
  const log: Action<J, G> = {
    type: 'log',
    level: 'error',
    msg: `no coordinator for ${Math.round(forMs / 1000)} s (--coordinator-timeout); exiting with code ${EXIT.noCoordinator}`,
    fields: {},
  };
  return then(same(s, log), (t) => requestExit(t, EXIT.noCoordinator, null, 'no coordinator', 'no coordinator'));
}

function disconnected<J extends JobOrder, G extends GenerationOrder>(s: S<J, G>, error: Error, fatal: boolean, now: number, policy: Policy): D<J, G> {
  const wasUp = s.link.kind === 'up';
  let d: D<J, G> = same({ ...s, link: { kind: 'down', due: false }, unreachableSince: wasUp ? now : s.unreachableSince });
  if (wasUp) {
    // Its requests and generations went with it: the coordinator has dropped this worker from them.
    d = then(same({ ...d.state, queue: [] }, { type: 'cancel-fetches', reason: `coordinator connection lost: ${error.message}` }), (t) =>
      stopGeneration(t, 'coordinator connection lost'),
    );
  }
  if (fatal) return then(d, (t) => requestExit(t, EXIT.usage, error, 'worker exiting', 'fatal'));
  if (d.state.exit !== null) return settle(d);
  const log: Action<J, G> = wasUp
    ? { type: 'log', level: 'warn', msg: 'lost the coordinator; reconnecting', fields: { err: error } }
    : { type: 'log', level: 'debug', msg: 'coordinator not reachable', fields: { err: error, retryMs: d.state.backoffMs } };
  const backoffMs = Math.min(policy.maxBackoffMs, d.state.backoffMs * 2);
  return same({ ...d.state, backoffMs }, ...d.actions, log, { type: 'schedule-retry', delayMs: d.state.backoffMs });
}

function generationEnded<J extends JobOrder, G extends GenerationOrder>(s: S<J, G>, e: { readonly code: string; readonly reason: string } & Blame): D<J, G> {
  const w = s.work;
  if (w.kind !== 'generation') return same(s);
  const t = { ...s, work: IDLE };
  // A completed generation was ended by the coordinator: nothing to report.
  if (w.phase === 'completed') return t.leaving ? requestExit(t, EXIT.interrupted, null, 'worker leaving', 'leaving') : settle(same(t));
  if (t.leaving) return leaveNow(t, true);
  const blame: Blame = { ...(e.unreachable !== undefined ? { unreachable: e.unreachable } : {}), ...(e.invalidSource !== undefined ? { invalidSource: e.invalidSource } : {}) };
  return settle(reportStopped(t, w.generation, e.code, e.reason, blame));
}

function leave<J extends JobOrder, G extends GenerationOrder>(s: S<J, G>): D<J, G> {
  if (s.leaving) return same(s);
  const t = { ...s, leaving: true };
  const log: Action<J, G> = { type: 'log', level: 'info', msg: 'leaving after the current step', fields: {} };
  if (t.exit !== null) return same(t, log);
  const w = t.work;
  if (w.kind === 'generation') {
    // A generation that has trained finishes its step first (`step`); a completed one waits for the coordinator to end it.
    if (w.phase === 'completed' || (w.phase === 'training' && w.stepped)) return same(t, log);
    return then(same(t, log), (u) => stopGeneration(u, 'worker leaving'));
  }
  return then(same(t, log), (u) => leaveNow(u, false));
}
