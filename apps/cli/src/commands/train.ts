/**
 * `ringtrain train`: one process, the whole job. Loads and validates the spec, prepares
 * the data, trains with progress, writes model/, metrics.json, job.yaml and report.html,
 * and prints the final metrics. Without --job it runs the built-in Iris example.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Logger } from 'pino';
import { writeReport } from '@ringtrain/coordinator';
import { checkpointOptions, loadCheckpointState, type Metrics, openJob, STEP_LOG_FILE, StepLog, stateSource, summarize, train, writeCheckpoint, writeRunOutput, type RunSummary } from '@ringtrain/train';
import { useBackend } from '../backend.js';
import { resolveJob } from '../job-args.js';
import { Progress } from '../progress.js';

export { EXAMPLES_DIR } from '../job-args.js';

export interface TrainCommandResult {
  readonly outDir: string;
  readonly summary: RunSummary;
  /** OUT/report.html; null when it could not be written (the run's other outputs stand). */
  readonly report: string | null;
}

function fmt(v: number | null | undefined): string {
  return v === null || v === undefined ? '-' : v.toFixed(4);
}

export function summaryTable(s: RunSummary): string {
  if (s.final === null) return `interrupted after ${s.steps} steps (${s.history.length} epochs recorded): not evaluated`;
  const rows: [string, Metrics | null][] = [
    ['train', s.final.train],
    ['validation', s.final.validation],
    ['test', s.final.test],
  ];
  const lines = [`split        loss      accuracy`];
  for (const [name, m] of rows) if (m) lines.push(`${name.padEnd(12)} ${fmt(m.loss).padEnd(9)} ${fmt(m.accuracy)}`);
  return lines.join('\n');
}

export async function trainCommand(argv: string[], log: Logger, stop: () => boolean): Promise<TrainCommandResult> {
  const { values } = parseArgs({
    args: argv,
    options: {
      job: { type: 'string' },
      out: { type: 'string' },
      data: { type: 'string' },
      label: { type: 'string' },
      'no-header': { type: 'boolean', default: false },
      backend: { type: 'string' },
      resume: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  const { spec, outDir, checkpoint: head } = await resolveJob(
    { job: values.job, out: values.out, data: values.data, label: values.label, header: values['no-header'] ? false : undefined, backend: values.backend, resume: values.resume ? 'required' : 'never' },
    log,
  );
  const backend = await useBackend(spec.training.backend, log);
  // This process trains from the checkpoint's state itself: read it into memory (verified already).
  const checkpoint = head ? await loadCheckpointState(head) : null;
  const job = await openJob(spec, checkpoint);
  const { data, loss, mlp, frozenLayers, metadata } = job;
  {
    log.info(
      {
        source: data.source,
        train: data.train.rows,
        validation: data.validation.rows,
        test: data.test.rows,
        features: data.train.cols,
        task: data.task.kind,
        ms: Math.round(job.dataMs),
      },
      'data ready',
    );
    if (job.taskInference) log.info({ label: job.taskInference.label, classes: job.taskInference.classes }, job.taskInference.message);
    if (spec.init && !checkpoint) log.info({ from: spec.init.from, frozen: [...frozenLayers], replaceHead: spec.init.replaceHead }, 'fine-tuning');
    log.info({ job: spec.name, parameters: mlp.layout.size, loss, epochs: spec.training.epochs, batchSize: spec.training.batchSize }, 'training');
    const progress = new Progress(log);
    await mkdir(outDir, { recursive: true });
    // A fresh run starts its step log afresh; a resumed one appends (the last line of a step wins).
    if (!checkpoint) await rm(join(outDir, STEP_LOG_FILE), { force: true });
    const steps = new StepLog(outDir);
    const result = await train({
      spec,
      data,
      mlp,
      loss,
      frozenLayers,
      ...(checkpoint ? { resume: checkpoint.snapshot } : {}),
      checkpoint: {
        everySteps: spec.checkpoint.everySteps,
        everyEpoch: spec.checkpoint.everyEpoch,
        save: async (snapshot, reason) => {
          steps.flush();
          const began = performance.now();
          const dir = await writeCheckpoint(outDir, snapshot, checkpointOptions(job, reason));
          // What a checkpoint costs, as the coordinator logs it: seconds for a large model's gigabytes.
          const seconds = (performance.now() - began) / 1000;
          const bytes = stateSource(snapshot).bytes;
          log.debug({ dir, reason, step: snapshot.loop.globalStep, bytes, seconds, mbPerSecond: bytes / 1e6 / seconds }, 'checkpoint written');
        },
      },
      onStep: (p) => {
        steps.add({ step: p.globalStep, epoch: p.epoch, loss: p.stepLoss, samples: p.stepSamples });
        progress.step(p);
      },
      onEpoch: (r) => {
        steps.flush();
        progress.epoch(r, spec.training.epochs);
      },
      shouldStop: stop,
    });
    steps.flush();
    if (result.stoppedEarly) log.info({ bestEpoch: result.bestEpoch, epochs: result.history.length }, 'early stopping: best weights restored');
    if (result.interrupted) log.warn({ steps: result.steps }, 'interrupted: checkpoint saved; model/ holds the weights so far, not evaluated; continue with --resume');
    const summary = summarize(spec, data, backend.name, loss, result);
    await writeRunOutput(outDir, spec, data, summary, result, metadata);
    log.info({ out: outDir, seconds: Number(result.seconds.toFixed(2)) }, 'model written');
    const report = await writeReport(outDir, { spec, data, summary, model: result.interrupted ? null : result.mlp }).catch((err: Error) => {
      log.error({ err }, 'cannot write report.html');
      return null;
    });
    process.stdout.write(
      values.json ? `${JSON.stringify(report ? { ...summary, report } : summary)}\n` : `${summaryTable(summary)}\noutput: ${outDir}\n${report ? `report: ${report}\n` : ''}`,
    );
    return { outDir, summary, report };
  }
}
