/**
 * The job's token: from RINGTRAIN_TOKEN, or the file named by --token-file or
 * RINGTRAIN_TOKEN_FILE (a Kubernetes Secret mounted as a file). `local` makes one.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { UsageError } from './errors.js';

export function readToken(file: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const path = file ?? env.RINGTRAIN_TOKEN_FILE;
  let token: string | undefined;
  if (path) {
    try {
      token = readFileSync(path, 'utf8').trim();
    } catch (err) {
      throw new UsageError(`cannot read the token file ${path}: ${(err as Error).message}`);
    }
  } else token = env.RINGTRAIN_TOKEN?.trim();
  if (!token) throw new UsageError('no job token: set RINGTRAIN_TOKEN, RINGTRAIN_TOKEN_FILE or --token-file');
  if (token.length < 16) throw new UsageError('the job token is too short: use at least 16 characters (e.g. openssl rand -hex 32)');
  return token;
}

export function newToken(): string {
  return randomBytes(32).toString('hex');
}

/**
 * RINGTRAIN_AFTER_JOB: `exit` (the default) ends a coordinator or worker when its job is
 * over, as deploy/k8s's Jobs need (the pod completes); `wait` keeps it until SIGTERM, for
 * a controller that restarts what exits (a Deployment: the job would run its end again,
 * the workers rejoin a finished job), and to keep the dashboard up after the job.
 */
export function afterJob(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env.RINGTRAIN_AFTER_JOB ?? 'exit';
  if (v !== 'exit' && v !== 'wait') throw new UsageError(`RINGTRAIN_AFTER_JOB must be exit or wait, got "${v}"`);
  return v === 'wait';
}
