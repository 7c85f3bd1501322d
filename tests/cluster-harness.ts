/**
 * Real processes for the cluster tests: `ringtrain train`, `ringtrain local`, and a
 * coordinator with workers started one by one, so that a test can add, stop, pause and
 * kill them while the job runs. Everything listens on loopback; every process is
 * killed at the end.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../apps/cli/bin/ringtrain.mjs', import.meta.url));
export const TOKEN = 'cluster-test-token-0123456789abcdef';

/**
 * The test job sums its gradients with the exact reduction (`training.reduction: exact`,
 * libs/train's exact-step.ts): each micro-batch of 8 rows becomes integers on a scale
 * every worker shares, summed exactly, so the worker count, joins, leaves, kills and
 * restarts change nothing at all, and the suites compare step losses and weights for
 * equality. (With the float32 reduction only summation order differed, and training
 * carried that along: at 1,000 steps with 2 workers the step losses were 2.6e-6 apart,
 * and a world that went 1 -> 2 -> 1 crossed 1e-4 at step 686, so those suites compared
 * 600 steps within 1e-4.) 48 rows a batch in micro-batches of 8: six, so up to six
 * workers share a step.
 */

export interface JobOptions {
  readonly epochs: number;
  readonly everySteps?: number;
  /** cluster.startWorkers: the first generation waits for this many. */
  readonly startWorkers?: number;
}

/** A small classification job with dropout and input noise on, so randomness is exercised. */
export function jobYaml(o: JobOptions): string {
  return `name: cluster-test
data:
  source: synthetic:rows=3000,features=32,classes=4,seed=3
  split: { validation: 0.1, test: 0.1, seed: 2 }
  augment: { noise: 0.05 }
model:
  hidden:
    - { units: 256, activation: relu, dropout: 0.1 }
    - { units: 256, activation: tanh, dropout: 0.1 }
  l2: 0.0001
training:
  optimizer: { name: adam, learningRate: 0.001 }
  batchSize: 48
  reduction: exact
  microBatch: 8
  epochs: ${o.epochs}
  seed: 5
  backend: wasm
checkpoint: { everySteps: ${o.everySteps ?? 20}, keep: 2 }
cluster: { heartbeatMs: 250, heartbeatTimeoutMs: 3000, stopTimeoutMs: 5000, ringHeartbeatTimeoutMs: 1500${o.startWorkers ? `, startWorkers: ${o.startWorkers}` : ''} }
`;
}

export const STEPS_PER_EPOCH = 50; // 2,400 training rows / 48

/**
 * The directories tempDir made in this test process: removed when it ends with every
 * test passed (a large-model run leaves 1.4 GB, and repeated runs once filled this
 * machine's disk); kept after a failure, for a look (their paths are in the messages).
 */
const made: string[] = [];
process.once('exit', (code) => {
  if (code !== 0) return;
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

export async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `ringtrain-${prefix}-`));
  made.push(dir);
  return dir;
}

export async function writeJob(dir: string, o: JobOptions): Promise<string> {
  const path = join(dir, 'job.yaml');
  await writeFile(path, jobYaml(o));
  return path;
}

const children = new Set<ChildProcess>();

/** A temporary directory with the test job of `epochs` epochs, and an undisturbed `ringtrain train` run of it in `train/`. */
export async function referenceRun(prefix: string, epochs: number): Promise<{ dir: string; job: string; reference: string }> {
  const dir = await tempDir(prefix);
  const job = await writeJob(dir, { epochs });
  const reference = join(dir, 'train');
  await run(['train', '--job', job, '--out', reference]);
  return { dir, job, reference };
}

export function ringtrain(args: readonly string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const child = spawn(process.execPath, [BIN, '--log-level', 'warn', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1', ...env },
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-20_000);
  });
  (child as ChildProcess & { stderrTail: () => string }).stderrTail = () => err;
  return child;
}

export function stderrOf(child: ChildProcess): string {
  return (child as ChildProcess & { stderrTail?: () => string }).stderrTail?.() ?? '';
}

export function exited(child: ChildProcess, timeoutMs = 120_000): Promise<number> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`process ${child.pid} still running after ${timeoutMs} ms:\n${stderrOf(child)}`)), timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? (signal ? 128 : 1));
    });
  });
}

/** Runs a command to completion; rejects on a non-zero exit, with its stderr. */
export async function run(args: readonly string[], timeoutMs = 120_000): Promise<void> {
  const child = ringtrain(args);
  const code = await exited(child, timeoutMs);
  if (code !== 0) throw new Error(`ringtrain ${args.join(' ')} exited ${code}:\n${stderrOf(child)}`);
}

export async function killAll(): Promise<void> {
  await Promise.all(
    [...children].map(async (c) => {
      const done = exited(c, 10_000).catch(() => 0);
      c.kill('SIGCONT');
      c.kill('SIGKILL');
      await done;
    }),
  );
}

export interface Status {
  readonly state: string;
  readonly reason: string;
  readonly generation: number;
  readonly step: number;
  readonly ring: readonly string[];
  readonly workers: readonly { id: string; rank: number | null }[];
  readonly messages: Record<string, number>;
  readonly events: readonly { kind: string; message: string; generation: number }[];
  readonly checkpoints: readonly { step: number; dir: string; bytes: number }[];
  readonly error: { readonly code: string; readonly message: string } | null;
}

/** The status of the coordinator listening on `port` (its own process, or `local`'s). */
export async function statusAt(port: number): Promise<Status> {
  const res = await fetch(`http://127.0.0.1:${port}/api/status`);
  return (await res.json()) as Status;
}

/** Polls the status on `port` until `pred` holds; rejects if `owner` (the process serving it) exits, or after `timeoutMs`, with the last status. */
export async function waitForStatus(port: number, owner: ChildProcess, what: string, pred: (s: Status) => boolean, timeoutMs = 60_000): Promise<Status> {
  const deadline = Date.now() + timeoutMs;
  let last: Status | null = null;
  for (;;) {
    try {
      last = await statusAt(port);
      if (pred(last)) return last;
    } catch {
      // not listening (yet, or any more)
    }
    if (owner.exitCode !== null || owner.signalCode !== null) throw new Error(`coordinator exited while waiting for ${what}:\n${stderrOf(owner)}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last status: ${JSON.stringify(last && { ...last, events: last.events.slice(-8) })}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * The worker processes `ringtrain local` (process `localPid`) runs now, by worker id:
 * its children, read from /proc (Linux), each with its RINGTRAIN_WORKER_ID.
 */
export function localWorkers(localPid: number): Map<string, number> {
  const found = new Map<string, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // The fields after the command's closing parenthesis: state, then the parent's pid.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) !== localPid) continue;
      const id = readFileSync(`/proc/${entry}/environ`, 'utf8')
        .split('\0')
        .find((v) => v.startsWith('RINGTRAIN_WORKER_ID='))
        ?.slice('RINGTRAIN_WORKER_ID='.length);
      if (id) found.set(id, Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** The URL a `coordinator` (on stdout) or `local` (on stderr) prints once it listens; rejects if it exits first. */
export function coordinatorUrl(child: ChildProcess, stream: 'stdout' | 'stderr', timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`no coordinator URL within ${timeoutMs} ms:\n${stderrOf(child)}`)), timeoutMs);
    child[stream]!.on('data', (d: Buffer) => {
      text += d.toString();
      const m = /coordinator: (https?:\/\/\S+)/.exec(text);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited ${code} before printing its URL:\n${stderrOf(child)}`));
    });
  });
}

/** A coordinator process on loopback and the workers a test adds to it. */
export class Cluster {
  private coordinator: ChildProcess | null = null;
  readonly workers = new Map<string, ChildProcess>();
  port = 0;

  constructor(
    readonly job: string,
    readonly out: string,
  ) {}

  /** Starts (or restarts, on the same port) the coordinator; resolves once it listens. */
  async start(env: NodeJS.ProcessEnv = {}): Promise<void> {
    const child = ringtrain(['coordinator', '--job', this.job, '--out', this.out, '--host', '127.0.0.1', '--port', String(this.port)], { RINGTRAIN_TOKEN: TOKEN, ...env });
    this.coordinator = child;
    this.port = Number(new URL(await coordinatorUrl(child, 'stdout', 60_000)).port);
  }

  get coordinatorProcess(): ChildProcess {
    return this.coordinator!;
  }

  /** Starts worker `id` on loopback; `env` adds to or overrides its environment. */
  addWorker(id: string, env: NodeJS.ProcessEnv = {}): ChildProcess {
    const child = ringtrain(['worker'], {
      RINGTRAIN_COORDINATOR: `http://127.0.0.1:${this.port}`,
      RINGTRAIN_TOKEN: TOKEN,
      RINGTRAIN_ADVERTISE_HOST: '127.0.0.1',
      RINGTRAIN_BIND_HOST: '127.0.0.1',
      RINGTRAIN_WORKER_ID: id,
      ...env,
    });
    this.workers.set(id, child);
    return child;
  }

  async status(): Promise<Status> {
    return statusAt(this.port);
  }

  /** Polls the status until `pred` holds; rejects after `timeoutMs` with the last status. */
  async waitFor(what: string, pred: (s: Status) => boolean, timeoutMs = 60_000): Promise<Status> {
    return waitForStatus(this.port, this.coordinator!, what, pred, timeoutMs);
  }

  /** Waits for the coordinator to exit 0 (the job completed). */
  async completed(timeoutMs = 180_000): Promise<void> {
    const code = await exited(this.coordinator!, timeoutMs);
    if (code !== 0) throw new Error(`coordinator exited ${code}:\n${stderrOf(this.coordinator!)}`);
  }
}

/** Final weights of a run (model/weights.bin). */
export function weights(out: string): Float32Array {
  const b = readFileSync(join(out, 'model', 'weights.bin'));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

export function relativeL2(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let d = 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i]! - b[i]!) ** 2;
    n += a[i]! ** 2;
  }
  return Math.sqrt(d / n);
}

/** steps.jsonl as loss by step (the last line of a step wins). */
export function stepLosses(out: string): Map<number, number> {
  const m = new Map<number, number>();
  for (const line of readFileSync(join(out, 'steps.jsonl'), 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    const r = JSON.parse(line) as { step: number; loss: number };
    m.set(r.step, r.loss);
  }
  return m;
}

export interface ClusterLog {
  readonly generations: readonly { generation: number; step: number; world: number }[];
  readonly events: readonly { kind: string; message: string }[];
  readonly messages: Record<string, number>;
}

/** The coordinator's cluster.json, written when the job ends. */
export function clusterLog(out: string): ClusterLog {
  return JSON.parse(readFileSync(join(out, 'cluster.json'), 'utf8')) as ClusterLog;
}

/**
 * For a job with the float32 reduction: `out` trained what `reference` did up to
 * summation order. Every step has its loss within `tolerance` (relative) of the
 * reference's, and the final weights are within it (relative L2). Summation order is
 * all a worker count changes there, and training carries the difference along: for
 * the harness's test job when it used the float32 reduction, against `train` over 1,000 steps
 * with 2 workers, at most 2.6e-6 for step losses and 3.6e-7 for the weights, while a
 * world that went 1 -> 2 -> 1 around step 340 crossed 1e-4 at step 686. A step lost or
 * applied twice moves every weight by an optimizer update (1e-2 relative here), so a
 * short run at 1e-4 still catches one.
 */
export function assertCloseTraining(reference: string, out: string, tolerance: number, context = ''): void {
  const ref = stepLosses(reference);
  const got = stepLosses(out);
  const off = (k: number): boolean => !(Math.abs((got.get(k) ?? Infinity) - ref.get(k)!) / Math.abs(ref.get(k)!) < tolerance);
  const firstOff = [...ref.keys()].find(off);
  const diff = relativeL2(weights(reference), weights(out));
  const why = `${got.size} of ${ref.size} steps; first step loss past ${tolerance}: ${firstOff ?? 'none'}; weights differ by ${diff}${context ? `; ${context}` : ''}`;
  assert.ok(got.size === ref.size && firstOff === undefined && diff < tolerance, why);
}

/**
 * `out` trained exactly what `reference` did: every step has its loss, the same number,
 * and the final weights are the same bytes. The message says where they first differ,
 * and `context` what happened to the run.
 */
export function assertSameTraining(reference: string, out: string, context = ''): void {
  const ref = stepLosses(reference);
  const got = stepLosses(out);
  const firstOff = [...ref.keys()].find((k) => got.get(k) !== ref.get(k));
  const a = weights(reference);
  const b = weights(out);
  const same = a.length === b.length && Buffer.from(a.buffer).equals(Buffer.from(b.buffer));
  const why = `${got.size} of ${ref.size} steps; first step whose loss differs: ${firstOff === undefined ? 'none' : `${firstOff} (${ref.get(firstOff)} against ${got.get(firstOff)})`}; weights ${same ? 'identical' : `differ by ${relativeL2(a, b)} (relative L2)`}${context ? `; ${context}` : ''}`;
  assert.ok(got.size === ref.size && firstOff === undefined && same, why);
}

/** No committed step was lost: every generation after `after` started at or past `committed`. */
export function assertNoStepLost(generations: ClusterLog['generations'], after: number, committed: number): void {
  const later = generations.filter((g) => g.generation > after);
  assert.ok(later.length > 0, 'a new generation formed after the fault');
  for (const g of later) assert.ok(g.step >= committed, `generation ${g.generation} started at step ${g.step}, before the committed step ${committed}`);
}
