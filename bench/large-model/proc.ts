/**
 * What bench/large-model reads from Linux's /proc while a run goes on:
 *
 * - peakRss: a process's VmHWM, the most resident memory it has had (the kernel keeps
 *   it, so a poll every 200 ms misses no peak, only the last moments of a process that
 *   exits between two polls);
 * - childPids and envOf: `ringtrain local`'s worker processes (its children, each
 *   started with RINGTRAIN_WORKER_ID in its environment);
 * - memAvailable: MemAvailable of /proc/meminfo, what can be allocated without swapping.
 *
 * RssWatch polls a root process and its children together, and calls `onLowMemory`
 * once when MemAvailable falls below a floor, so a run too large for the machine is
 * stopped by the bench rather than by the kernel's OOM killer, which may pick anyone.
 */
import { readdirSync, readFileSync } from 'node:fs';

const KiB = 1024;

function statusField(pid: number, field: string): string | null {
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith(`${field}:`));
    return line ? line.slice(field.length + 1).trim() : null;
  } catch {
    return null; // gone
  }
}

/** The most resident memory `pid` has had, in bytes; null once it is gone. */
export function peakRss(pid: number): number | null {
  const v = statusField(pid, 'VmHWM');
  return v === null ? null : Number.parseInt(v, 10) * KiB;
}

/** The pids whose parent is `pid`. */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (/^\d+$/.test(entry) && statusField(Number(entry), 'PPid') === String(pid)) out.push(Number(entry));
  }
  return out;
}

/** One variable of a process's environment (as it was started); null when absent or unreadable. */
export function envOf(pid: number, name: string): string | null {
  try {
    const entry = readFileSync(`/proc/${pid}/environ`, 'utf8')
      .split('\0')
      .find((e) => e.startsWith(`${name}=`));
    return entry ? entry.slice(name.length + 1) : null;
  } catch {
    return null;
  }
}

/** MemAvailable, in bytes. */
export function memAvailable(): number {
  const line = readFileSync('/proc/meminfo', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('MemAvailable:'));
  if (!line) throw new Error('/proc/meminfo has no MemAvailable');
  return Number.parseInt(line.slice('MemAvailable:'.length), 10) * KiB;
}

export interface ProcessPeak {
  readonly pid: number;
  /** RINGTRAIN_WORKER_ID for a worker; null for the root. */
  readonly id: string | null;
  readonly bytes: number;
}

/** Polls the peak RSS of `root` and its children every `everyMs` until stopped. */
export class RssWatch {
  private readonly peaks = new Map<number, { id: string | null; bytes: number }>();
  private readonly timer: NodeJS.Timeout;
  private warned = false;

  constructor(
    private readonly root: number,
    /** Called with each child pid the first time it is seen (to kill its process group at exit). */
    private readonly onChild: (pid: number) => void,
    private readonly floorBytes: number,
    private readonly onLowMemory: (available: number) => void,
    everyMs = 200,
  ) {
    this.poll();
    this.timer = setInterval(() => this.poll(), everyMs);
  }

  private poll(): void {
    for (const pid of [this.root, ...childPids(this.root)]) {
      const bytes = peakRss(pid);
      if (bytes === null) continue;
      const seen = this.peaks.get(pid);
      if (!seen && pid !== this.root) this.onChild(pid);
      this.peaks.set(pid, { id: seen?.id ?? (pid === this.root ? null : envOf(pid, 'RINGTRAIN_WORKER_ID')), bytes: Math.max(bytes, seen?.bytes ?? 0) });
    }
    const available = memAvailable();
    if (available < this.floorBytes && !this.warned) {
      this.warned = true;
      this.onLowMemory(available);
    }
  }

  /** Stops polling; the root's peak and its children's, in the order first seen. */
  stop(): { root: number | null; children: ProcessPeak[] } {
    clearInterval(this.timer);
    this.poll();
    const children = [...this.peaks].filter(([pid]) => pid !== this.root).map(([pid, p]) => ({ pid, id: p.id, bytes: p.bytes }));
    return { root: this.peaks.get(this.root)?.bytes ?? null, children };
  }
}
