/**
 * What the coordinator refused: requests without the token, malformed requests and
 * upgrades, malformed worker messages. Each is counted by reason (`/metrics`:
 * `ringtrain_rejected_total{reason}`), and logged at most twice per interval per peer:
 * the first refusal in full, then, once the interval is over, one summary line
 * ("N more from ADDR in the last 10 s") if there were more. A client sending garbage in
 * a loop used to write a warning per message (15.7k lines in 25 s); now it writes two
 * lines every ten seconds, and the counter says how many.
 *
 * Peers are keyed by address without the port (one client's connections share it). The
 * table holds at most `maxPeers` addresses at once; beyond that, new ones share one
 * entry, so that many addresses cannot grow it without bound. The clock is injected:
 * callers pass `now`, and `flush(now)` runs on the owner's timer.
 */

export const REJECT_REASONS = [
  /** No or a wrong token: a control request (401) or a /worker upgrade (401). */
  'unauthorized',
  /** A malformed HTTP request or upgrade: bad request target, bad headers, a head too large, a timeout (400, 404 on upgrade, 408, 431). */
  'bad_request',
  /** A control-channel message that failed validation or asks for the impossible (close 1008 PROTOCOL_BAD_MESSAGE), or a WebSocket protocol error on a worker's connection. */
  'bad_message',
  /** A well-formed control-channel message that its sender may not send now: a `done` or checkpoint not from rank 0 of the current generation, an unasked `state`, a fetch from outside the ring (close 1008 PROTOCOL_ROLE). */
  'wrong_role',
  /** A handler failed on our side (500 INTERNAL_ERROR, close 1011): a bug, logged at error. */
  'internal_error',
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

export interface RejectionLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

interface Peer {
  /** When the interval began: the time of the refusal that was logged in full. */
  readonly since: number;
  /** Refusals since then, not logged, by reason. */
  readonly more: Partial<Record<RejectReason, number>>;
  total: number;
}

/** The entry shared by addresses beyond `maxPeers`. */
export const OTHER_PEERS = 'other addresses';

export class Rejections {
  private readonly counted = Object.fromEntries(REJECT_REASONS.map((r) => [r, 0])) as Record<RejectReason, number>;
  private readonly peers = new Map<string, Peer>();

  constructor(
    private readonly log: RejectionLogger,
    readonly intervalMs = 10_000,
    private readonly maxPeers = 10_000,
  ) {}

  /** Refusals so far, by reason (every reason present). */
  get counts(): Readonly<Record<RejectReason, number>> {
    return { ...this.counted };
  }

  /**
   * One refusal of `remote` (an address, or undefined when the socket is already gone),
   * with `message` and `fields` for the log line when it is the first of its interval.
   */
  note(reason: RejectReason, remote: string | undefined, message: string, fields: object = {}, now = Date.now()): void {
    this.counted[reason]++;
    let key = remote ?? 'unknown';
    if (!this.peers.has(key) && this.peers.size >= this.maxPeers) key = OTHER_PEERS;
    const peer = this.peers.get(key);
    if (peer !== undefined && now - peer.since < this.intervalMs) {
      peer.more[reason] = (peer.more[reason] ?? 0) + 1;
      peer.total++;
      return;
    }
    if (peer !== undefined) this.summarize(key, peer);
    this.peers.set(key, { since: now, more: {}, total: 0 });
    this.line(reason === 'internal_error')({ remote: key, reason, ...fields }, message);
  }

  /** Writes the summary of every peer whose interval is over, and forgets it. */
  flush(now = Date.now()): void {
    for (const [key, peer] of this.peers) {
      if (now - peer.since < this.intervalMs) continue;
      this.summarize(key, peer);
      this.peers.delete(key);
    }
  }

  private summarize(key: string, peer: Peer): void {
    if (peer.total === 0) return;
    const seconds = Math.round(this.intervalMs / 1000);
    this.line(peer.more.internal_error !== undefined)({ remote: key, count: peer.total, reasons: peer.more }, `${peer.total} more from ${key} in the last ${seconds} s`);
  }

  private line(error: boolean): (obj: object, msg: string) => void {
    return error ? (obj, msg) => this.log.error(obj, msg) : (obj, msg) => this.log.warn(obj, msg);
  }
}
