/**
 * `ringtrain local` keeps its N workers (apps/cli/src/supervisor.ts): a worker killed
 * with -9 before the first generation forms, or mid-run, is started again under its
 * id, and the job completes with N workers and the weights of an undisturbed run. A
 * worker that cannot stay up ends the job with CLI_WORKER_RESTARTS, exit 2, within a
 * bounded time, instead of leaving it waiting; stopped so mid-run, the job is saved
 * and --resume finishes it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  assertNoStepLost,
  assertSameTraining,
  clusterLog,
  coordinatorUrl,
  exited,
  killAll,
  localWorkers,
  referenceRun,
  ringtrain,
  stderrOf,
  waitForStatus,
} from './cluster-harness.js';

const EPOCHS = 40; // 2,000 steps

interface LogRecord {
  readonly msg: string;
  readonly worker?: string;
  readonly code?: number | null;
  readonly signal?: string | null;
  readonly attempt?: number;
  readonly delayMs?: number;
}

/** `local`'s own restart records (JSON lines on its stderr, which its workers share). */
function restartRecords(child: ChildProcess): LogRecord[] {
  const records: LogRecord[] = [];
  let partial = '';
  child.stderr!.on('data', (d: Buffer) => {
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      if (!line.includes('; restart ')) continue;
      try {
        records.push(JSON.parse(line) as LogRecord);
      } catch {
        // not a log line
      }
    }
  });
  return records;
}

/** Polls until `local` runs a process for each of `ids`; returns their pids. */
async function workerPids(child: ChildProcess, ids: readonly string[]): Promise<Map<string, number>> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const found = localWorkers(child.pid!);
    if (ids.every((id) => found.has(id))) return found;
    if (Date.now() > deadline) throw new Error(`local runs ${JSON.stringify([...found])}, not all of ${ids.join(', ')}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('ringtrain local restarts its workers', () => {
  let dir = '';
  let job = '';
  let reference = '';

  before(async () => {
    ({ dir, job, reference } = await referenceRun('restarts', EPOCHS));
  });
  after(killAll);

  /** `local --workers 3` on the test job; resolves once it listens. */
  async function local(name: string, args: readonly string[] = [], env: NodeJS.ProcessEnv = {}) {
    const out = join(dir, name);
    const child = ringtrain(['local', '--job', job, '--out', out, '--workers', '3', ...args], env);
    const records = restartRecords(child);
    const port = Number(new URL(await coordinatorUrl(child, 'stderr', 60_000)).port);
    return { child, out, port, records };
  }

  /** It completed (exit 0) with the reference's training, and ended with all three workers. */
  function completedAsReference(child: ChildProcess, out: string, context: string) {
    assert.equal(child.exitCode, 0, stderrOf(child));
    const { generations } = clusterLog(out);
    assertSameTraining(reference, out, `${context}; generations ${JSON.stringify(generations)}`);
    assert.equal(generations.at(-1)!.world, 3, `the last generation has all three workers: ${JSON.stringify(generations)}`);
    return generations;
  }

  test('kill -9 of a worker before the first generation forms: it is restarted and the job starts with all three', async () => {
    const { child, out, port, records } = await local('before-start');
    const pids = await workerPids(child, ['local-0', 'local-1', 'local-2']);
    const waiting = await waitForStatus(port, child, 'the status', () => true);
    process.kill(pids.get('local-1')!, 'SIGKILL');
    assert.equal(waiting.generation, 0, 'killed before the first generation');
    await exited(child, 240_000);
    const generations = completedAsReference(child, out, 'local-1 killed before the first generation');
    assert.ok(
      generations.every((g) => g.world === 3),
      `every generation has three workers: ${JSON.stringify(generations)}`,
    );
    assert.equal(generations[0]!.step, 0);
    assert.deepEqual(
      records.map((r) => [r.worker, r.signal, r.attempt, r.delayMs]),
      [['local-1', 'SIGKILL', 1, 1000]],
    );
  });

  test('kill -9 of a worker mid-run: the others go on, it is restarted, rejoins, and the job ends with all three', async () => {
    const { child, out, port, records } = await local('mid-run');
    // Early enough that the restarted worker (1 s of back-off, a few to start) rejoins well before the 2,000th step.
    const at = 30 + Math.floor(Math.random() * 60);
    const beforeKill = await waitForStatus(port, child, `three workers past step ${at}`, (s) => s.state === 'running' && s.ring.length === 3 && s.step >= at);
    process.kill((await workerPids(child, ['local-2'])).get('local-2')!, 'SIGKILL');
    const back = await waitForStatus(port, child, 'local-2 back in the ring', (s) => s.generation > beforeKill.generation + 1 && s.ring.length === 3, 60_000);
    assert.ok(back.ring.includes('local-2'));
    await exited(child, 240_000);
    const generations = completedAsReference(child, out, `local-2 killed at step ${beforeKill.step}`);
    assertNoStepLost(generations, beforeKill.generation, beforeKill.step);
    assert.deepEqual(
      records.map((r) => [r.worker, r.signal, r.attempt]),
      [['local-2', 'SIGKILL', 1]],
    );
  });

  test('restarts spent mid-run: local stops the job with a checkpoint, exits 2 with CLI_WORKER_RESTARTS, and --resume finishes it', async () => {
    const { child, out, port } = await local('spent', ['--max-restarts', '0']);
    const beforeKill = await waitForStatus(port, child, 'three workers past step 40', (s) => s.state === 'running' && s.ring.length === 3 && s.step >= 40);
    // Not rank 0: its step reports since its last heartbeat die with it, and with no next
    // generation nobody replays them (the weights would still match; steps.jsonl would not).
    const victim = beforeKill.ring.at(-1)!;
    process.kill((await workerPids(child, [victim])).get(victim)!, 'SIGKILL');
    assert.equal(await exited(child, 60_000), 2, stderrOf(child));
    assert.ok(
      stderrOf(child).includes(`ringtrain: error CLI_WORKER_RESTARTS: worker ${victim} exited with signal SIGKILL after 0 restarts in a row (--max-restarts 0)`),
      stderrOf(child),
    );
    const newest = readdirSync(join(out, 'checkpoints')).sort().at(-1)!;
    const state = JSON.parse(readFileSync(join(out, 'checkpoints', newest, 'state.json'), 'utf8')) as { reason: string; loop: { globalStep: number } };
    assert.equal(state.reason, 'stop');
    assert.ok(state.loop.globalStep >= beforeKill.step, `checkpoint at ${state.loop.globalStep}, the workers were at ${beforeKill.step}`);
    const resumed = await local('spent', ['--resume']);
    await exited(resumed.child, 240_000);
    // Every step's loss, the last one before the stop included: a rank other than rank 0
    // (which reports the losses) may have committed that step alone when the ring broke;
    // it replays its last steps with its `stopped` report.
    completedAsReference(resumed.child, out, `stopped at step ${state.loop.globalStep}, resumed`);
  });

  test('a worker that exits at once every time: its restarts are bounded, and local fails with CLI_WORKER_RESTARTS', async () => {
    // Every worker process exits with code 3 as it starts (local itself, not a worker, goes on).
    const crash = join(dir, 'crash.cjs');
    await writeFile(crash, "if (process.argv.includes('worker')) process.exit(3);\n");
    const t0 = Date.now();
    const { child, records } = await local('crash-loop', ['--workers', '2', '--max-restarts', '2'], { NODE_OPTIONS: `--require ${crash}` });
    assert.equal(await exited(child, 60_000), 2, stderrOf(child));
    const seconds = (Date.now() - t0) / 1000;
    assert.match(stderrOf(child), /ringtrain: error CLI_WORKER_RESTARTS: worker local-[01] exited with code 3 after 2 restarts in a row \(--max-restarts 2\)/);
    const loser = /CLI_WORKER_RESTARTS: worker (local-[01])/.exec(stderrOf(child))![1];
    assert.deepEqual(
      records.filter((r) => r.worker === loser).map((r) => [r.code, r.attempt, r.delayMs]),
      [
        [3, 1, 1000],
        [3, 2, 2000],
      ],
    );
    // 1 s and 2 s of back-off, three starts of each worker, the stop: well under 30 s.
    assert.ok(seconds < 30, `gave up after ${seconds} s`);
  });
});
