/** The job's status as Prometheus text exposition (version 0.0.4). */
import { REJECT_REASONS, type RejectReason } from './rejections.js';
import { JOB_STATES, type JobStatus, type MetricHistory } from './status.js';

function label(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

/** `rejected`: refusals by reason (rejections.ts); every reason is written, 0 included, so that rate() works from the start. */
export function prometheusText(s: JobStatus, m: MetricHistory, rejected: Readonly<Record<RejectReason, number>> | null = null): string {
  const out: string[] = [];
  const gauge = (name: string, help: string, rows: [string, number | null][]) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
    for (const [labels, v] of rows) if (v !== null && Number.isFinite(v)) out.push(`${name}${labels} ${v}`);
  };
  const job = `job_name="${label(s.job)}"`;
  gauge('ringtrain_job_state', 'The job state (1 for the current one).', JOB_STATES.map((st) => [`{${job},state="${st}"}`, st === s.state ? 1 : 0]));
  gauge('ringtrain_generation', 'Current generation (ring) number.', [[`{${job}}`, s.generation]]);
  gauge('ringtrain_step', 'Committed global steps.', [[`{${job}}`, s.step]]);
  gauge('ringtrain_epoch', 'Epoch in progress (1-based).', [[`{${job}}`, s.epoch]]);
  gauge('ringtrain_workers', 'Workers connected, and in the ring.', [
    [`{${job},set="connected"}`, s.workers.length],
    [`{${job},set="ring"}`, s.ring.length],
  ]);
  gauge('ringtrain_samples_per_second', 'Training throughput.', [[`{${job}}`, s.samplesPerSecond]]);
  const lastStep = m.steps.at(-1);
  gauge('ringtrain_step_loss', 'Mean loss of the last reported step.', [[`{${job}}`, lastStep ? lastStep[1] : null]]);
  const lastEpoch = m.epochs.at(-1);
  gauge('ringtrain_validation_loss', 'Validation loss of the last epoch.', [[`{${job}}`, lastEpoch?.validation?.loss ?? null]]);
  gauge('ringtrain_validation_accuracy', 'Validation accuracy of the last epoch.', [[`{${job}}`, lastEpoch?.validation?.accuracy ?? null]]);
  for (const [key, help] of [
    ['computeMs', 'compute'],
    ['commMs', 'communication (all-reduce, waiting for peers included)'],
    ['waitMs', 'waiting for data'],
  ] as const) {
    gauge(`ringtrain_worker_step_${key.replace('Ms', '')}_milliseconds`, `Mean per-step time in ${help}.`, s.workers.map((w) => [`{${job},worker="${label(w.id)}"}`, w.timing ? w.timing[key] : null]));
  }
  gauge('ringtrain_worker_last_heartbeat_seconds', 'Seconds since the worker was last heard from.', s.workers.map((w) => [`{${job},worker="${label(w.id)}"}`, w.lastHeartbeatMs / 1000]));
  out.push('# HELP ringtrain_worker_messages_total Messages received from workers, by type.', '# TYPE ringtrain_worker_messages_total counter');
  for (const [type, n] of Object.entries(s.messages)) out.push(`ringtrain_worker_messages_total{${job},type="${label(type)}"} ${n}`);
  gauge('ringtrain_checkpoints', 'Checkpoints written by this coordinator.', [[`{${job}}`, s.checkpoints.length]]);
  if (rejected) {
    out.push('# HELP ringtrain_rejected_total Requests, upgrades and worker messages refused, by reason.', '# TYPE ringtrain_rejected_total counter');
    for (const reason of REJECT_REASONS) out.push(`ringtrain_rejected_total{${job},reason="${reason}"} ${rejected[reason]}`);
  }
  return `${out.join('\n')}\n`;
}
