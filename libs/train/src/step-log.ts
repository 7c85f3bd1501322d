/**
 * steps.jsonl in a run's output directory: one line per committed step with its mean
 * loss over the global batch, written by `ringtrain train` and by the coordinator alike,
 * so two runs can be compared step by step. Appended in batches (at each flush: epoch
 * ends, checkpoints, the end); a resumed run appends again from its checkpoint, and a
 * cluster may report a step twice after a failure, so for each step the last line wins.
 */
import { appendFileSync, createReadStream, existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export const STEP_LOG_FILE = 'steps.jsonl';

export interface StepRecord {
  /** 0-based global step. */
  readonly step: number;
  /** 1-based epoch. */
  readonly epoch: number;
  /** Mean loss over the step's global batch. */
  readonly loss: number;
  readonly samples: number;
}

export class StepLog {
  private pending: string[] = [];
  readonly path: string;

  constructor(outDir: string) {
    this.path = join(outDir, STEP_LOG_FILE);
  }

  add(r: StepRecord): void {
    this.pending.push(JSON.stringify({ step: r.step, epoch: r.epoch, loss: r.loss, samples: r.samples }));
  }

  flush(): void {
    if (this.pending.length === 0) return;
    appendFileSync(this.path, `${this.pending.join('\n')}\n`);
    this.pending = [];
  }
}

/**
 * Every step's loss in a steps.jsonl as [step, loss], in step order, the last line of
 * each step winning; [] if the file is missing. Read line by line into a dense array
 * (8 bytes a step), so a long run's log is never one string in memory. A line that does
 * not parse, such as the torn last line of a killed process, is skipped, and so is a
 * step at or past `maxSteps` (the run's steps: the array is dense, so a stray step
 * number must not size it).
 */
export async function readStepLosses(outDir: string, maxSteps = 2 ** 31): Promise<[step: number, loss: number][]> {
  const path = join(outDir, STEP_LOG_FILE);
  if (!existsSync(path)) return [];
  let losses = new Float64Array(1024).fill(NaN);
  let end = 0;
  const lines = createInterface({ input: createReadStream(path, 'utf8'), crlfDelay: Infinity });
  for await (const line of lines) {
    let r: Partial<StepRecord>;
    try {
      r = JSON.parse(line) as Partial<StepRecord>;
    } catch {
      continue;
    }
    const { step, loss } = r ?? {};
    if (typeof step !== 'number' || !Number.isInteger(step) || step < 0 || step >= maxSteps || typeof loss !== 'number') continue;
    if (step >= losses.length) {
      const grown = new Float64Array(Math.max(step + 1, losses.length * 2)).fill(NaN);
      grown.set(losses);
      losses = grown;
    }
    losses[step] = loss;
    end = Math.max(end, step + 1);
  }
  const out: [number, number][] = [];
  for (let step = 0; step < end; step++) if (!Number.isNaN(losses[step]!)) out.push([step, losses[step]!]);
  return out;
}
