/**
 * steps.jsonl in a run's output directory: one line per committed step with its mean
 * loss over the global batch, written by `ringtrain train` and by the coordinator alike,
 * so two runs can be compared step by step. Appended in batches (at each flush: epoch
 * ends, checkpoints, the end); a resumed run appends again from its checkpoint, and a
 * cluster may report a step twice after a failure, so for each step the last line wins.
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

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

/** The records of a steps.jsonl by step, the last line of each step winning; empty if the file is missing. */
export function readStepLog(outDir: string): Map<number, StepRecord> {
  const path = join(outDir, STEP_LOG_FILE);
  const out = new Map<number, StepRecord>();
  if (!existsSync(path)) return out;
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    const r = JSON.parse(line) as StepRecord;
    out.set(r.step, r);
  }
  return out;
}
