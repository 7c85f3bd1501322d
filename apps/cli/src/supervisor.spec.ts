import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { pino } from 'pino';
import { decideRestart, type RestartPolicy, type Slot, WorkerSupervisor, type WorkerExit } from './supervisor.js';

const POLICY: RestartPolicy = { maxRestarts: 3, baseDelayMs: 1000, maxDelayMs: 30_000, stableMs: 600_000 };
const killed: WorkerExit = { code: null, signal: 'SIGKILL', jobOver: false };
const crashed: WorkerExit = { code: 1, signal: null, jobOver: false };

/** Feeds exits at the given times to one slot, restarting it as decided; returns each decision. */
function walk(exits: [number, WorkerExit][], policy = POLICY) {
  let slot: Slot = { id: 'local-1', restarts: 0, startedAt: 0 };
  return exits.map(([now, exit]) => {
    const d = decideRestart(slot, exit, now, policy);
    if (d.kind === 'restart') slot = { ...slot, restarts: d.attempt, startedAt: now + d.delayMs };
    return d;
  });
}

test('a crash loop: restarts after 1, 2, 4 s, then gives up with CLI_WORKER_RESTARTS, naming the worker and how it ended', () => {
  const d = walk([
    [5_000, killed],
    [7_000, crashed],
    [10_000, crashed],
    [15_000, killed],
  ]);
  assert.deepEqual(d.slice(0, 3), [
    { kind: 'restart', attempt: 1, delayMs: 1000 },
    { kind: 'restart', attempt: 2, delayMs: 2000 },
    { kind: 'restart', attempt: 3, delayMs: 4000 },
  ]);
  assert.deepEqual(d[3], { kind: 'give-up', code: 'CLI_WORKER_RESTARTS', reason: 'worker local-1 exited with signal SIGKILL after 3 restarts in a row (--max-restarts 3)' });
});

test('the delay doubles up to maxDelayMs', () => {
  const policy = { ...POLICY, maxRestarts: 8 };
  const d = walk(Array.from({ length: 8 }, (_, i): [number, WorkerExit] => [i * 100_000, crashed]), { ...policy, stableMs: Infinity });
  assert.deepEqual(
    d.map((x) => (x.kind === 'restart' ? x.delayMs : x.kind)),
    [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000],
  );
});

test('code 2 (a coded error the worker printed) is not restarted: CLI_WORKERS_EXITED at once', () => {
  const d = decideRestart({ id: 'local-0', restarts: 0, startedAt: 0 }, { code: 2, signal: null, jobOver: false }, 800, POLICY);
  assert.deepEqual(d, {
    kind: 'give-up',
    code: 'CLI_WORKERS_EXITED',
    reason: 'worker local-0 exited with code 2 before the job completed: a coded error (its message is above), which a restart would repeat',
  });
});

test('exits once the job is over or local stops are not restarts; an exit 0 while the job runs (a worker that left) is', () => {
  const slot: Slot = { id: 'local-2', restarts: 3, startedAt: 0 };
  assert.deepEqual(decideRestart(slot, { code: 0, signal: null, jobOver: true }, 10, POLICY), { kind: 'ignore' });
  assert.deepEqual(decideRestart(slot, { code: null, signal: 'SIGKILL', jobOver: true }, 10, POLICY), { kind: 'ignore' });
  assert.deepEqual(decideRestart({ ...slot, restarts: 0 }, { code: 0, signal: null, jobOver: false }, 10, POLICY), { kind: 'restart', attempt: 1, delayMs: 1000 });
});

test('a process that ran stableMs before exiting had recovered: its count and delay start afresh', () => {
  const d = walk([
    [1_000, crashed],
    [3_000, crashed],
    [3_000 + 2_000 + 600_000, killed],
    [3_000 + 2_000 + 600_000 + 1_000 + 10, killed],
  ]);
  assert.deepEqual(
    d.map((x) => (x.kind === 'restart' ? [x.attempt, x.delayMs] : x.kind)),
    [
      [1, 1000],
      [2, 2000],
      [1, 1000],
      [2, 2000],
    ],
  );
});

test('--max-restarts 0: the first unexpected exit gives up', () => {
  const d = walk([[1_000, killed]], { ...POLICY, maxRestarts: 0 });
  assert.deepEqual(d, [{ kind: 'give-up', code: 'CLI_WORKER_RESTARTS', reason: 'worker local-1 exited with signal SIGKILL after 0 restarts in a row (--max-restarts 0)' }]);
});

// ---- the executor, with fake processes --------------------------------------------

class FakeProcess extends EventEmitter {
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  constructor(
    readonly id: string,
    readonly pid: number,
  ) {
    super();
  }
  exit(code: number | null, signal: NodeJS.Signals | null = null): void {
    this.exitCode = code;
    this.signalCode = signal;
    this.emit('exit', code, signal);
  }
  kill(signal: NodeJS.Signals): boolean {
    setImmediate(() => this.exit(null, signal));
    return true;
  }
}

function harness(policy: Partial<RestartPolicy> = {}, jobOver = () => false) {
  const spawned: FakeProcess[] = [];
  const logs: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => logs.push(JSON.parse(line) as Record<string, unknown>) });
  const supervisor = new WorkerSupervisor({
    ids: ['local-0', 'local-1'],
    spawn: (id) => {
      const p = new FakeProcess(id, 1000 + spawned.length);
      spawned.push(p);
      return p as unknown as ChildProcess;
    },
    policy: { ...POLICY, baseDelayMs: 5, maxDelayMs: 20, ...policy },
    log,
    jobOver,
  });
  return { spawned, logs, supervisor };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('the supervisor restarts a killed worker under the same id, after the delay, and logs id, signal, attempt and delay', async () => {
  const { spawned, logs, supervisor } = harness();
  assert.deepEqual(
    spawned.map((p) => p.id),
    ['local-0', 'local-1'],
  );
  spawned[1]!.exit(null, 'SIGKILL');
  assert.equal(spawned.length, 2, 'not before the delay');
  await sleep(30);
  assert.deepEqual(
    spawned.map((p) => p.id),
    ['local-0', 'local-1', 'local-1'],
  );
  const warn = logs.find((l) => l['level'] === 40)!;
  assert.deepEqual(
    { worker: warn['worker'], signal: warn['signal'], code: warn['code'], attempt: warn['attempt'], maxRestarts: warn['maxRestarts'], delayMs: warn['delayMs'] },
    { worker: 'local-1', signal: 'SIGKILL', code: null, attempt: 1, maxRestarts: 3, delayMs: 5 },
  );
  assert.equal(warn['msg'], 'worker local-1 exited with signal SIGKILL; restart 1 of 3 in 5 ms');
  supervisor.kill();
  await supervisor.exited(1000);
});

test('the supervisor gives up a crash loop with a coded error and starts nothing more', async () => {
  const { spawned, supervisor } = harness({ maxRestarts: 2 });
  const failed = assert.rejects(supervisor.failed, { code: 'CLI_WORKER_RESTARTS' });
  for (let i = 0; i < 3; i++) {
    spawned.filter((p) => p.id === 'local-0').at(-1)!.exit(1);
    await sleep(40);
  }
  await failed;
  assert.equal(spawned.filter((p) => p.id === 'local-0').length, 3, 'the first process and two restarts');
  spawned[1]!.exit(null, 'SIGKILL');
  await sleep(30);
  assert.equal(spawned.length, 4, 'nothing restarted once given up');
  supervisor.kill();
});

test('stop() cancels a restart waiting for its delay, and exits after the job are not restarts', async () => {
  const { spawned, supervisor } = harness({ baseDelayMs: 20 });
  spawned[0]!.exit(null, 'SIGKILL');
  supervisor.stop();
  spawned[1]!.exit(0);
  await sleep(50);
  assert.equal(spawned.length, 2);

  let over = false;
  const after = harness({}, () => over);
  over = true;
  for (const p of after.spawned) p.exit(0);
  await sleep(20);
  assert.equal(after.spawned.length, 2);
  await after.supervisor.exited(100);
});
