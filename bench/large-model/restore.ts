/**
 * bench/large-model's checkpoint probe, run by main.ts in a fresh process per
 * checkpoint (so the state it loads leaves with it):
 *
 *   node --import tsx bench/large-model/restore.ts CHECKPOINT_DIR SCRATCH_DIR
 *
 * restore: readCheckpoint, what a resume does (every file checked against the
 * manifest's SHA-256, then the state read); save: writeCheckpoint of that state under
 * SCRATCH_DIR, what `ringtrain train` does at each checkpoint (files fsynced as they are
 * written and hashed, the directory renamed into place). Prints one JSON line.
 */
import { readCheckpoint, writeCheckpoint } from '@ringtrain/train';

const [dir, scratch] = process.argv.slice(2);
if (!dir || !scratch) throw new Error('usage: restore.ts CHECKPOINT_DIR SCRATCH_DIR');

const t0 = performance.now();
const c = await readCheckpoint(dir);
const t1 = performance.now();
const s = c.snapshot;
await writeCheckpoint(scratch, s, {
  spec: c.spec,
  metadata: c.metadata,
  arch: c.arch,
  reason: c.reason,
  lineage: c.lineage,
  frozenLayers: [...c.frozenLayers],
  keep: 1,
  keepBest: false,
});
const t2 = performance.now();
const bytes = 4 * (s.params.length + s.optimizer.slots.length + (s.bestParams?.length ?? 0));
const result = { reason: c.reason, step: s.loop.globalStep, bytes, restoreSeconds: (t1 - t0) / 1000, saveSeconds: (t2 - t1) / 1000, peakRss: process.resourceUsage().maxRSS * 1024 };
process.stdout.write(`${JSON.stringify(result)}\n`);
