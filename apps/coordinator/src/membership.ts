/**
 * Membership as a pure state machine: decide(state, event, now) returns the next state
 * and the actions an executor carries out (sockets, timers, logs live there, not here),
 * after TorchElastic's rendezvous. Tests drive it with a fake clock.
 *
 * A generation is one ring: its members, in rank order, are the alive workers in the
 * order they joined, at most maxWorkers. Ranks are valid for one generation only. Every
 * change of membership while training (a join, a graceful leave, a loss found by a ring
 * deadline or a missed heartbeat) ends the generation: the executor tells the members to
 * stop at the next step boundary, and the next generation forms from the survivors (and
 * newcomers) with the most advanced member as the source of state (invariant 2 of
 * DESIGN.md). Below minWorkers the job waits, and says why.
 */

export interface Address {
  readonly host: string;
  readonly port: number;
}

export interface Member {
  readonly id: string;
  readonly address: Address;
  /** Order of arrival: ranks follow it, so they stay stable across generations. */
  readonly joinOrder: number;
  readonly lastSeen: number;
  /** Last committed global step the worker reported (-1 before any). */
  readonly step: number;
}

export interface Policy {
  readonly minWorkers: number;
  readonly maxWorkers: number;
  /** A member silent this long is lost. */
  readonly heartbeatTimeoutMs: number;
}

export type MembershipState =
  | { readonly phase: 'waiting'; readonly members: readonly Member[]; readonly generation: number; readonly nextOrder: number; readonly reason: string }
  | {
      readonly phase: 'training';
      readonly members: readonly Member[];
      readonly generation: number;
      readonly nextOrder: number;
      /** Member ids of the current generation, by rank. */
      readonly ring: readonly string[];
    }
  | { readonly phase: 'done'; readonly members: readonly Member[]; readonly generation: number; readonly nextOrder: number };

export type MembershipEvent =
  | { readonly type: 'join'; readonly id: string; readonly address: Address }
  | { readonly type: 'heartbeat'; readonly id: string; readonly step: number }
  /** A graceful exit: the worker finished its step and says goodbye. */
  | { readonly type: 'leave'; readonly id: string }
  /** A ring deadline or a closed connection named this worker. */
  | { readonly type: 'lost'; readonly id: string; readonly reason: string }
  /** The clock moved: heartbeat deadlines are checked. */
  | { readonly type: 'tick' }
  | { readonly type: 'finished' };

export interface RankAssignment {
  readonly id: string;
  readonly rank: number;
  readonly address: Address;
}

export type Action =
  /** Tell every member of the old generation (if any) to stop at the next step boundary. */
  | { readonly type: 'end-generation'; readonly generation: number; readonly reason: string }
  /** Form a ring; `source` is the member whose state everyone takes. */
  | { readonly type: 'form'; readonly generation: number; readonly ranks: readonly RankAssignment[]; readonly source: string }
  | { readonly type: 'wait'; readonly reason: string }
  | { readonly type: 'reject'; readonly id: string; readonly code: 'WORKER_LIMIT' | 'JOB_DONE'; readonly reason: string };

export interface Decision {
  readonly state: MembershipState;
  readonly actions: readonly Action[];
}

export function initialMembership(policy: Policy): MembershipState {
  return { phase: 'waiting', members: [], generation: 0, nextOrder: 0, reason: waitingReason(0, policy) };
}

function waitingReason(alive: number, policy: Policy): string {
  return `waiting for workers: ${alive} of minWorkers ${policy.minWorkers}`;
}

/** The next generation from `members`, or waiting if there are too few. */
function regroup(state: MembershipState, members: readonly Member[], policy: Policy, why: string): Decision {
  const ending: Action[] =
    state.phase === 'training' ? [{ type: 'end-generation', generation: state.generation, reason: why }] : [];
  if (members.length < policy.minWorkers) {
    const reason = waitingReason(members.length, policy);
    return {
      state: { phase: 'waiting', members, generation: state.generation, nextOrder: state.nextOrder, reason },
      actions: [...ending, { type: 'wait', reason }],
    };
  }
  const chosen = [...members].sort((a, b) => a.joinOrder - b.joinOrder).slice(0, policy.maxWorkers);
  // The most advanced member's state goes to everyone; ties go to the lowest rank.
  const source = chosen.reduce((best, m) => (m.step > best.step ? m : best), chosen[0]!);
  const generation = state.generation + 1;
  return {
    state: { phase: 'training', members, generation, nextOrder: state.nextOrder, ring: chosen.map((m) => m.id) },
    actions: [
      ...ending,
      { type: 'form', generation, ranks: chosen.map((m, rank) => ({ id: m.id, rank, address: m.address })), source: source.id },
    ],
  };
}

function without(state: MembershipState, ids: ReadonlySet<string>): Member[] {
  return state.members.filter((m) => !ids.has(m.id));
}

function inRing(state: MembershipState, ids: ReadonlySet<string>): boolean {
  return state.phase === 'training' && state.ring.some((id) => ids.has(id));
}

export function decide(state: MembershipState, event: MembershipEvent, now: number, policy: Policy): Decision {
  switch (event.type) {
    case 'join': {
      if (state.phase === 'done') {
        return { state, actions: [{ type: 'reject', id: event.id, code: 'JOB_DONE', reason: 'the job has finished' }] };
      }
      const known = state.members.find((m) => m.id === event.id);
      if (!known && state.members.length >= policy.maxWorkers) {
        return {
          state,
          actions: [{ type: 'reject', id: event.id, code: 'WORKER_LIMIT', reason: `the job already has maxWorkers ${policy.maxWorkers}` }],
        };
      }
      // A known id joining again restarted: its old ring connections are gone.
      const member: Member = {
        id: event.id,
        address: event.address,
        joinOrder: known?.joinOrder ?? state.nextOrder,
        lastSeen: now,
        step: known?.step ?? -1,
      };
      const members = [...without(state, new Set([event.id])), member];
      const next = { ...state, members, nextOrder: known ? state.nextOrder : state.nextOrder + 1 };
      return regroup(next, members, policy, known ? `${event.id} rejoined` : `${event.id} joined`);
    }
    case 'heartbeat': {
      if (!state.members.some((m) => m.id === event.id)) return { state, actions: [] };
      const members = state.members.map((m) => (m.id === event.id ? { ...m, lastSeen: now, step: Math.max(m.step, event.step) } : m));
      return { state: { ...state, members }, actions: [] };
    }
    case 'leave':
    case 'lost': {
      const gone = new Set([event.id]);
      if (!state.members.some((m) => m.id === event.id)) return { state, actions: [] };
      const members = without(state, gone);
      const why = event.type === 'leave' ? `${event.id} left` : `${event.id} lost: ${event.reason}`;
      if (state.phase === 'waiting') {
        const reason = waitingReason(members.length, policy);
        return { state: { ...state, members, reason }, actions: [{ type: 'wait', reason }] };
      }
      if (state.phase === 'done' || !inRing(state, gone)) return { state: { ...state, members }, actions: [] };
      return regroup(state, members, policy, why);
    }
    case 'tick': {
      const silent = new Set(state.members.filter((m) => now - m.lastSeen > policy.heartbeatTimeoutMs).map((m) => m.id));
      if (silent.size === 0) return { state, actions: [] };
      const members = without(state, silent);
      const why = `silent past ${policy.heartbeatTimeoutMs} ms: ${[...silent].join(', ')}`;
      if (state.phase === 'done') return { state: { ...state, members }, actions: [] };
      if (state.phase === 'waiting') {
        const reason = waitingReason(members.length, policy);
        return { state: { ...state, members, reason }, actions: [{ type: 'wait', reason }] };
      }
      return inRing(state, silent) ? regroup(state, members, policy, why) : { state: { ...state, members }, actions: [] };
    }
    case 'finished':
      return { state: { phase: 'done', members: state.members, generation: state.generation, nextOrder: state.nextOrder }, actions: [] };
    default: {
      const never: never = event;
      return never;
    }
  }
}
