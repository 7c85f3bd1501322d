/**
 * bench/dashboard: what an open dashboard costs training. Runs the same `ringtrain
 * local --workers 2` job several times in this invocation, alternating (closed, open;
 * then open, closed; ...): without a browser ("closed"), and with a headless chromium tab on the coordinator's dashboard
 * from the moment the URL is printed to the end ("open"). Each run's samples/s is its
 * steady state: total samples / total seconds over epochs >= 2 of metrics.json (epoch 1
 * includes start-up and row shipping). Prints every run, the median of each mode, and the
 * ratio open / closed; the bound is a slowdown of at most 2%.
 *
 * The job is a small synthetic MLP with short steps (a few ms) and heartbeats every
 * 250 ms, so the coordinator has the most step reports to stream per second of training:
 * the worst case for the dashboard. The browser runs on the same machine as the workers,
 * so its own rendering counts against training too.
 *
 *   npm run dashboard -w bench [-- --rounds 2 --epochs 100 --workers 2]
 *
 * Needs /usr/bin/chromium (or --chromium PATH). Exits 0 whatever the ratio; not 0 when a
 * run fails.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { chromium, type Browser } from 'playwright-core';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '2' },
    epochs: { type: 'string', default: '100' },
    workers: { type: 'string', default: '2' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
  },
});
const rounds = Number(values.rounds);
const epochs = Number(values.epochs);
const workers = Number(values.workers);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds: a positive integer, got "${values.rounds}"`);
if (!Number.isInteger(epochs) || epochs < 3) throw new Error(`--epochs: at least 3 (epoch 1 is warm-up), got "${values.epochs}"`);

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(repoRoot, 'apps/cli/bin/ringtrain.mjs');

const JOB = {
  name: 'dashboard-bench',
  data: { source: 'synthetic:rows=6000,features=32,classes=4,seed=3', split: { validation: 0.1, test: 0.1, seed: 2 } },
  model: { hidden: [{ units: 256, activation: 'relu' }, { units: 256, activation: 'relu' }] },
  training: { optimizer: { name: 'adam', learningRate: 0.001 }, batchSize: 64, epochs, seed: 5, backend: 'wasm' },
  checkpoint: { everyEpoch: false },
  cluster: { heartbeatMs: 250 },
};

/** closed: no browser; blank: chromium on about:blank (the browser's own cost); open: chromium on the dashboard. */
type Mode = 'closed' | 'blank' | 'open';
const MODES: readonly Mode[] = ['closed', 'blank', 'open'];

interface RunResult {
  readonly mode: Mode;
  readonly samplesPerSecond: number;
  /** Stream messages the page received, and over how many seconds (open runs). */
  readonly frames: number;
  readonly seconds: number;
}

interface EpochRecord {
  readonly epoch: number;
  readonly seconds: number;
  readonly samplesPerSecond: number;
}

function steadyState(outDir: string): number {
  const history = (JSON.parse(readFileSync(join(outDir, 'metrics.json'), 'utf8')) as { history: EpochRecord[] }).history.filter((r) => r.epoch >= 2);
  const seconds = history.reduce((a, r) => a + r.seconds, 0);
  return history.reduce((a, r) => a + r.samplesPerSecond * r.seconds, 0) / seconds;
}

let pgid: number | null = null;
const killGroup = (): void => {
  if (pgid === null) return;
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // gone
  }
};
process.on('exit', killGroup);

async function run(mode: Mode, jobFile: string, outDir: string): Promise<RunResult> {
  let browser: Browser | null = null;
  if (mode !== 'closed') browser = await chromium.launch({ executablePath: values.chromium, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  const args = [BIN, '--log-level', 'warn', 'local', '--job', jobFile, '--out', outDir, '--workers', String(workers), '--port', '0', '--json'];
  const child = spawn(process.execPath, args, { cwd: repoRoot, detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  pgid = child.pid!;
  const tail: string[] = [];
  let frames = 0;
  let openedAt = 0;
  let pageDone: Promise<void> = Promise.resolve();
  createInterface({ input: child.stderr! }).on('line', (line) => {
    tail.push(line);
    if (tail.length > 40) tail.shift();
    const url = /^coordinator: (http:\/\/\S+)/.exec(line)?.[1];
    if (url && browser) {
      pageDone = (async () => {
        const page = await browser!.newPage({ viewport: { width: 1366, height: 768 } });
        page.on('websocket', (ws) => ws.on('framereceived', () => frames++));
        openedAt = Date.now();
        await page.goto(mode === 'open' ? `${url}/` : 'about:blank');
      })();
    }
  });
  const code = await new Promise<number | null>((done) => child.once('exit', (c) => done(c)));
  const seconds = openedAt ? (Date.now() - openedAt) / 1000 : 0;
  killGroup();
  pgid = null;
  await pageDone.catch(() => {});
  await browser?.close();
  if (code !== 0) throw new Error(`ringtrain local (${mode}) exited with ${code}:\n${tail.join('\n')}`);
  return { mode, samplesPerSecond: steadyState(outDir), frames, seconds };
}

/** The median: one run disturbed by another process on the machine moves it least. */
const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const int = (v: number): string => Math.round(v).toLocaleString('en-US');

let tmp: string | null = null;
try {
  tmp = await mkdtemp(join(tmpdir(), 'ringtrain-dashboard-bench-'));
  const jobFile = join(tmp, 'job.yaml');
  await writeFile(jobFile, `${JSON.stringify(JOB, null, 2)}\n`); // JSON is YAML
  const results: RunResult[] = [];
  for (let r = 0; r < rounds; r++) {
    // Rotating the order each round, so a drift of the machine's speed falls on every mode.
    for (const mode of [...MODES.slice(r % MODES.length), ...MODES.slice(0, r % MODES.length)]) {
      process.stderr.write(`round ${r + 1}/${rounds}: dashboard ${mode} ...\n`);
      const result = await run(mode, jobFile, join(tmp, `${mode}-${r}`));
      results.push(result);
      const stream = mode === 'open' ? `; the page received ${result.frames} stream messages in ${result.seconds.toFixed(1)} s (${(result.frames / result.seconds).toFixed(1)}/s)` : '';
      console.log(`round ${r + 1} dashboard ${mode.padEnd(6)} ${int(result.samplesPerSecond)} samples/s${stream}`);
    }
  }
  const closed = median(results.filter((x) => x.mode === 'closed').map((x) => x.samplesPerSecond));
  const blank = median(results.filter((x) => x.mode === 'blank').map((x) => x.samplesPerSecond));
  const open = median(results.filter((x) => x.mode === 'open').map((x) => x.samplesPerSecond));
  const ratio = open / closed;
  console.log(`synthetic MLP 32-256-256-4, batch 64, ${epochs} epochs, local --workers ${workers}; samples/s over epochs >= 2, median of ${rounds} run(s) each`);
  console.log(`dashboard closed: ${int(closed)} samples/s; open: ${int(open)} samples/s; open/closed: ${ratio.toFixed(3)} (${((1 - ratio) * 100).toFixed(1)}% slower; bound 2%)`);
  console.log(`a blank chromium tab alone: ${int(blank)} samples/s (${((1 - blank / closed) * 100).toFixed(1)}% slower than closed); the dashboard against the blank tab: ${((1 - open / blank) * 100).toFixed(1)}%`);
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
} finally {
  killGroup();
  if (tmp) await rm(tmp, { recursive: true, force: true });
}
