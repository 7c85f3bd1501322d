/**
 * The job's id. A worker's `register` names the job whose state it holds (`held.jobId`);
 * the coordinator takes that state as a claim of progress only when the ids match. So
 * the id is a hash of what decides the training's trajectory: the resolved spec (without
 * its name and checkpoint schedule, which a resume may change), the normalization
 * statistics and the number of training rows.
 */
import { createHash } from 'node:crypto';
import { jobSpecToYaml, type OpenedJob } from '@ringtrain/train';

/** The id's length in hex digits: 64 bits, ample to tell jobs apart. */
const JOB_ID_HEX = 16;

export function jobIdOf(job: OpenedJob): string {
  const { spec, data } = job;
  return createHash('sha256')
    .update(jobSpecToYaml({ ...spec, name: 'x', checkpoint: { everySteps: 0, everyEpoch: true, keep: 1, keepBest: true } }))
    .update(JSON.stringify(data.normalizer))
    .update(String(data.train.rows))
    .digest('hex')
    .slice(0, JOB_ID_HEX);
}
