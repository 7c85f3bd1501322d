/**
 * The run's history as the coordinator hears it: each committed step's loss (appended
 * to OUT/steps.jsonl at once, so that a coordinator killed with -9 keeps every step it
 * was told of), each epoch's record, and the generations formed (the dashboard's dashed
 * lines, cluster.json, report.html). Steps and epochs come from the heartbeats of the
 * newest ring's members (handlers.ts); each generation starts with replays of recent
 * steps, which repeat what is known.
 */
import type { EpochReport, StepReport } from '@ringtrain/protocol';
import { StepLog } from '@ringtrain/train';
import type { MetricHistory } from './status.js';

export type GenerationRecord = MetricHistory['generations'][number];

export class RunHistory {
  private readonly losses = new Map<number, number>();
  private readonly epochRecords = new Map<number, EpochReport>();
  private readonly formed: GenerationRecord[] = [];
  private readonly stepLog: StepLog;

  /** `resumed`: the epochs recorded by the checkpoint the job resumes from. */
  constructor(outDir: string, resumed: readonly EpochReport[] = []) {
    this.stepLog = new StepLog(outDir);
    for (const r of resumed) this.epochRecords.set(r.epoch, r);
  }

  /** A heartbeat's steps and epochs; true when it carried any. */
  record(steps: readonly StepReport[], epochs: readonly EpochReport[]): boolean {
    for (const s of steps) {
      // Replays (workers resend recent steps on joining) repeat what is known already.
      if (this.losses.get(s.step) === s.loss) continue;
      this.losses.set(s.step, s.loss);
      this.stepLog.add(s);
    }
    this.stepLog.flush();
    for (const e of epochs) this.epochRecords.set(e.epoch, e);
    return steps.length > 0 || epochs.length > 0;
  }

  generationFormed(g: GenerationRecord): void {
    this.formed.push(g);
  }

  /** Writes what steps.jsonl does not have yet (before a checkpoint, and at the end). */
  flush(): void {
    this.stepLog.flush();
  }

  /** [step, loss], in step order. */
  steps(): [number, number][] {
    return [...this.losses.entries()].sort((a, b) => a[0] - b[0]);
  }

  /** The epoch records, in epoch order. */
  epochs(): EpochReport[] {
    return [...this.epochRecords.values()].sort((a, b) => a.epoch - b.epoch);
  }

  /** The generations formed, oldest first (a copy). */
  generations(): GenerationRecord[] {
    return [...this.formed];
  }
}
