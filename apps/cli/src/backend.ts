/** Backend choice for the commands: quiet tfjs's console banners, pick, and log the choice. */
import * as tf from '@tensorflow/tfjs-core';
import type { Logger } from 'pino';
import { type BackendInfo, type BackendName, type SelectOptions, selectBackend } from '@ringtrain/model';

export async function useBackend(name: BackendName, log: Logger, options: SelectOptions = {}): Promise<BackendInfo> {
  // PROD silences tfjs's console.warn banners ("looks like you are running in Node.js");
  // the log line below says what a person needs to know.
  tf.env().set('PROD', true);
  const backend = await selectBackend(name, options);
  log.info({ backend: backend.name, provider: backend.provider, ...(backend.adapter ? { adapter: backend.adapter } : {}), skipped: backend.skipped }, 'backend selected');
  return backend;
}
