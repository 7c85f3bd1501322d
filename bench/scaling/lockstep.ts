/**
 * The lockstep probe: where a cluster's speedup goes, measured without a coordinator.
 * Runs the job's real training loop (libs/train) in W forked processes that each train
 * their share of every batch, in four modes (lockstep-protocol.ts): one process on the
 * whole batch; W independent processes; W processes that end every step in a ring
 * barrier; W processes that all-reduce the gradient as a cluster's workers do. The
 * steps between them separate what the machine costs (two processes computing at once),
 * what synchrony costs (every step waits for the slower process), what moving the
 * gradient costs, and, against `ringtrain local`, what the coordinator's protocol costs.
 *
 * Throughput counts steps inside an epoch only (from each epoch's second step on, epochs
 * >= 2), so that per-epoch work (validation, which every process here does whole) stays
 * out: samples / seconds per process, summed over processes.
 */
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { FromRank, LockstepMode, StepTiming, ToRank } from './lockstep-protocol.js';

const RANK_SCRIPT = new URL('./lockstep-rank.ts', import.meta.url);

export interface LockstepResult {
  readonly mode: LockstepMode;
  readonly world: number;
  readonly samplesPerSecond: number;
  /** Means per counted step over all processes. */
  readonly msPerStep: number;
  readonly computeMs: number;
  /** The collective's own time, waiting excluded. */
  readonly commMs: number;
  readonly waitMs: number;
  readonly steps: number;
}

/** Per-process rate and means over the counted steps of `steps`. */
function measure(steps: readonly StepTiming[], minEpoch: number): { rate: number; n: number; interval: number; compute: number; comm: number; wait: number } {
  let samples = 0;
  let seconds = 0;
  let n = 0;
  let compute = 0;
  let comm = 0;
  let wait = 0;
  for (let i = 1; i < steps.length; i++) {
    const s = steps[i]!;
    if (s.epoch < minEpoch || steps[i - 1]!.epoch !== s.epoch) continue;
    samples += s.samples;
    seconds += (s.at - steps[i - 1]!.at) / 1000;
    n += 1;
    compute += s.computeMs;
    comm += s.commMs - s.waitMs;
    wait += s.waitMs;
  }
  if (n === 0) throw new Error(`no step counted: the job needs at least ${minEpoch} epochs`);
  return { rate: samples / seconds, n, interval: (seconds * 1000) / n, compute: compute / n, comm: comm / n, wait: wait / n };
}

/** Trains `spec` (a job spec object) in `world` processes in `mode`; rejects when a process fails. */
export async function runLockstep(spec: object, mode: LockstepMode, world: number, minEpoch = 2): Promise<LockstepResult> {
  const token = randomBytes(16).toString('hex');
  const children = Array.from({ length: world }, () =>
    fork(RANK_SCRIPT, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] }),
  );
  const failed = new Promise<never>((_, reject) =>
    children.forEach((c, rank) =>
      c.once('exit', (code) => {
        if (code !== 0) reject(new Error(`lockstep ${mode} rank ${rank} exited with ${code}`));
      }),
    ),
  );
  /** One message of `type` from every rank, in rank order. */
  const all = <T extends FromRank['type']>(type: T): Promise<Extract<FromRank, { type: T }>[]> =>
    Promise.race([
      failed,
      Promise.all(
        children.map(
          (c) =>
            new Promise<Extract<FromRank, { type: T }>>((done) => {
              const on = (m: FromRank): void => {
                if (m.type !== type) return;
                c.off('message', on);
                done(m as Extract<FromRank, { type: T }>);
              };
              c.on('message', on);
            }),
        ),
      ),
    ]);
  const send = (m: ToRank): void => children.forEach((c) => c.send(m));
  try {
    const listening = all('listening');
    children.forEach((c, rank) => c.send({ type: 'start', spec, mode, rank, world } satisfies ToRank));
    const ports = (await listening).map((m) => m.port);
    const ready = all('ready');
    send({ type: 'form', ports, token });
    await ready;
    const reports = all('steps');
    send({ type: 'go' });
    const measured = (await reports).map((r) => measure(r.steps, minEpoch));
    const mean = (f: (m: (typeof measured)[number]) => number): number => measured.reduce((a, m) => a + f(m), 0) / measured.length;
    return {
      mode,
      world,
      // After an all-reduce every process's step count is the whole batch's, so each
      // process's rate is already the total; otherwise the processes' rates add up.
      samplesPerSecond: mode === 'allreduce' ? mean((m) => m.rate) : measured.reduce((a, m) => a + m.rate, 0),
      msPerStep: mean((m) => m.interval),
      computeMs: mean((m) => m.compute),
      commMs: mean((m) => m.comm),
      waitMs: mean((m) => m.wait),
      steps: measured.reduce((a, m) => a + m.n, 0),
    };
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  }
}
