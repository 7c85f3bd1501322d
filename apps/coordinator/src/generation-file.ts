/**
 * coordinator.json: the persisted part of the coordinator's own state, the newest
 * generation it numbered. Generations only ever grow (ring endpoints refuse an older
 * one), so a restarted coordinator continues from it, and from the newest generation
 * each worker reports as it registers.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { writeFileAtomic } from '@ringtrain/model';
import { MAX_GENERATION } from '@ringtrain/protocol';
import { LatestWriter } from './latest-writer.js';

export const STATE_FILE = 'coordinator.json';

/**
 * The persisted generation: an integer below MAX_GENERATION (the next ring's number must
 * be a u32 too). Anything else (unreadable, a number out of range, as an older
 * coordinator that adopted a worker's bad number may have written) is logged and read as
 * 0: the workers' own newest generations, checked as they register, carry the numbering on.
 */
export function readGeneration(outDir: string, log: Logger): number {
  const path = join(outDir, STATE_FILE);
  if (!existsSync(path)) return 0;
  let g: unknown;
  try {
    g = (JSON.parse(readFileSync(path, 'utf8')) as { generation?: unknown }).generation;
  } catch (err) {
    g = `unreadable (${(err as Error).message})`;
  }
  if (typeof g === 'number' && Number.isInteger(g) && g >= 0 && g < MAX_GENERATION) return g;
  log.warn({ file: path, generation: g }, `${STATE_FILE}: the generation is not an integer in 0..${MAX_GENERATION - 1}; starting from 0`);
  return 0;
}

/** Writes each new generation number, one write at a time, the newest last (latest-writer.ts). */
export function generationWriter(outDir: string, log: Logger): LatestWriter<number> {
  return new LatestWriter(
    (generation) => writeFileAtomic(join(outDir, STATE_FILE), `${JSON.stringify({ generation })}\n`),
    (err) => log.error({ err }, 'cannot persist the generation number'),
  );
}
