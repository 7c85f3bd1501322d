/**
 * bench/large-model: what each cost of a run grows to with the model's size (issue 15,
 * item 5). For MLPs of 5.8M, 27M and 107M parameters (784-2048-2048-10,
 * 784-4096-4096-1792-10, 784-8192-8192-4096-10; batch 256, Adam, synthetic data, one
 * epoch of --steps full batches, a checkpoint every 2 steps), it runs `ringtrain train`
 * and then `ringtrain local --workers W` for each W, one after the other, and prints one
 * JSON object per run on stdout (human notes go to stderr):
 *
 * - secondsPerStep: the epoch's seconds from metrics.json, less the checkpoints taken
 *   between its steps, over its steps;
 * - allReduceShare (local): the workers' commMs / (computeMs + commMs + waitMs) from
 *   /api/status, polled every 200 ms (each heartbeat period counted once);
 * - peakRss: each process's VmHWM from /proc, polled every 200 ms, in bytes and bytes
 *   per parameter; for a worker also its own memory plan (its `memory plan` log line);
 * - checkpoint (save): local: the coordinator's `checkpoint written` lines of the
 *   checkpoints between steps (rank 0's transfer and the write); train: its save is not
 *   logged with a duration, so restore.ts times writeCheckpoint of that checkpoint's
 *   state in a fresh process (the same function, fsyncs included);
 * - restore: restore.ts times readCheckpoint (what --resume does: the manifest's SHA-256
 *   checked, then the state read) of the run's newest checkpoint between steps, just
 *   written, so from the page cache;
 * - joinSeconds (local): the first generation's state sync as the workers log it
 *   (`generation started`, syncSeconds): the largest among the ranks that receive the
 *   state, from the ring formed to the state held, i.e. what a joiner waits for.
 *
 * Then ratios measured in this run: local over train seconds per step for each size,
 * and each cost of the larger sizes over the smaller's, beside their parameter ratio.
 * Configurations whose estimated memory (50 bytes a parameter and 256 MiB a process,
 * or what the same role measured earlier in this run) does not fit in MemAvailable are
 * skipped with a {"skipped"} line; a run that lowers MemAvailable under 512 MiB is
 * stopped.
 *
 *   npm run large-model -w bench [-- --sizes 5.8,27,107 --workers 2,3 --steps 4 --quick --specs-only]
 *
 * --quick: 5.8M only, 2 workers, 3 steps. --specs-only: writes and validates the job
 * specs, runs nothing. Exits 0 unless a run fails.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadJobSpec } from '@ringtrain/train';
import { CHECKPOINT_EVERY, jobSpec, layers, type ModelSize, parameterCount, rowsFor, SIZES } from './job.js';
import { memAvailable } from './proc.js';
import { epochSeconds, killGroups, type LogRecord, newestStepsCheckpoint, probeCheckpoint, type ProbeResult, runLocal, runTrain, type RunOutput } from './runs.js';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string' },
    workers: { type: 'string' },
    steps: { type: 'string' },
    quick: { type: 'boolean', default: false },
    'specs-only': { type: 'boolean', default: false },
  },
});
const quick = values.quick;
const sizeKeys = (values.sizes ?? (quick ? '5.8' : SIZES.map((s) => s.key).join(','))).split(',');
const sizes = sizeKeys.map((k) => SIZES.find((s) => s.key === k) ?? fail(`--sizes: one of ${SIZES.map((s) => s.key).join(', ')}, got "${k}"`));
const worlds = (values.workers ?? (quick ? '2' : '2,3')).split(',').map(Number);
const steps = Number(values.steps ?? (quick ? '3' : '4'));
if (worlds.some((w) => !Number.isInteger(w) || w < 2)) fail(`--workers: integers of at least 2, got "${values.workers}"`);
if (!Number.isInteger(steps) || steps < 3) fail(`--steps: at least 3 (a checkpoint falls between steps 2 and 3), got "${values.steps}"`);

function fail(message: string): never {
  throw new Error(message);
}

// ---- output ----

const emit = (o: object): void => void process.stdout.write(`${JSON.stringify(o)}\n`);
const note = (text: string): void => void process.stderr.write(`${text}\n`);
const round = (v: number | null, digits = 4): number | null => (v === null || !Number.isFinite(v) ? null : Number(v.toPrecision(digits)));
const ratio = (from: number | null | undefined, to: number | null | undefined): number | null => (from == null || to == null || from <= 0 ? null : round(to / from, 3));
const GiB = 2 ** 30;
const gb = (bytes: number): string => `${(bytes / 1e9).toFixed(1)} GB`;

// ---- memory: estimates, replaced by what the same role measured at the same size ----

const BYTES_PER_PARAM = 50;
const PROCESS_BASE = 256 * 2 ** 20;
const HEADROOM = 1 * GiB;
type Role = 'train' | 'coordinator' | 'worker' | 'probe';
const measuredPeak = new Map<string, number>();
function estimate(size: ModelSize, role: Role): number {
  const params = parameterCount(size);
  // The probe holds the state twice (the file read and its float copy): 16 bytes a parameter each with Adam and best weights.
  const fallback = role === 'probe' ? PROCESS_BASE + 32 * params : PROCESS_BASE + BYTES_PER_PARAM * params;
  return measuredPeak.get(`${size.key}/${role}`) ?? fallback;
}
function remember(size: ModelSize, role: Role, bytes: number | null): void {
  if (bytes !== null) measuredPeak.set(`${size.key}/${role}`, Math.max(bytes, measuredPeak.get(`${size.key}/${role}`) ?? 0));
}
/** Null when `needed` bytes fit in MemAvailable with a GiB to spare; else why not. */
function wontFit(needed: number): string | null {
  const available = memAvailable();
  return needed + HEADROOM <= available ? null : `needs about ${gb(needed)} (+ ${gb(HEADROOM)} headroom), MemAvailable is ${gb(available)}`;
}

// ---- one configuration's JSON line ----

type Line = Record<string, unknown>;
const perParam = (bytes: number | null, params: number): { bytes: number | null; bytesPerParam: number | null } => ({
  bytes,
  bytesPerParam: bytes === null ? null : round(bytes / params, 4),
});
const checkpointsWritten = (records: readonly LogRecord[]): LogRecord[] => records.filter((r) => r.msg === 'checkpoint written' && r['reason'] === 'steps');
const restoreOf = (p: ProbeResult): Line => ({ bytes: p.bytes, seconds: round(p.restoreSeconds), gbPerSecond: round(p.bytes / 1e9 / p.restoreSeconds), probePeakRss: p.peakRss });

function trainLine(size: ModelSize, run: RunOutput, outDir: string, probe: ProbeResult): Line {
  const params = parameterCount(size);
  const epoch = epochSeconds(outDir);
  const between = checkpointsWritten(run.records).length;
  return {
    size: size.label,
    params,
    layers: layers(size),
    run: 'train',
    workers: null,
    steps: epoch.steps,
    epochSeconds: round(epoch.seconds),
    checkpointsBetweenSteps: between,
    secondsPerStep: round((epoch.seconds - between * probe.saveSeconds) / epoch.steps),
    allReduceShare: null,
    split: null,
    peakRss: { train: perParam(run.peak, params) },
    checkpoint: { bytes: probe.bytes, saveSeconds: round(probe.saveSeconds), mbPerSecond: round(probe.bytes / 1e6 / probe.saveSeconds), measuredBy: 'restore.ts writeCheckpoint' },
    restore: restoreOf(probe),
    joinSeconds: null,
    join: null,
    wallSeconds: round(run.seconds),
  };
}

function localLine(size: ModelSize, workers: number, run: RunOutput, outDir: string, probe: ProbeResult): Line {
  const params = parameterCount(size);
  const epoch = epochSeconds(outDir);
  const saves = checkpointsWritten(run.records).filter((r) => typeof r['seconds'] === 'number' && typeof r['bytes'] === 'number');
  const saveSeconds = saves.reduce((a, r) => a + (r['seconds'] as number), 0);
  const saveBytes = saves.reduce((a, r) => a + (r['bytes'] as number), 0);
  const m = run.split.mean();
  const splitSum = m ? m.computeMs + m.commMs + m.waitMs : null;
  const counted = run.split.perWorker().reduce((a, w) => a + w.steps, 0);
  // The workers' first generation: its receivers' state sync is what a joiner waits for.
  const started = run.records.filter((r) => r.msg === 'generation started');
  const first = Math.min(...started.map((r) => r['generation'] as number));
  const firstGen = started.filter((r) => r['generation'] === first);
  const receivers = firstGen.filter((r) => r['rank'] !== r['source']).map((r) => r['syncSeconds'] as number);
  const stateBytes = (firstGen[0]?.['stateBytes'] as number | undefined) ?? null;
  const joinSeconds = receivers.length ? Math.max(...receivers) : null;
  const plans = new Map(run.records.filter((r) => r.msg === 'memory plan').map((r) => [r.pid, Math.round((r['totalMiB'] as number) * 2 ** 20)]));
  return {
    size: size.label,
    params,
    layers: layers(size),
    run: 'local',
    workers,
    steps: epoch.steps,
    epochSeconds: round(epoch.seconds),
    checkpointsBetweenSteps: saves.length,
    secondsPerStep: round((epoch.seconds - saveSeconds) / epoch.steps),
    allReduceShare: m && splitSum ? round(m.commMs / splitSum, 3) : null,
    split: m ? { computeMs: round(m.computeMs), commMs: round(m.commMs), waitMs: round(m.waitMs), workerStepsCounted: counted } : null,
    peakRss: {
      coordinator: perParam(run.peak, params),
      workers: run.children.map((c) => ({ id: c.id, ...perParam(c.bytes, params), plannedBytes: plans.get(c.pid) ?? null })),
    },
    checkpoint: saves.length
      ? { bytes: Math.round(saveBytes / saves.length), saveSeconds: round(saveSeconds / saves.length), mbPerSecond: round(saveBytes / 1e6 / saveSeconds), measuredBy: "coordinator's 'checkpoint written'" }
      : null,
    restore: restoreOf(probe),
    joinSeconds: round(joinSeconds),
    join: { stateBytes, gbPerSecond: stateBytes !== null && joinSeconds ? round(stateBytes / 1e9 / joinSeconds) : null, receivers: receivers.map((s) => round(s)), generations: new Set(started.map((r) => r['generation'])).size },
    wallSeconds: round(run.seconds),
  };
}

// ---- the ratios at the end ----

interface SizeResult {
  readonly size: ModelSize;
  train: Line | null;
  readonly local: Map<number, Line>;
}

const num = (line: Line | null | undefined, ...path: string[]): number | null => {
  let v: unknown = line;
  for (const key of path) v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[key] : undefined;
  return typeof v === 'number' ? v : null;
};
const maxWorkerPeak = (line: Line | undefined): number | null => {
  const ws = (line?.['peakRss'] as { workers?: { bytes: number | null }[] } | undefined)?.workers ?? [];
  const bytes = ws.map((w) => w.bytes).filter((b): b is number => b !== null);
  return bytes.length ? Math.max(...bytes) : null;
};

function summaries(results: readonly SizeResult[]): void {
  for (const r of results) {
    for (const [w, line] of r.local) {
      emit({ summary: 'local/train seconds per step', size: r.size.label, workers: w, ratio: ratio(num(r.train, 'secondsPerStep'), num(line, 'secondsPerStep')) });
    }
  }
  const pairs = results.flatMap((a, i) => results.slice(i + 1).map((b) => [a, b] as const));
  for (const [a, b] of pairs) {
    const pa = parameterCount(a.size);
    const pb = parameterCount(b.size);
    const grow = (pick: (line: Line | null | undefined) => number | null, la: Line | null | undefined, lb: Line | null | undefined): number | null => ratio(pick(la), pick(lb));
    const marginal = (x: number | null, y: number | null): number | null => (x === null || y === null ? null : round((y - x) / (pb - pa), 4));
    const costs = (la: Line | null | undefined, lb: Line | null | undefined): Line => ({
      secondsPerStep: grow((l) => num(l, 'secondsPerStep'), la, lb),
      commMs: grow((l) => num(l, 'split', 'commMs'), la, lb),
      checkpointSaveSeconds: grow((l) => num(l, 'checkpoint', 'saveSeconds'), la, lb),
      restoreSeconds: grow((l) => num(l, 'restore', 'seconds'), la, lb),
      joinSeconds: grow((l) => num(l, 'joinSeconds'), la, lb),
    });
    const runs: Line = { train: { ...costs(a.train, b.train), peakRss: grow((l) => num(l, 'peakRss', 'train', 'bytes'), a.train, b.train) } };
    const marginalBytesPerParam: Line = { train: marginal(num(a.train, 'peakRss', 'train', 'bytes'), num(b.train, 'peakRss', 'train', 'bytes')) };
    for (const [w, lb] of b.local) {
      const la = a.local.get(w);
      runs[`local${w}`] = { ...costs(la, lb), coordinatorPeakRss: grow((l) => num(l, 'peakRss', 'coordinator', 'bytes'), la, lb), workerPeakRss: ratio(maxWorkerPeak(la), maxWorkerPeak(lb)) };
      marginalBytesPerParam[`local${w}`] = { coordinator: marginal(num(la, 'peakRss', 'coordinator', 'bytes'), num(lb, 'peakRss', 'coordinator', 'bytes')), worker: marginal(maxWorkerPeak(la), maxWorkerPeak(lb)) };
    }
    emit({ summary: 'growth with size', from: a.size.label, to: b.size.label, params: ratio(pa, pb), ...runs, marginalBytesPerParam });
  }
}

// ---- the runs ----

let tmp: string | null = null;
process.on('exit', killGroups);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killGroups();
    if (tmp) void rm(tmp, { recursive: true, force: true }).finally(() => process.exit(130));
    else process.exit(130);
  });
}

/** Runs one configuration if it fits: its line, or null when skipped or failed (and said so). */
async function configuration(size: ModelSize, what: Line, needed: number, body: () => Promise<Line>): Promise<Line | null> {
  const why = wontFit(needed);
  if (why) {
    emit({ skipped: { size: size.label, ...what }, why });
    return null;
  }
  try {
    const line = await body();
    emit(line);
    return line;
  } catch (err) {
    emit({ failed: { size: size.label, ...what }, why: (err as Error).message.split('\n')[0] });
    note((err as Error).message);
    process.exitCode = 1;
    return null;
  }
}

try {
  tmp = await mkdtemp(join(tmpdir(), 'ringtrain-large-model-'));
  if (values['specs-only']) {
    for (const size of sizes) {
      const file = join(tmp, `job-${size.key}.yaml`);
      await writeFile(file, `${JSON.stringify(jobSpec(size, steps), null, 2)}\n`); // JSON is YAML
      const spec = await loadJobSpec(file); // throws SPEC_INVALID with every problem
      emit({ spec: size.label, name: spec.name, layers: layers(size), params: parameterCount(size), rows: rowsFor(steps), steps, valid: true });
    }
  } else {
    note(`sizes ${sizes.map((s) => `${s.label} (${layers(s)}, ${parameterCount(s).toLocaleString('en-US')} parameters)`).join(', ')}; ${steps} steps of 256 rows; local --workers ${worlds.join(', ')}`);
    note(`secondsPerStep excludes the checkpoints between steps (every ${CHECKPOINT_EVERY}); restore reads a checkpoint just written (page cache)`);
    const results: SizeResult[] = [];
    for (const size of sizes) {
      const result: SizeResult = { size, train: null, local: new Map() };
      results.push(result);
      const jobFile = join(tmp, `job-${size.key}.yaml`);
      await writeFile(jobFile, `${JSON.stringify(jobSpec(size, steps), null, 2)}\n`);
      const probe = async (outDir: string, name: string): Promise<ProbeResult> => {
        const why = wontFit(estimate(size, 'probe'));
        if (why) throw new Error(`checkpoint probe skipped: ${why}`);
        const p = await probeCheckpoint(newestStepsCheckpoint(outDir), join(tmp!, `${name}-probe`));
        remember(size, 'probe', p.peakRss);
        await rm(join(tmp!, `${name}-probe`), { recursive: true, force: true });
        return p;
      };

      note(`${size.label}: ringtrain train ...`);
      result.train = await configuration(size, { run: 'train' }, estimate(size, 'train'), async () => {
        const outDir = join(tmp!, `train-${size.key}`);
        const run = await runTrain(jobFile, outDir);
        remember(size, 'train', run.peak);
        const line = trainLine(size, run, outDir, await probe(outDir, `train-${size.key}`));
        await rm(outDir, { recursive: true, force: true });
        return line;
      });

      for (const w of worlds) {
        note(`${size.label}: ringtrain local --workers ${w} ...`);
        const needed = estimate(size, 'coordinator') + w * estimate(size, 'worker');
        const line = await configuration(size, { run: 'local', workers: w }, needed, async () => {
          const outDir = join(tmp!, `local${w}-${size.key}`);
          const run = await runLocal(jobFile, outDir, w);
          remember(size, 'coordinator', run.peak);
          for (const c of run.children) remember(size, 'worker', c.bytes);
          const l = localLine(size, w, run, outDir, await probe(outDir, `local${w}-${size.key}`));
          await rm(outDir, { recursive: true, force: true });
          return l;
        });
        if (line) result.local.set(w, line);
      }
    }
    summaries(results);
  }
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
} finally {
  killGroups();
  if (tmp) await rm(tmp, { recursive: true, force: true });
}
