/**
 * The job's event list: what happened, newest last, as /api/status, the dashboard and
 * cluster.json show it, each event also one log line. Membership's events (joins,
 * refusals, exclusions, losses, generations) are the `record` actions its decisions
 * return, recorded by executor.ts as they are; the others come from the job's own work
 * (checkpoints written, the job completed or stopped, an output that failed).
 */
import type { Logger } from 'pino';
import type { JobEvent } from './status.js';

/** The events kept, the newest: the list is the recent past for the dashboard and cluster.json (each a line), not an archive; 200 covers many regroups. */
export const MAX_EVENTS = 200;

export class EventLog {
  private readonly list: JobEvent[] = [];

  /** `generation`: the job's newest generation, stamped on each event; `changed`: an event was added. */
  constructor(
    private readonly log: Logger,
    private readonly generation: () => number,
    private readonly changed: () => void,
  ) {}

  record(kind: JobEvent['kind'], message: string): void {
    const generation = this.generation();
    this.list.push({ time: new Date().toISOString(), kind, generation, message });
    if (this.list.length > MAX_EVENTS) this.list.splice(0, this.list.length - MAX_EVENTS);
    // Checkpoints are routine (every epoch by default): the event list has them, the log at debug.
    this.log[kind === 'checkpoint' ? 'debug' : 'info']({ event: kind, generation }, message);
    this.changed();
  }

  /** The events, oldest first (a copy). */
  all(): JobEvent[] {
    return [...this.list];
  }
}
