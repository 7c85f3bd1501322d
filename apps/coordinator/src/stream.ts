/**
 * The dashboard's live stream (WS /api/stream): one hub for every client, so that a
 * page left open, or ten of them, costs the coordinator about what one does.
 *
 * A client gets a `snapshot` when it connects (the status and the metric history, the
 * step losses thinned when there are many, see `thinSteps`), then `update`s: the status,
 * the step losses it has not seen, the epoch records and the generations. Updates go out
 * in ticks, at most one per `intervalMs` (the server's default is 1 s) and at least one a
 * second while anyone listens (so ages and elapsed times move). A tick reads the
 * runtime's status and metrics once and serializes each part once; clients that have
 * seen the same number of steps (after their first tick, all of them) share one message
 * string. A client whose socket still holds more than `MAX_BUFFERED_BYTES` unsent skips
 * the tick and catches up on the next one, so a slow browser never piles up memory here.
 */
import type { WebSocket } from 'ws';
import type { JobStatus, MetricHistory } from './status.js';

/** What the hub reads: the runtime's views and its 'update' events. */
export interface StreamSource {
  status(): JobStatus;
  metrics(): MetricHistory;
  on(event: 'update', listener: () => void): unknown;
  off(event: 'update', listener: () => void): unknown;
}

type Step = readonly [number, number];

/** A snapshot carries at most this many step losses... */
export const SNAPSHOT_MAX_STEPS = 5_000;
/** ...the most recent ones all, the older ones thinned to every k-th. */
export const SNAPSHOT_RECENT_STEPS = 1_000;
export const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

/**
 * The step losses a snapshot sends: all of them up to `max`; past that, the newest
 * `recent` whole and every k-th of the older ones (the first included), k chosen so
 * that the total stays within `max`. The curve keeps its shape; updates then add every
 * new step.
 */
export function thinSteps(steps: readonly Step[], max = SNAPSHOT_MAX_STEPS, recent = SNAPSHOT_RECENT_STEPS): readonly Step[] {
  if (steps.length <= max) return steps;
  const older = steps.length - recent;
  const k = Math.ceil(older / (max - recent));
  const out: Step[] = [];
  for (let i = 0; i < older; i += k) out.push(steps[i]!);
  for (let i = older; i < steps.length; i++) out.push(steps[i]!);
  return out;
}

interface Client {
  /** Steps of the server's history this client has been sent (an index into it). */
  sent: number;
}

export class StreamHub {
  private readonly clients = new Map<WebSocket, Client>();
  private timer: NodeJS.Timeout | null = null;
  private clock: NodeJS.Timeout | null = null;
  private last = 0;
  private snapshot: { text: string; steps: number; at: number } | null = null;
  /** Ticks sent and messages serialized, for tests. */
  readonly counters = { ticks: 0, serialized: 0 };
  private readonly onUpdate = (): void => this.schedule();

  constructor(
    private readonly source: StreamSource,
    private readonly intervalMs = 250,
  ) {}

  get size(): number {
    return this.clients.size;
  }

  /** A new client: its snapshot now, updates from the next tick. */
  add(ws: WebSocket): void {
    if (this.clients.size === 0) {
      this.source.on('update', this.onUpdate);
      this.clock = setInterval(this.onUpdate, 1000);
    }
    const snap = this.snapshotText();
    this.clients.set(ws, { sent: snap.steps });
    ws.on('close', () => this.remove(ws));
    ws.on('error', () => {});
    ws.on('message', () => {}); // read-only: input is ignored
    ws.send(snap.text);
  }

  close(): void {
    for (const ws of [...this.clients.keys()]) this.remove(ws);
  }

  private remove(ws: WebSocket): void {
    if (!this.clients.delete(ws) || this.clients.size > 0) return;
    this.source.off('update', this.onUpdate);
    if (this.clock) clearInterval(this.clock);
    if (this.timer) clearTimeout(this.timer);
    this.clock = this.timer = null;
  }

  /** Built at most once per interval: a burst of connections (every page back after a restart) shares it. */
  private snapshotText(): { text: string; steps: number } {
    const now = Date.now();
    if (this.snapshot && now - this.snapshot.at < this.intervalMs) return this.snapshot;
    const m = this.source.metrics();
    const text = message('snapshot', JSON.stringify(this.source.status()), JSON.stringify(thinSteps(m.steps)), history(m));
    this.counters.serialized++;
    this.snapshot = { text, steps: m.steps.length, at: now };
    return this.snapshot;
  }

  private schedule(): void {
    if (this.timer !== null || this.clients.size === 0) return;
    this.timer = setTimeout(() => this.tick(), Math.max(0, this.intervalMs - (Date.now() - this.last)));
  }

  private tick(): void {
    this.timer = null;
    this.last = Date.now();
    this.counters.ticks++;
    const status = JSON.stringify(this.source.status());
    const m = this.source.metrics();
    const rest = history(m);
    const bySent = new Map<number, string>();
    for (const [ws, c] of this.clients) {
      if (ws.readyState !== ws.OPEN || ws.bufferedAmount > MAX_BUFFERED_BYTES) continue;
      let text = bySent.get(c.sent);
      if (text === undefined) {
        text = message('update', status, JSON.stringify(m.steps.slice(c.sent)), rest);
        this.counters.serialized++;
        bySent.set(c.sent, text);
      }
      ws.send(text);
      c.sent = m.steps.length;
    }
  }
}

/** The epoch records and generations, as JSON members. */
function history(m: MetricHistory): string {
  return `"epochs":${JSON.stringify(m.epochs)},"generations":${JSON.stringify(m.generations)}`;
}

function message(type: 'snapshot' | 'update', status: string, steps: string, rest: string): string {
  return `{"type":"${type}","status":${status},"steps":${steps},${rest}}`;
}
