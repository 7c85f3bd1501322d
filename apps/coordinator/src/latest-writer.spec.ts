import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '@ringtrain/model';
import { LatestWriter } from './latest-writer.js';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('values set faster than they are written: one write at a time, the newest written last, the ones in between skipped', async () => {
  const written: number[] = [];
  let inFlight = 0;
  let most = 0;
  const writer = new LatestWriter<number>(
    async (g) => {
      inFlight += 1;
      most = Math.max(most, inFlight);
      // Slow and uneven, as a disk under load: unordered writes would finish out of order.
      await tick(g % 2 === 0 ? 15 : 2);
      written.push(g);
      inFlight -= 1;
    },
    (err) => assert.fail(err),
  );
  for (let g = 1; g <= 50; g++) {
    writer.set(g);
    if (g % 10 === 0) await tick(3);
  }
  await writer.flushed();
  assert.equal(most, 1, 'never two writes at once');
  assert.equal(written.at(-1), 50, `the newest last: ${written.join(', ')}`);
  assert.deepEqual([...written].sort((a, b) => a - b), written, 'in order');
  assert.ok(written.length <= 11, `${written.length} writes for 50 values`);
});

test('a failed write is reported and the next value is still written', async () => {
  const written: string[] = [];
  const errors: string[] = [];
  const writer = new LatestWriter<string>(
    async (v) => {
      await tick(1);
      if (v === 'bad') throw new Error('disk full');
      written.push(v);
    },
    (err) => errors.push(err.message),
  );
  writer.set('bad');
  writer.set('good');
  await writer.flushed();
  writer.set('later');
  await writer.flushed();
  assert.deepEqual(errors, ['disk full']);
  assert.deepEqual(written, ['good', 'later']);
});

test('coordinator.json after rapid successive generations holds the newest, and no temporary file is left', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtrain-latest-'));
  const path = join(dir, 'coordinator.json');
  const writer = new LatestWriter<number>(
    (generation) => writeFileAtomic(path, `${JSON.stringify({ generation })}\n`),
    (err) => assert.fail(err),
  );
  for (let generation = 1; generation <= 100; generation++) {
    writer.set(generation);
    if (generation % 7 === 0) await new Promise((r) => setImmediate(r));
  }
  await writer.flushed();
  assert.deepEqual(JSON.parse(await readFile(path, 'utf8')), { generation: 100 });
  assert.deepEqual(await readdir(dir), ['coordinator.json']);
});
