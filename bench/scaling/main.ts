/**
 * bench/scaling: data-parallel speedup on this machine. For each batch size, trains the
 * Fashion-MNIST MLP of examples/fashion-mnist.yaml (784-512-256-10, Adam, no early
 * stopping, no per-epoch checkpoints) with `ringtrain train` (one process) and then
 * `ringtrain local --workers 2` (a coordinator and two worker processes on loopback),
 * one after the other, and prints the ratio of their steady-state samples/s measured in
 * this run: total samples / total seconds over epochs >= 2 of each metrics.json history
 * (a cluster's first epoch also ships the rows to the workers). To separate what the
 * cluster costs from what the machine allows, it also runs W independent `train`
 * processes at once, each on batch/W rows per step with no communication at all: their
 * summed samples/s over the single process is this machine's ceiling for W processes
 * (two processes computing at once on a small VM slow each other down). For the cluster it also
 * prints the workers' split of step time into compute (gradient + optimizer update),
 * communication (all-reduce data movement) and waiting (for the slowest peer, for rows),
 * from /api/status polled every 500 ms during epochs >= 2; and each process's CPU share
 * over the same epochs (Linux /proc), to show contention between them.
 *
 * Each batch size runs with every reduction of --reduction (default fast,exact: the
 * float32 all-reduce and the exact, same-bits one, libs/train's exact-step.ts), one after
 * the other, and prints their ratio and the bytes each all-reduces per step; the ceiling
 * and the lockstep probe run once per batch size, with the first.
 *
 * Then, unless --skip-lockstep, the lockstep probe (lockstep.ts) on the same job, without
 * a coordinator: one process, W independent processes, W processes in lockstep (a ring
 * barrier per step) and W processes all-reducing the gradient; its table shows how much
 * of the ideal W x each of these costs on this machine.
 *
 *   npm run scaling -w bench [-- --batch 512,2048 --epochs 4 --workers 2 --reduction fast,exact --quick --skip-lockstep]
 *
 * --quick (or SCALING_QUICK=1): batch 2048, 3 epochs. Exits 0 whatever the ratio; not 0
 * when a run fails.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { fashionMnistDir, jobSpec as benchJobSpec, repoRoot } from './job.js';
import { runLockstep, type LockstepResult } from './lockstep.js';
import { busyTicks, cpuShares, cpuTicks, pollStatus, StepSplit, type StatusView } from './probe.js';

const { values } = parseArgs({
  options: {
    batch: { type: 'string' },
    epochs: { type: 'string' },
    workers: { type: 'string', default: '2' },
    backend: { type: 'string' },
    target: { type: 'string', default: '1.8' },
    quick: { type: 'boolean', default: false },
    reduction: { type: 'string', default: 'fast,exact' },
    'skip-lockstep': { type: 'boolean', default: false },
  },
});
const quick = values.quick || process.env['SCALING_QUICK'] === '1';
const batches = (values.batch ?? (quick ? '2048' : '512,2048')).split(',').map(Number).sort((a, b) => a - b);
const epochs = Number(values.epochs ?? (quick ? '3' : '4'));
const workers = Number(values.workers);
const target = Number(values.target);
if (batches.some((b) => !Number.isInteger(b) || b < 1)) throw new Error(`--batch: positive integers, got "${values.batch}"`);
if (!Number.isInteger(epochs) || epochs < 2) throw new Error(`--epochs: at least 2 (epoch 1 is warm-up), got "${values.epochs}"`);
const reductions = values.reduction.split(',') as ('fast' | 'exact')[];
if (reductions.length === 0 || reductions.some((r) => r !== 'fast' && r !== 'exact')) throw new Error(`--reduction: fast, exact or both, got "${values.reduction}"`);

const BIN = join(repoRoot, 'apps/cli/bin/ringtrain.mjs');
const dataDir = fashionMnistDir();

const jobSpec = (batchSize: number, reduction?: 'fast' | 'exact'): object => benchJobSpec({ batchSize, epochs, dataDir, backend: values.backend, ...(reduction ? { reduction } : {}) });

/** Parameters of the bench's MLP, 784-512-256-10. */
const PARAMS = 784 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10;
/** Bytes one step all-reduces: float32 gradients and 3 statistics, or the exact reduction's float64 sums and slots (exact-step.ts; 16 micro-batches by default). */
const stepBytes = (reduction: 'fast' | 'exact'): number => (reduction === 'fast' ? 4 * (PARAMS + 3) : 8 * (PARAMS + 2 + 2 * 16));

// ---- child processes: each run in its own process group, killed whole on any exit ----

const groups = new Set<number>();
const killGroups = (): void => groups.forEach((pid) => void tryKill(-pid));
const tryKill = (pid: number): void => {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
};
let tmp: string | null = null;
process.on('exit', killGroups);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killGroups();
    if (tmp) void rm(tmp, { recursive: true, force: true }).finally(() => process.exit(130));
    else process.exit(130);
  });
}

interface EpochRecord {
  readonly epoch: number;
  readonly seconds: number;
  readonly samplesPerSecond: number;
}
interface Summary {
  readonly history: readonly EpochRecord[];
  readonly final: { readonly test: { readonly accuracy: number | null } | null };
}

interface RunResult {
  readonly summary: Summary;
  /** Steady state: epochs >= 2. */
  readonly samplesPerSecond: number;
  readonly msPerStep: number;
  readonly split: StepSplit;
  /** CPU share (1 = one core) over epochs >= 2, by process: the command's own process first. */
  readonly cpu: { readonly name: string; readonly share: number }[] | null;
  /** CPU share taken by every other process on the machine over the same epochs. */
  readonly others: number | null;
  readonly last: StatusView | null;
}

function steadyState(history: readonly EpochRecord[], batchSize: number): { samplesPerSecond: number; msPerStep: number } {
  const steady = history.filter((r) => r.epoch >= 2);
  if (steady.length === 0) throw new Error(`metrics.json history has no epoch >= 2 (${history.length} epochs)`);
  const seconds = steady.reduce((a, r) => a + r.seconds, 0);
  const samples = steady.reduce((a, r) => a + r.samplesPerSecond * r.seconds, 0);
  const steps = steady.reduce((a, r) => a + Math.ceil(Math.round(r.samplesPerSecond * r.seconds) / batchSize), 0);
  return { samplesPerSecond: samples / seconds, msPerStep: (seconds * 1000) / steps };
}

/** A JSON log line's message and epoch; null for any other line. */
function logRecord(line: string): { msg?: string; epoch?: number } | null {
  if (!line.startsWith('{')) return null;
  try {
    return JSON.parse(line) as { msg?: string; epoch?: number };
  } catch {
    return null;
  }
}

/** Runs `ringtrain <command>` on the job to completion, watching it; rejects when it fails. */
async function run(command: 'train' | 'local', jobFile: string, outDir: string, batchSize: number): Promise<RunResult> {
  const extra = command === 'local' ? ['--workers', String(workers), '--port', '0'] : [];
  const args = [BIN, '--log-level', 'info', command, '--job', jobFile, '--out', outDir, '--json', ...extra];
  const child: ChildProcess = spawn(process.execPath, args, { cwd: repoRoot, detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  const pid = child.pid!;
  groups.add(pid);
  const split = new StepSplit();
  const tail: string[] = [];
  let stopPolling = (): void => {};
  let last: StatusView | null = null;
  // The window: from the log record of epoch 1 to that of the last epoch.
  let windowStart: number | null = null;
  let windowEnd: number | null = null;
  let cpuBefore: ReturnType<typeof cpuTicks> = null;
  let cpuAfter: ReturnType<typeof cpuTicks> = null;
  let busyBefore: number | null = null;
  let busyAfter: number | null = null;
  createInterface({ input: child.stderr! }).on('line', (line) => {
    tail.push(line);
    if (tail.length > 40) tail.shift();
    const url = /^coordinator: (http:\/\/\S+)/.exec(line)?.[1];
    if (url) {
      stopPolling = pollStatus(url, 500, (s) => {
        last = s;
        // A heartbeat's timing covers the second before it: count from a second into the window.
        const counting = windowStart !== null && Date.now() >= windowStart + 1000 && windowEnd === null && s.state === 'running';
        split.add(s.workers, counting);
      });
    }
    const record = logRecord(line);
    if (record?.msg !== 'epoch') return;
    if (record.epoch === 1) {
      windowStart = Date.now();
      cpuBefore = cpuTicks(pid);
      busyBefore = busyTicks();
    } else if (record.epoch === epochs) {
      windowEnd = Date.now();
      cpuAfter = cpuTicks(pid);
      busyAfter = busyTicks();
    }
  });
  const code = await new Promise<number | null>((done) => child.once('exit', (c) => done(c)));
  groups.delete(pid);
  tryKill(-pid); // workers left behind, if any
  stopPolling();
  if (code !== 0) throw new Error(`ringtrain ${command} (batch ${batchSize}) exited with ${code}:\n${tail.join('\n')}`);
  const summary = JSON.parse(readFileSync(join(outDir, 'metrics.json'), 'utf8')) as Summary;
  let cpu: RunResult['cpu'] = null;
  let others: number | null = null;
  if (cpuBefore && cpuAfter && windowStart !== null && windowEnd !== null) {
    const seconds = (windowEnd - windowStart) / 1000;
    const shares = cpuShares(cpuBefore, cpuAfter, seconds);
    cpu = [...shares].map(([p, share], i) => ({ name: p === pid ? (command === 'local' ? 'coordinator' : 'train') : `worker ${i - 1}`, share }));
    if (busyBefore !== null && busyAfter !== null) others = Math.max(0, (busyAfter - busyBefore) / 100 / seconds - cpu.reduce((a, p) => a + p.share, 0));
  }
  return { summary, ...steadyState(summary.history, batchSize), split, cpu, others, last };
}

// ---- output ----

const pct = (part: number, whole: number): string => `${((100 * part) / whole).toFixed(0)}%`;
const ms = (v: number): string => v.toFixed(1);
const int = (v: number): string => Math.round(v).toLocaleString('en-US');
const acc = (s: Summary): string => (s.final.test?.accuracy == null ? '-' : s.final.test.accuracy.toFixed(4));
const epochSeconds = (s: Summary): string => s.history.map((r) => r.seconds.toFixed(1)).join(' ');

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ')).join('\n');
}

const local = `local-${workers}`;
const header = ['batch', 'reduction', 'train samples/s', `${local} samples/s`, 'ratio', `${workers} x train ceiling`, 'of ceiling', 'train ms/step', `${local} ms/step`, 'compute ms', 'comm ms', 'wait ms', 'other ms', `test acc train/${local}`];
const rows: string[][] = [header];
const details: string[] = [];
const verdicts: string[] = [];
const probeHeader = ['batch', '1 process', `${workers} independent`, `${workers} lockstep, barrier`, `${workers} lockstep, all-reduce`];
const probeRows: string[][] = [probeHeader];
const probeSplits: string[] = [];
/** Batch sizes whose runs shared the machine with other busy processes. */
const contended: number[] = [];

try {
  tmp = await mkdtemp(join(tmpdir(), 'ringtrain-scaling-'));
  for (const batch of batches) {
    const byReduction = new Map<string, { one: RunResult; many: RunResult }>();
    let ceilingRuns: RunResult[] | null = null;
    for (const reduction of reductions) {
      const first = reduction === reductions[0];
      const jobFile = join(tmp, `job-${batch}-${reduction}.yaml`);
      await writeFile(jobFile, `${JSON.stringify(jobSpec(batch, reduction), null, 2)}\n`); // JSON is YAML
      process.stderr.write(`batch ${batch}, ${reduction}: ringtrain train ...\n`);
      const one = await run('train', jobFile, join(tmp, `train-${batch}-${reduction}`), batch);
      process.stderr.write(`batch ${batch}, ${reduction}: ringtrain local --workers ${workers} ...\n`);
      const many = await run('local', jobFile, join(tmp, `local-${batch}-${reduction}`), batch);
      byReduction.set(reduction, { one, many });
      const ratio = many.samplesPerSecond / one.samplesPerSecond;
      // The machine's ceiling: W independent processes on batch/W rows each, at once (once per batch size).
      const share = Math.ceil(batch / workers);
      if (first) {
        const shareFile = join(tmp, `job-${share}.yaml`);
        await writeFile(shareFile, `${JSON.stringify(jobSpec(share), null, 2)}\n`);
        process.stderr.write(`batch ${batch}: ${workers} x ringtrain train on ${share} rows per step, at once ...\n`);
        ceilingRuns = await Promise.all(Array.from({ length: workers }, (_, i) => run('train', shareFile, join(tmp!, `independent-${batch}-${i}`), share)));
      }
      const ceiling = ceilingRuns!.reduce((a, r) => a + r.samplesPerSecond, 0) / one.samplesPerSecond;
      const m = many.split.mean();
      const sum = m ? m.computeMs + m.commMs + m.waitMs : NaN;
      const part = (v: number | undefined): string => (m && v !== undefined ? `${ms(v)} ${pct(v, sum)}` : '-');
      rows.push([
        String(batch),
        reduction,
        int(one.samplesPerSecond),
        int(many.samplesPerSecond),
        `${ratio.toFixed(2)}x`,
        `${ceiling.toFixed(2)}x`,
        pct(ratio, ceiling),
        ms(one.msPerStep),
        ms(many.msPerStep),
        part(m?.computeMs),
        part(m?.commMs),
        part(m?.waitMs),
        m ? ms(many.msPerStep - sum) : '-',
        `${acc(one.summary)}/${acc(many.summary)}`,
      ]);
      details.push(`batch ${batch}, ${reduction}:`);
      for (const w of many.split.perWorker()) {
        details.push(`  ${w.id}: ${w.steps} steps counted, compute ${ms(w.computeMs)} ms, comm ${ms(w.commMs)} ms, wait ${ms(w.waitMs)} ms per step`);
      }
      const cpu = (r: RunResult): string => (r.cpu ? r.cpu.map((p) => `${p.name} ${p.share.toFixed(2)}`).join(', ') : 'n/a');
      const others = (r: RunResult): string => (r.others === null ? 'n/a' : r.others.toFixed(2));
      details.push(`  CPU cores used over epochs >= 2: train: ${cpu(one)}; ${local}: ${cpu(many)}; other processes: ${others(one)} during train, ${others(many)} during ${local}`);
      if (Math.max(one.others ?? 0, many.others ?? 0) > 0.2) contended.push(batch);
      details.push(`  epoch seconds: train ${epochSeconds(one.summary)}; ${local} ${epochSeconds(many.summary)}`);
      if (many.last) {
        const odd = many.last.events.filter((e) => ['leave', 'lost', 'stopping', 'error'].includes(e.kind));
        details.push(`  ${local}: generation ${many.last.generation} at the end${odd.length ? `; events: ${odd.map((e) => `${e.kind}: ${e.message}`).join('; ')}` : ''}`);
      }
      if (first && !values['skip-lockstep']) {
        const spec = jobSpec(batch);
        const probe: LockstepResult[] = [];
        for (const [mode, world] of [['single', 1], ['independent', workers], ['barrier', workers], ['allreduce', workers]] as const) {
          process.stderr.write(`batch ${batch}: lockstep probe, ${mode} x ${world} ...\n`);
          probe.push(await runLockstep(spec, mode, world));
        }
        const base = probe[0]!.samplesPerSecond;
        probeRows.push([String(batch), ...probe.map((r) => `${int(r.samplesPerSecond)} ${(r.samplesPerSecond / base).toFixed(2)}x ${ms(r.msPerStep)} ms`)]);
        for (const r of probe.slice(2)) {
          probeSplits.push(`  batch ${batch}, ${r.mode}: compute ${ms(r.computeMs)} ms, comm ${ms(r.commMs)} ms, wait ${ms(r.waitMs)} ms per step (${r.steps} process-steps)`);
        }
      }
      verdicts.push(`scaling at batch ${batch}, ${reduction}: ${ratio.toFixed(2)}x (target ${target}x; this machine's ceiling for ${workers} processes: ${ceiling.toFixed(2)}x)`);
    }
    const fast = byReduction.get('fast');
    const exact = byReduction.get('exact');
    if (fast && exact) {
      verdicts.push(
        `exact over fast at batch ${batch}: train ${(exact.one.samplesPerSecond / fast.one.samplesPerSecond).toFixed(3)}, ${local} ${(exact.many.samplesPerSecond / fast.many.samplesPerSecond).toFixed(3)}; ` +
          `bytes all-reduced per step: fast ${int(stepBytes('fast'))}, exact ${int(stepBytes('exact'))}`,
      );
    }
  }
  console.log(`Fashion-MNIST MLP 784-512-256-10, Adam, ${epochs} epochs; samples/s = total samples / total seconds over epochs >= 2 of metrics.json`);
  console.log(`step split: mean over ${local}'s workers of /api/status timing (ms per step, weighted by steps) during epochs >= 2; other = ${local} ms/step - their sum`);
  console.log(table(rows));
  console.log(details.join('\n'));
  if (probeRows.length > 1) {
    console.log(`lockstep probe (no coordinator; samples/s, ratio to 1 process, ms per step; steps inside epochs >= 2 only):`);
    console.log(table(probeRows));
    console.log(probeSplits.join('\n'));
  }
  if (contended.length > 0) {
    console.log(`WARNING: other processes used more than 0.2 cores during the runs at batch ${contended.join(', ')}: their ratios understate the cluster`);
  }
  console.log(verdicts.join('\n'));
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
} finally {
  killGroups();
  if (tmp) await rm(tmp, { recursive: true, force: true });
}
