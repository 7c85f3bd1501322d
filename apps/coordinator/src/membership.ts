/**
 * Membership as a pure state machine: decide(state, event, now) returns the next state
 * and the actions an executor carries out (sockets, timers and logs live there, not
 * here), after TorchElastic's rendezvous. Tests drive it with a fake clock.
 *
 * A generation is one ring: its members, in rank order, are the alive workers in the
 * order they joined, at most maxWorkers. Ranks are valid for one generation only.
 *
 * Every change while training (a join, a graceful leave, a loss found by a ring
 * deadline, a closed connection or a missed heartbeat, a pause or a stop) ends the
 * generation in two phases. `stopping`: the members are told to stop at the next step
 * boundary (their ring is aborted) and each reports the state it holds; a member that
 * does not report within stopTimeoutMs is lost. Then the next generation forms from the
 * survivors and newcomers, and the most advanced state (a member's, or the
 * coordinator's own checkpoint when it is ahead of every member) goes to everyone
 * (invariant 2 of DESIGN.md). Below minWorkers the job waits, and says why.
 *
 * A ring that cannot form because a member could not connect to another's advertised
 * address would fail the same way every time (a wrong advertised host, a network policy
 * closing the peer port). The reporter's word alone cannot tell whose side is broken, so
 * the coordinator checks the address itself (a `probe`: the ring's handshake, so that
 * only a ring endpoint of this job counts); if it cannot complete it either, that
 * member is excluded for exclusionMs and the others go on without it.
 *
 * A member's progress is a claim until its state arrives: every member checks the state
 * the source broadcasts (this job's shape, finite numbers, the progress it was chosen
 * for) and reports a source whose state does not verify. That source claimed what it
 * cannot back up: it is excluded for exclusionMs, and the next generation takes the
 * most advanced of the others. Its own report names nobody but itself, which only
 * corrects its claim.
 *
 * What happened is decided here too: every decision returns, as `record` actions, the
 * events the job's event list and log show (a worker joined, was refused, excluded,
 * lost; a generation formed or is stopping). The executor records exactly those and
 * infers nothing, so a worker refused is recorded as refused and nothing else.
 *
 * No livelock. Regrouping is the answer to a fault only if the fault passes: one that
 * comes back every time (a transfer that always breaks the same connection, a worker
 * that crashes at the same step) would regroup for ever, the job's state never saved
 * past the last checkpoint. So a generation that fails is counted, by why (`failures`):
 * a member lost (its connection closed, silent, no state report in time, or back
 * under its id while the generation ran), a member whose ring failed (its `stopped`
 * code: RING_TIMEOUT, ROWS_TIMEOUT, ...; not RING_ABORTED, which is being told to
 * stop), a member excluded. Each generation counts once, however many faults its end
 * sees; a join, a leave, a pause or a stop is no failure. Durable progress (a
 * checkpoint past the coordinator's state) clears the counts. When one reason reaches
 * maxFailedGenerations, and at least a minute after the first (a fault that passes within
 * a minute, pods still finding each other, is not a livelock), the job stops for good
 * once the generation has stopped, as a
 * `stop` would (the most advanced state saved), with GENERATION_LIVELOCK naming the
 * reason, the count and the step.
 */

/*
 * Address and Progress are declared here and in libs/protocol (messages.ts, zod schemas
 * and the types inferred from them). This file imports nothing, by design: it is the
 * job's logic, testable with plain objects and a fake clock, so it keeps its own minimal
 * declarations, and these are the coordinator's one name for each (its files import
 * them from here, never the protocol's). The protocol's inferred types are the same
 * shapes: handlers.ts, where wire messages become membership events, fails to compile if
 * either stops being assignable to the other, so the two cannot drift apart.
 */
export interface Address {
  readonly host: string;
  readonly port: number;
}

/** How far a state has got: committed steps, then epochs recorded. */
export interface Progress {
  readonly step: number;
  readonly epochs: number;
}

export function compareProgress(a: Progress | null, b: Progress | null): number {
  if (a === null || b === null) return a === b ? 0 : a === null ? -1 : 1;
  return a.step !== b.step ? a.step - b.step : a.epochs - b.epochs;
}

export interface Member {
  readonly id: string;
  readonly address: Address;
  /** Order of arrival: ranks follow it, so they stay stable across generations. */
  readonly joinOrder: number;
  readonly lastSeen: number;
  /** The state this worker holds for this job, if any. */
  readonly held: Progress | null;
}

export interface Policy {
  readonly minWorkers: number;
  readonly maxWorkers: number;
  /** A member silent this long is lost. */
  readonly heartbeatTimeoutMs: number;
  /** A member that has not reported its state this long after being told to stop is lost. */
  readonly stopTimeoutMs: number;
  /** The first generation waits for this many workers (at least minWorkers); later ones need minWorkers. */
  readonly startWorkers?: number;
  /** How long an excluded member (its ring address unreachable, its state invalid) stays out; default 60 s. */
  readonly exclusionMs?: number;
  /** Generations failed for one reason, with no checkpoint between, that stop the job (GENERATION_LIVELOCK); 0: never; default 5. */
  readonly maxFailedGenerations?: number;
  /** How long after the first of those failures the job may stop for them at the earliest; default 60 s. */
  readonly livelockWindowMs?: number;
  /** The exact reduction's micro-batches per step (libs/train exact-step.ts): ranks past them idle, which a generation's event says. */
  readonly microBatches?: number;
}

export const DEFAULT_EXCLUSION_MS = 60_000;
/**
 * Five: a fault that passes (a worker preempted, a network blip) rarely hits five
 * generations in a row before the next checkpoint; one that does not pass is found
 * within five regroups, seconds to minutes, not left to loop for hours.
 */
export const DEFAULT_MAX_FAILED_GENERATIONS = 5;
/**
 * A fault that passes within a minute is not a livelock: pods starting at once can fail
 * to reach each other for tens of seconds (a DNS name not yet served, an address not yet
 * routed), five 5 s ring deadlines in a row. So a reason stops the job only once it has
 * failed maxFailedGenerations times and for at least this long; a fault that returns
 * every few minutes (the issue's checkpoint that broke every 50 steps) is far past it.
 */
export const DEFAULT_LIVELOCK_WINDOW_MS = 60_000;

/** Why the job stopped itself, when it did: a code and what it says. */
export interface JobError {
  readonly code: 'GENERATION_LIVELOCK';
  readonly message: string;
}

/** The generations that failed since the coordinator's state last advanced (a checkpoint written). */
export interface Failures {
  /** By reason (WORKER_LOST, a `stopped` code: RING_TIMEOUT, ROWS_TIMEOUT, ...; an exclusion's code): how many, and when (ms) the first was. */
  readonly counts: Readonly<Record<string, { readonly count: number; readonly since: number }>>;
  /** The newest generation counted: each fails once, whatever else goes wrong as it ends. */
  readonly generation: number;
  /** A reason reached maxFailedGenerations: once the failing generation has stopped, the job stops with this. */
  readonly giveUp: JobError | null;
}

const NO_FAILURES: Failures = { counts: {}, generation: 0, giveUp: null };

/**
 * `stopped` codes that are no failure: the member was told to stop (RING_ABORTED; a
 * generation stopped before it started; rows cancelled because it ended) or released
 * at the job's end.
 */
const NOT_FAULTS: ReadonlySet<string> = new Set(['RING_ABORTED', 'GENERATION_CANCELLED', 'GENERATION_RELEASED', 'ROWS_CANCELLED']);

/** What to do once the old generation has stopped. */
export type AfterStop = 'regroup' | 'pause' | 'stop';

interface Common {
  readonly members: readonly Member[];
  /** The newest generation formed (0 before the first). */
  readonly generation: number;
  readonly nextOrder: number;
  /** The coordinator's own state: the latest checkpoint, or the initial weights. */
  readonly baseline: Progress;
  /** A generation has formed since this coordinator started. */
  readonly started: boolean;
  /** Workers excluded (unreachable, or a state that did not verify), with the time (ms) their exclusion ends. */
  readonly excluded: Readonly<Record<string, Exclusion>>;
  readonly failures: Failures;
}

export type MembershipState = Common &
  (
    | { readonly phase: 'waiting'; readonly reason: string }
    | {
        readonly phase: 'training';
        /** Member ids of the current generation, by rank. */
        readonly ring: readonly string[];
      }
    | {
        readonly phase: 'stopping';
        /** Old members that have not reported their state yet. */
        readonly pending: readonly string[];
        readonly since: number;
        readonly reason: string;
        readonly then: AfterStop;
      }
    | { readonly phase: 'paused'; readonly reason: string }
    | {
        readonly phase: 'done';
        readonly reason: string;
        /** Set when the job stopped itself (GENERATION_LIVELOCK), not when it completed or was told to stop. */
        readonly error?: JobError;
      }
  );

export type Phase = MembershipState['phase'];

export type MembershipEvent =
  | {
      readonly type: 'join';
      readonly id: string;
      readonly address: Address;
      readonly held: Progress | null;
      /** The newest generation the worker has seen: after a coordinator restart, numbering continues above it (rings refuse older generations). */
      readonly seenGeneration?: number;
    }
  | { readonly type: 'heartbeat'; readonly id: string; readonly held: Progress | null }
  /**
   * The member's training loop for `generation` ended (told to, or its ring failed).
   * `unreachable`: the member its ring could not connect to at all, if that is why.
   * `invalidSource`: the generation's source, whose broadcast state did not verify here.
   */
  | {
      readonly type: 'stopped';
      readonly id: string;
      readonly generation: number;
      readonly held: Progress | null;
      readonly reason: string;
      readonly unreachable?: string;
      readonly invalidSource?: string;
    }
  /** The coordinator's own attempt to connect to `id`'s ring address, which `reporter` could not connect to. */
  | { readonly type: 'probed'; readonly id: string; readonly address: Address; readonly reporter: string; readonly reachable: boolean; readonly detail: string }
  /** A graceful exit: the worker finished its step and says goodbye. */
  | { readonly type: 'leave'; readonly id: string }
  /** Its connection closed, or it broke the protocol. */
  | { readonly type: 'lost'; readonly id: string; readonly reason: string }
  /** The clock moved: deadlines are checked. */
  | { readonly type: 'tick' }
  | { readonly type: 'pause' }
  | { readonly type: 'resume' }
  | { readonly type: 'stop'; readonly reason: string }
  /** The coordinator wrote a checkpoint at `progress`. */
  | { readonly type: 'checkpointed'; readonly progress: Progress }
  /** Training completed and the outputs are written. */
  | { readonly type: 'finished' };

export interface RankAssignment {
  readonly id: string;
  readonly rank: number;
  readonly address: Address;
}

/** A member's id, or the coordinator itself. */
export type StateSource = { readonly kind: 'member'; readonly id: string } | { readonly kind: 'coordinator' };

export type Action =
  /** Tell these members to stop the generation at the next step boundary. */
  | { readonly type: 'stop-ring'; readonly generation: number; readonly ids: readonly string[]; readonly reason: string }
  /** Form a ring; every member takes `source`'s state. */
  | { readonly type: 'form'; readonly generation: number; readonly ranks: readonly RankAssignment[]; readonly source: StateSource }
  | { readonly type: 'wait'; readonly reason: string }
  | { readonly type: 'reject'; readonly id: string; readonly code: RejectCode; readonly reason: string }
  /** Try to connect to `id`'s ring address, as `reporter` could not; answer with a `probed` event. */
  | { readonly type: 'probe'; readonly id: string; readonly address: Address; readonly reporter: string }
  /** Close a lost member's connection: if it is alive after all, it reconnects and joins again. */
  | { readonly type: 'drop'; readonly id: string; readonly reason: string }
  /** Stopped for good: save `source`'s state as a checkpoint and release the workers; `error` when the job stopped itself. */
  | { readonly type: 'save-and-finish'; readonly source: StateSource; readonly reason: string; readonly error?: JobError }
  /** Record that this happened, in the job's event list and log. */
  | { readonly type: 'record'; readonly kind: RecordKind; readonly message: string };

/**
 * What the event list says happened, of what membership decides: a worker joined (or
 * rejoined), was refused (`reject`), excluded, left or was lost; a generation formed, is
 * stopping; the job waits or was paused; it stopped itself with a coded error.
 */
export type RecordKind = 'join' | 'refused' | 'excluded' | 'leave' | 'lost' | 'generation' | 'stopping' | 'waiting' | 'paused' | 'error';

/** Until when (ms) a worker stays out, and why. */
export interface Exclusion {
  readonly until: number;
  readonly code: 'PEER_UNREACHABLE' | 'SOURCE_INVALID';
}

/** What a refused worker is told: the job is full, over, or it is excluded (its ring address unreachable, its state invalid). */
export type RejectCode = 'WORKER_LIMIT' | 'JOB_DONE' | 'PEER_UNREACHABLE' | 'SOURCE_INVALID';

export interface Decision {
  readonly state: MembershipState;
  readonly actions: readonly Action[];
}

export function initialMembership(policy: Policy, baseline: Progress = { step: 0, epochs: 0 }): MembershipState {
  return { phase: 'waiting', members: [], generation: 0, nextOrder: 0, baseline, started: false, excluded: {}, failures: NO_FAILURES, reason: waitingReason(0, policy, false) };
}

function record(kind: RecordKind, message: string): Action {
  return { type: 'record', kind, message };
}

/** No ring: the job waits, and says why. */
function waitFor(reason: string): Action[] {
  return [{ type: 'wait', reason }, record('waiting', reason)];
}

/** A refusal, sent to the worker and recorded as such (it did not join). */
function refuse(id: string, code: RejectCode, reason: string): Action[] {
  return [{ type: 'reject', id, code, reason }, record('refused', `${id} refused: ${code} ${reason}`)];
}

function needed(policy: Policy, started: boolean): number {
  return started ? policy.minWorkers : Math.max(policy.minWorkers, policy.startWorkers ?? 0);
}

function waitingReason(alive: number, policy: Policy, started: boolean): string {
  const n = needed(policy, started);
  return started || n === policy.minWorkers ? `waiting for workers: ${alive} of minWorkers ${n}` : `waiting for workers: ${alive} of ${n} to start`;
}

function common(s: MembershipState): Common {
  return { members: s.members, generation: s.generation, nextOrder: s.nextOrder, baseline: s.baseline, started: s.started, excluded: s.excluded, failures: s.failures };
}

/** The most advanced state among `members` and the coordinator's; ties go to members, then to the lowest rank. */
function sourceOf(members: readonly Member[], baseline: Progress): StateSource {
  let best: Member | null = null;
  for (const m of members) if (best === null || compareProgress(m.held, best.held) > 0) best = m;
  if (best === null || compareProgress(baseline, best.held) > 0) return { kind: 'coordinator' };
  return { kind: 'member', id: best.id };
}

/** The next generation from the members, or waiting if there are too few. */
function regroup(c: Common, policy: Policy): Decision {
  if (c.members.length < needed(policy, c.started)) {
    const reason = waitingReason(c.members.length, policy, c.started);
    return { state: { ...c, phase: 'waiting', reason }, actions: waitFor(reason) };
  }
  const chosen = [...c.members].sort((a, b) => a.joinOrder - b.joinOrder).slice(0, policy.maxWorkers);
  const generation = c.generation + 1;
  const source = sourceOf(chosen, c.baseline);
  const from = source.kind === 'member' ? source.id : 'the coordinator';
  return {
    state: { ...c, generation, started: true, phase: 'training', ring: chosen.map((m) => m.id) },
    actions: [
      { type: 'form', generation, ranks: chosen.map((m, rank) => ({ id: m.id, rank, address: m.address })), source },
      record('generation', `generation ${generation}: ${chosen.map((m) => m.id).join(', ')} (state from ${from})${idleNote(chosen.map((m) => m.id), policy.microBatches)}`),
    ],
  };
}

/** For a world larger than the exact reduction's micro-batches: which members idle (a step has no micro-batch left for them). */
function idleNote(ids: readonly string[], microBatches: number | undefined): string {
  if (microBatches === undefined || ids.length <= microBatches) return '';
  return `; ${ids.slice(microBatches).join(', ')} idle: the job's steps have ${microBatches} micro-batches (training.microBatch), one worker each at most`;
}

function saveAndFinish(c: Common, reason: string): Decision {
  return { state: { ...c, phase: 'done', reason }, actions: [{ type: 'save-and-finish', source: sourceOf(c.members, c.baseline), reason }] };
}

/** The job stops itself: as a stop does, with `error` as its reason, recorded as an error. */
function giveUp(c: Common, error: JobError): Decision {
  const reason = `${error.code}: ${error.message}`;
  return {
    state: { ...c, phase: 'done', reason, error },
    actions: [record('error', reason), { type: 'save-and-finish', source: sourceOf(c.members, c.baseline), reason, error }],
  };
}

/** After the old generation has reported (or been given up on). A stop asked for stands; else a livelock found stops the job. */
function afterStop(c: Common, then: AfterStop, policy: Policy, reason: string): Decision {
  if (then === 'stop') return saveAndFinish(c, reason);
  if (c.failures.giveUp) return giveUp(c, c.failures.giveUp);
  if (then === 'pause') return { state: { ...c, phase: 'paused', reason: 'paused' }, actions: [] };
  return regroup(c, policy);
}

/**
 * The generation `s` is running or ending failed, if one of `ids` is in it (a member of
 * its ring while it trains, one yet to report while it stops, unless the job is
 * stopping for good anyway): counted under `key` unless the generation already was.
 * `detail` says what happened, for the message if this count stops the job.
 */
function failed(s: MembershipState, ids: readonly string[], key: string, detail: string, now: number, policy: Policy): MembershipState {
  const members = s.phase === 'training' ? s.ring : s.phase === 'stopping' && s.then !== 'stop' ? s.pending : [];
  if (s.failures.generation === s.generation || !ids.some((id) => members.includes(id))) return s;
  const before = s.failures.counts[key];
  const count = (before?.count ?? 0) + 1;
  const since = before?.since ?? now;
  const max = policy.maxFailedGenerations ?? DEFAULT_MAX_FAILED_GENERATIONS;
  const reached = max > 0 && count >= max && now - since >= (policy.livelockWindowMs ?? DEFAULT_LIVELOCK_WINDOW_MS);
  const message =
    `${count} generations failed with ${key} in ${Math.round((now - since) / 1000)} s (the last: ${detail}) without a checkpoint past step ${s.baseline.step}; ` +
    `see the workers' logs; raise cluster.maxFailedGenerations (now ${max}; 0: no limit) to allow more`;
  const stop = s.failures.giveUp ?? (reached ? { code: 'GENERATION_LIVELOCK' as const, message } : null);
  return { ...s, failures: { counts: { ...s.failures.counts, [key]: { count, since } }, generation: s.generation, giveUp: stop } };
}

/** Why a member's ring ended, from its `stopped` reason (`CODE: words`): its code, or null for being told to stop. */
export function faultKey(reason: string): string | null {
  const code = /^([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)(?::|$)/.exec(reason)?.[1];
  if (code === undefined) return 'GENERATION_FAILED';
  return NOT_FAULTS.has(code) ? null : code;
}

/** Ends the training generation: its members still here stop and report. */
function endGeneration(s: MembershipState & { phase: 'training' }, c: Common, now: number, then: AfterStop, reason: string, policy: Policy): Decision {
  const alive = new Set(c.members.map((m) => m.id));
  const pending = s.ring.filter((id) => alive.has(id));
  if (pending.length === 0) return afterStop(c, then, policy, reason);
  return {
    state: { ...c, phase: 'stopping', pending, since: now, reason, then },
    actions: [{ type: 'stop-ring', generation: s.generation, ids: pending, reason }, record('stopping', `generation ${s.generation} stopping: ${reason}`)],
  };
}

/** Removes `ids` from the job, whatever the phase. */
function remove(s: MembershipState, ids: ReadonlySet<string>, now: number, why: string, policy: Policy): Decision {
  const c = { ...common(s), members: s.members.filter((m) => !ids.has(m.id)) };
  switch (s.phase) {
    case 'training':
      return s.ring.some((id) => ids.has(id)) ? endGeneration(s, c, now, 'regroup', why, policy) : { state: { ...s, ...c }, actions: [] };
    case 'stopping': {
      const pending = s.pending.filter((id) => !ids.has(id));
      return pending.length === 0 ? afterStop(c, s.then, policy, s.reason) : { state: { ...s, ...c, pending }, actions: [] };
    }
    case 'waiting': {
      const reason = waitingReason(c.members.length, policy, c.started);
      return { state: { ...c, phase: 'waiting', reason }, actions: waitFor(reason) };
    }
    case 'paused':
    case 'done':
      return { state: { ...s, ...c }, actions: [] };
    default:
      return unhandled(s);
  }
}

/**
 * Excludes `id` for exclusionMs: it is told why (`code`, `reason`), dropped, and the
 * generation goes on without it. `why` is the event list's account (it names who found
 * out, which the worker's reason need not).
 */
function exclude(s: MembershipState, id: string, code: Exclusion['code'], reason: string, why: string, now: number, policy: Policy): Decision {
  const counted = failed(s, [id], code, `${id} excluded: ${why}`, now, policy);
  const excludedState = { ...counted, excluded: { ...s.excluded, [id]: { until: now + (policy.exclusionMs ?? DEFAULT_EXCLUSION_MS), code } } };
  const d = remove(excludedState, new Set([id]), now, `${id} excluded: ${reason}`, policy);
  return {
    state: d.state,
    actions: [record('excluded', `${id} excluded: ${why}`), { type: 'reject', id, code, reason }, { type: 'drop', id, reason: `excluded: ${reason}` }, ...d.actions],
  };
}

function withHeld(s: MembershipState, id: string, held: Progress | null, now: number): Common {
  return { ...common(s), members: s.members.map((m) => (m.id === id ? { ...m, lastSeen: now, held } : m)) };
}

export function decide(state: MembershipState, event: MembershipEvent, now: number, policy: Policy): Decision {
  const s = state;
  switch (event.type) {
    case 'join': {
      if (s.phase === 'done') return { state: s, actions: refuse(event.id, 'JOB_DONE', 'the job has finished') };
      const out = s.excluded[event.id];
      if (out !== undefined && now < out.until) {
        const why = out.code === 'PEER_UNREACHABLE' ? 'its ring address could not be reached' : 'the state it sent did not verify';
        return { state: s, actions: refuse(event.id, out.code, `excluded for another ${Math.ceil((out.until - now) / 1000)} s: ${why}`) };
      }
      const known = s.members.find((m) => m.id === event.id);
      if (!known && s.members.length >= policy.maxWorkers) {
        return { state: s, actions: refuse(event.id, 'WORKER_LIMIT', `the job already has maxWorkers ${policy.maxWorkers}`) };
      }
      // A known id joining again restarted or reconnected: its old ring is gone. If it was
      // in the generation, that generation failed as if its connection had been found closed first.
      const back = known ? failed(s, [event.id], 'WORKER_LOST', `${event.id} lost: back under its id during generation ${s.generation}`, now, policy) : s;
      const member: Member = { id: event.id, address: event.address, joinOrder: known?.joinOrder ?? s.nextOrder, lastSeen: now, held: event.held };
      const excluded = { ...s.excluded };
      delete excluded[event.id]; // admitted: an exclusion, if any, has run out
      const c: Common = {
        ...common(back),
        excluded,
        members: [...s.members.filter((m) => m.id !== event.id), member],
        nextOrder: known ? s.nextOrder : s.nextOrder + 1,
        generation: Math.max(s.generation, event.seenGeneration ?? 0),
      };
      const joined = record('join', `${event.id} joined from ${event.address.host}:${event.address.port}`);
      const d = admitted(s, c, now, `${event.id} ${known ? 'rejoined' : 'joined'}`, event.id, policy);
      return { state: d.state, actions: [joined, ...d.actions] };
    }
    case 'heartbeat': {
      if (!s.members.some((m) => m.id === event.id)) return { state: s, actions: [] };
      return { state: { ...s, ...withHeld(s, event.id, event.held, now) }, actions: [] };
    }
    case 'stopped': {
      if (!s.members.some((m) => m.id === event.id)) return { state: s, actions: [] };
      const suspect = event.unreachable === event.id ? undefined : s.members.find((m) => m.id === event.unreachable);
      if (suspect) {
        const d = decide(s, { ...event, unreachable: undefined }, now, policy);
        return { state: d.state, actions: [...d.actions, { type: 'probe', id: suspect.id, address: suspect.address, reporter: event.id }] };
      }
      const liar = event.invalidSource === event.id ? undefined : s.members.find((m) => m.id === event.invalidSource);
      if (liar) {
        const d = decide(s, { ...event, invalidSource: undefined }, now, policy);
        const claim = liar.held ? `step ${liar.held.step}` : 'a state';
        const reason = `it claimed ${claim} but the state it sent did not verify at ${event.id} (${event.reason})`;
        const x = exclude(d.state, liar.id, 'SOURCE_INVALID', reason, reason, now, policy);
        return { state: x.state, actions: [...d.actions, ...x.actions] };
      }
      const c = withHeld(s, event.id, event.held, now);
      if (event.generation !== s.generation) return { state: { ...s, ...c }, actions: [] };
      if (s.phase === 'training' && s.ring.includes(event.id)) {
        // Its ring failed by itself (a lost peer, a deadline): the generation is over.
        const key = faultKey(event.reason);
        const failures = key === null ? s.failures : failed(s, [event.id], key, `${event.id}: ${event.reason}`, now, policy).failures;
        const d = endGeneration(s, { ...c, failures }, now, 'regroup', `generation ${s.generation} failed at ${event.id}: ${event.reason}`, policy);
        const told = d.actions.map((a) => (a.type === 'stop-ring' ? { ...a, ids: a.ids.filter((id) => id !== event.id) } : a));
        return stoppedFrom({ state: d.state, actions: told }, event.id, policy);
      }
      if (s.phase === 'stopping') return stoppedFrom({ state: { ...s, ...c }, actions: [] }, event.id, policy);
      return { state: { ...s, ...c }, actions: [] };
    }
    case 'probed': {
      const m = s.members.find((x) => x.id === event.id);
      // Reachable (then the reporter's side or a passing fault), or it has since
      // re-registered elsewhere: nothing to do.
      if (event.reachable || !m || m.address.host !== event.address.host || m.address.port !== event.address.port) return { state: s, actions: [] };
      const where = `${event.address.host}:${event.address.port}`;
      const reason = `its ring address ${where} cannot be reached (${event.detail})`;
      const why = `${event.reporter} could not connect to its ring address ${where}, nor could the coordinator (${event.detail})`;
      return exclude(s, event.id, 'PEER_UNREACHABLE', reason, why, now, policy);
    }
    case 'leave': {
      if (!s.members.some((m) => m.id === event.id)) return { state: s, actions: [] };
      const d = remove(s, new Set([event.id]), now, `${event.id} left`, policy);
      return { state: d.state, actions: [record('leave', `${event.id} left`), ...d.actions] };
    }
    case 'lost': {
      if (!s.members.some((m) => m.id === event.id)) return { state: s, actions: [] };
      const counted = failed(s, [event.id], 'WORKER_LOST', `${event.id} lost: ${event.reason}`, now, policy);
      const d = remove(counted, new Set([event.id]), now, `${event.id} lost: ${event.reason}`, policy);
      return { state: d.state, actions: [record('lost', `${event.id} lost: ${event.reason}`), { type: 'drop', id: event.id, reason: event.reason }, ...d.actions] };
    }
    case 'tick': {
      const silent = s.members.filter((m) => now - m.lastSeen > policy.heartbeatTimeoutMs).map((m) => m.id);
      const late = s.phase === 'stopping' && now - s.since > policy.stopTimeoutMs ? s.pending : [];
      const gone = new Set([...silent, ...late]);
      if (gone.size === 0) return { state: s, actions: [] };
      const why = silent.length > 0 ? `silent past ${policy.heartbeatTimeoutMs} ms: ${silent.join(', ')}` : `no state report within ${policy.stopTimeoutMs} ms: ${late.join(', ')}`;
      const lostWhy = (id: string): string => `${id} lost: ${silent.includes(id) ? `silent past ${policy.heartbeatTimeoutMs} ms` : `no state report within ${policy.stopTimeoutMs} ms`}`;
      const counted = [...gone].reduce((x, id) => failed(x, [id], 'WORKER_LOST', lostWhy(id), now, policy), s);
      const d = remove(counted, gone, now, why, policy);
      // After the job, a worker falling silent is no loss of the job's: dropped, not recorded.
      const lost = [...gone].flatMap((id): Action[] => [...(s.phase === 'done' ? [] : [record('lost', lostWhy(id))]), { type: 'drop', id, reason: why }]);
      return { state: d.state, actions: [...lost, ...d.actions] };
    }
    case 'pause': {
      const paused = record('paused', 'paused');
      if (s.phase === 'training') {
        const d = endGeneration(s, common(s), now, 'pause', 'paused', policy);
        return { state: d.state, actions: [paused, ...d.actions] };
      }
      if (s.phase === 'stopping' && s.then !== 'stop') return { state: { ...s, then: 'pause' }, actions: [paused] };
      if (s.phase === 'waiting') return { state: { ...common(s), phase: 'paused', reason: 'paused' }, actions: [paused] };
      return { state: s, actions: [] };
    }
    case 'resume':
      if (s.phase === 'paused') return regroup(common(s), policy);
      if (s.phase === 'stopping' && s.then === 'pause') return { state: { ...s, then: 'regroup' }, actions: [] };
      return { state: s, actions: [] };
    case 'stop':
      if (s.phase === 'training') return endGeneration(s, common(s), now, 'stop', event.reason, policy);
      if (s.phase === 'stopping') return { state: { ...s, then: 'stop', reason: event.reason }, actions: [] };
      if (s.phase === 'done') return { state: s, actions: [] };
      return saveAndFinish(common(s), event.reason);
    case 'checkpointed':
      // Durable progress: whatever failed before it, the job moved on.
      if (compareProgress(event.progress, s.baseline) <= 0) return { state: s, actions: [] };
      return { state: { ...s, baseline: event.progress, failures: { ...s.failures, counts: {}, giveUp: null } }, actions: [] };
    case 'finished':
      return { state: { ...common(s), failures: NO_FAILURES, phase: 'done', reason: 'completed' }, actions: [] };
    default:
      return unhandled(event);
  }
}

/** A worker admitted (joined, or rejoined under its id), by phase. */
function admitted(s: MembershipState, c: Common, now: number, why: string, id: string, policy: Policy): Decision {
  switch (s.phase) {
    case 'waiting':
      return regroup(c, policy);
    case 'training':
      return endGeneration(s, c, now, 'regroup', why, policy);
    case 'stopping': {
      // A rejoining old member reported its state by joining.
      const pending = s.pending.filter((p) => p !== id);
      return pending.length === 0 ? afterStop(c, s.then, policy, s.reason) : { state: { ...s, ...c, pending }, actions: [] };
    }
    case 'paused':
      return { state: { ...s, ...c }, actions: [] };
    case 'done':
      // A finished job refuses joins before it gets here (JOB_DONE).
      return { state: s, actions: [] };
    default:
      return unhandled(s);
  }
}

/** The end of a switch that handles every case: a new case is a compile error here, not a silent no-op. */
function unhandled(x: never): never {
  throw new Error(`membership: unhandled case ${JSON.stringify(x)}`);
}

/** `id` has reported: drop it from the pending list, and finish the stop once none is left. */
function stoppedFrom(d: Decision, id: string, policy: Policy): Decision {
  const s = d.state;
  if (s.phase !== 'stopping') return d;
  const pending = s.pending.filter((p) => p !== id);
  if (pending.length > 0) return { state: { ...s, pending }, actions: d.actions };
  const after = afterStop(common(s), s.then, policy, s.reason);
  return { state: after.state, actions: [...d.actions, ...after.actions] };
}
