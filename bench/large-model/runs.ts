/**
 * One run of bench/large-model, watched from outside: `ringtrain train` or `ringtrain
 * local --workers W` on a job, each in its own process group (and each worker in its
 * own: `local` starts them detached), killed whole when it ends, fails or runs past its
 * deadline. While it runs: the peak RSS of every process (proc.ts), the JSON log lines
 * on its stderr (at debug level, the only level at which `local` lets its workers log
 * `generation started`), and for `local` the workers' step split from /api/status.
 * Also the checkpoint probe (restore.ts) in a process of its own.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { pollStatus, StepSplit } from '../scaling/probe.js';
import { RssWatch, type ProcessPeak } from './proc.js';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(repoRoot, 'apps/cli/bin/ringtrain.mjs');
const PROBE = fileURLToPath(new URL('./restore.ts', import.meta.url));
/** A run longer than this has hung: a 107M job of a few steps takes minutes here. */
const RUN_DEADLINE_MS = 60 * 60_000;
/** Below this much MemAvailable a run is stopped before the OOM killer picks a victim. */
const MEMORY_FLOOR = 512 * 2 ** 20;

// ---- process groups: killed whole on any exit of the bench ----

const groups = new Set<number>();
const tryKill = (pid: number): void => {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
};
export const killGroups = (): void => groups.forEach((pid) => tryKill(-pid));

/** A JSON log line of pino's; null for any other line. */
export type LogRecord = Record<string, unknown> & { readonly msg?: string; readonly pid?: number };
function logRecord(line: string): LogRecord | null {
  if (!line.startsWith('{')) return null;
  try {
    return JSON.parse(line) as LogRecord;
  } catch {
    return null;
  }
}

export interface RunOutput {
  readonly records: readonly LogRecord[];
  /** Peak RSS of the command's own process (train, or local's coordinator). */
  readonly peak: number | null;
  /** Its children's: local's workers. */
  readonly children: readonly ProcessPeak[];
  /** local: the workers' step split over every heartbeat period seen. */
  readonly split: StepSplit;
  readonly seconds: number;
}

/** Spawns `node ringtrain.mjs args...` in its own process group and watches it to its end; rejects when it fails. */
async function watched(args: readonly string[], what: string): Promise<RunOutput> {
  const started = performance.now();
  const child = spawn(process.execPath, [BIN, ...args], { cwd: repoRoot, detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  const pid = child.pid!;
  groups.add(pid);
  const records: LogRecord[] = [];
  const tail: string[] = [];
  const split = new StepSplit();
  let stopPolling = (): void => {};
  let killedFor: string | null = null;
  const stopRun = (why: string): void => {
    killedFor ??= why;
    killGroups(); // runs go one at a time: every group is this run's
  };
  const rss = new RssWatch(pid, (c) => groups.add(c), MEMORY_FLOOR, (available) => stopRun(`MemAvailable fell to ${Math.round(available / 2 ** 20)} MiB`));
  const deadline = setTimeout(() => stopRun(`still running after ${RUN_DEADLINE_MS / 60_000} minutes`), RUN_DEADLINE_MS);
  createInterface({ input: child.stderr! }).on('line', (line) => {
    tail.push(line);
    if (tail.length > 30) tail.shift();
    const url = /^coordinator: (http:\/\/\S+)/.exec(line)?.[1];
    if (url) stopPolling = pollStatus(url, 200, (s) => split.add(s.workers, true));
    const record = logRecord(line);
    if (record) records.push(record);
  });
  const code = await new Promise<number | null>((done) => child.once('exit', (c) => done(c)));
  clearTimeout(deadline);
  stopPolling();
  const peaks = rss.stop();
  groups.delete(pid);
  tryKill(-pid);
  for (const c of peaks.children) {
    tryKill(-c.pid); // workers left behind, if any
    groups.delete(c.pid);
  }
  if (killedFor) throw new Error(`${what} stopped by the bench: ${killedFor}`);
  if (code !== 0) throw new Error(`${what} exited with ${code}:\n${tail.join('\n')}`);
  return { records, peak: peaks.root, children: peaks.children, split, seconds: (performance.now() - started) / 1000 };
}

export function runTrain(jobFile: string, outDir: string): Promise<RunOutput> {
  return watched(['--log-level', 'debug', 'train', '--job', jobFile, '--out', outDir, '--json'], 'ringtrain train');
}

export function runLocal(jobFile: string, outDir: string, workers: number): Promise<RunOutput> {
  const args = ['--log-level', 'debug', 'local', '--workers', String(workers), '--port', '0', '--job', jobFile, '--out', outDir, '--json'];
  return watched(args, `ringtrain local --workers ${workers}`);
}

export interface EpochSeconds {
  readonly steps: number;
  /** The epoch's seconds as metrics.json records them: its steps and the checkpoints taken between them, not its validation. */
  readonly seconds: number;
}

/** metrics.json's steps and the seconds of its (single) epoch. */
export function epochSeconds(outDir: string): EpochSeconds {
  const m = JSON.parse(readFileSync(join(outDir, 'metrics.json'), 'utf8')) as { steps: number; history: { seconds: number }[] };
  if (m.history.length !== 1) throw new Error(`${outDir}/metrics.json: ${m.history.length} epochs, expected 1`);
  return { steps: m.steps, seconds: m.history[0]!.seconds };
}

/** The newest checkpoint taken between steps (reason `steps`: parameters and optimizer state, no best weights yet), else the newest. */
export function newestStepsCheckpoint(outDir: string): string {
  const parent = join(outDir, 'checkpoints');
  const dirs = readdirSync(parent).filter((n) => n.startsWith('step-')).sort().reverse();
  const reason = (d: string): string => (JSON.parse(readFileSync(join(parent, d, 'state.json'), 'utf8')) as { reason: string }).reason;
  const pick = dirs.find((d) => reason(d) === 'steps') ?? dirs[0];
  if (!pick) throw new Error(`${parent}: no checkpoint`);
  return join(parent, pick);
}

export interface ProbeResult {
  readonly reason: string;
  readonly step: number;
  readonly bytes: number;
  readonly restoreSeconds: number;
  readonly saveSeconds: number;
  readonly peakRss: number;
}

/** restore.ts on checkpoint `dir`, saving into `scratch`, in a process of its own. */
export async function probeCheckpoint(dir: string, scratch: string): Promise<ProbeResult> {
  const child = spawn(process.execPath, ['--import', 'tsx', PROBE, dir, scratch], { cwd: repoRoot, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  groups.add(child.pid!);
  let out = '';
  let err = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const code = await new Promise<number | null>((done) => child.once('exit', (c) => done(c)));
  groups.delete(child.pid!);
  if (code !== 0) throw new Error(`checkpoint probe of ${dir} exited with ${code}:\n${err.slice(-3000)}`);
  return JSON.parse(out) as ProbeResult;
}
