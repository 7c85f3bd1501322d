/**
 * The end of a job as a client polling /api/status meets it: `completed` (or `stopped`)
 * only once every output is on disk. Before, the status said `completed` as soon as the
 * model was written, while cluster.json and report.html were still to come, and a test
 * reading cluster.json at that moment found none.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { coordinator, done, joined, within } from './server.fixture.js';
import type { JobState } from './status.js';

const OUTPUTS = ['model/weights.bin', 'metrics.json', 'job.yaml', 'cluster.json', 'report.html'];

test('the status says completed only once model/, metrics.json, job.yaml, cluster.json and report.html are written; finishing before', async (t) => {
  const h = await coordinator(t);
  const w1 = await joined(h, 'w1');
  await w1.next('generation');
  const seen: { state: JobState; missing: string[] }[] = [];
  const watch = setInterval(() => {
    const state = h.runtime.status().state;
    seen.push({ state, missing: OUTPUTS.filter((f) => !existsSync(join(h.outDir, f))) });
  }, 1);
  w1.send(done(1, 0.25));
  const outcome = await within(h.runtime.outcome, 'the job completed', 20_000);
  await new Promise((r) => setTimeout(r, 20));
  clearInterval(watch);
  assert.equal(outcome.kind, 'completed');
  assert.equal(h.runtime.status().state, 'completed');
  const early = seen.filter((s) => s.state === 'completed' && s.missing.length > 0);
  assert.deepEqual(early, [], 'completed while outputs were missing');
  assert.ok(seen.some((s) => s.state === 'finishing'), `states seen: ${[...new Set(seen.map((s) => s.state))].join(', ')}`);
});
