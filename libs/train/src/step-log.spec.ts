/**
 * steps.jsonl (step-log.ts): written in batches, read back by step with the last line of
 * a step winning, a torn or foreign line skipped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readStepLosses, STEP_LOG_FILE, StepLog } from './step-log.js';

test('readStepLosses: by step in order, the last line of a step winning; torn and foreign lines skipped; [] without a file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtrain-steplog-'));
  assert.deepEqual(await readStepLosses(dir), []);
  const log = new StepLog(dir);
  for (let step = 0; step < 5; step++) log.add({ step, epoch: 1, loss: step / 10, samples: 8 });
  log.flush();
  // A cluster reporting steps 3 and 4 again after a failure, then a step far ahead (its array grows), then a process killed mid-line.
  log.add({ step: 3, epoch: 1, loss: 0.33, samples: 8 });
  log.add({ step: 4, epoch: 1, loss: 0.44, samples: 8 });
  log.add({ step: 5000, epoch: 2, loss: 5, samples: 8 });
  log.flush();
  appendFileSync(join(dir, STEP_LOG_FILE), '{"step":9,"loss":null}\n{"other":true}\n[]\nnull\n{"step":-1,"loss":1}\n{"step":1.5,"loss":1}\n{"step":6,"epoch":1,"lo');
  const losses = await readStepLosses(dir);
  assert.deepEqual(losses, [
    [0, 0],
    [1, 0.1],
    [2, 0.2],
    [3, 0.33],
    [4, 0.44],
    [5000, 5],
  ]);
  // Bounded by the run's steps: a stray step number (say 2^31 - 1) cannot size the array.
  appendFileSync(join(dir, STEP_LOG_FILE), `\n{"step":${2 ** 31 - 1},"epoch":1,"loss":1,"samples":8}\n`);
  assert.deepEqual((await readStepLosses(dir, 5000)).at(-1), [4, 0.44]);
});
