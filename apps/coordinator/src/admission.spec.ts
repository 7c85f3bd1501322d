import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { JobLimits } from '@ringtrain/protocol';
import { fetchIssue, type Formed, generationIssue, MAX_GENERATION_LEAP, roleOf, shardRows } from './admission.js';

/** 2,400 training rows in batches of 48 (50 steps an epoch), 300 validation rows (its confusion matrix's: no test rows). */
const LIMITS: JobLimits = {
  jobId: 'j',
  stepsPerEpoch: 50,
  epochs: 10,
  maxSteps: 500,
  maxEpochs: 10,
  batchSize: 48,
  rows: { train: 2400, validation: 300, test: 0 },
  params: 10,
  confusion: { split: 'validation', classes: 2, rows: 300 },
};
const ring = (generation: number, ...ids: string[]): Formed => ({
  generation,
  ranks: ids.map((id, rank) => ({ id, rank, address: { host: id, port: 1 } })),
  source: ids[0] ?? null,
});

test('roles: rank 0 and members of the current generation formed here; late for older ones; outsiders otherwise', () => {
  const f = ring(4, 'a', 'b');
  assert.equal(roleOf(f, 4, 'a', 4), 'rank0');
  assert.equal(roleOf(f, 4, 'b', 4), 'member');
  assert.equal(roleOf(f, 4, 'c', 4), 'outsider', 'a newcomer not in the ring');
  assert.equal(roleOf(f, 4, 'a', 3), 'late');
  assert.equal(roleOf(f, 4, 'a', 5), 'outsider', 'a generation never numbered');
  // Numbered above the ring formed (adopted from a worker after a restart, or stopping towards it): nobody is rank 0 of it yet.
  assert.equal(roleOf(f, 5, 'a', 5), 'outsider');
  assert.equal(roleOf(null, 0, 'a', 0), 'outsider');
});

test('a seen generation far above the coordinator is refused; a restart lag is not', () => {
  assert.equal(generationIssue(-1, 0), null);
  assert.equal(generationIssue(12, 7), null);
  assert.equal(generationIssue(7 + MAX_GENERATION_LEAP, 7), null);
  assert.equal(generationIssue(8 + MAX_GENERATION_LEAP, 7), `generation ${8 + MAX_GENERATION_LEAP} is more than ${MAX_GENERATION_LEAP} above this job's newest, 7`);
  assert.match(generationIssue(4294967295, 3)!, /generation 4294967295 is more than 1000 above this job's newest, 3/);
});

test('a shard: a rank\'s part of every batch of an epoch for training, its slice for evaluation; never more than the split', () => {
  assert.equal(shardRows('train', LIMITS, 1), 2400);
  assert.equal(shardRows('train', LIMITS, 2), 1200);
  assert.equal(shardRows('train', LIMITS, 7), 50 * 7); // ceil(48 / 7) = 7 a step
  assert.equal(shardRows('validation', LIMITS, 7), 43);
  assert.equal(shardRows('test', LIMITS, 3), 0);
  // The final evaluation's slice of the training split fits in a training shard, for any world.
  for (let world = 1; world <= 64; world++) assert.ok(Math.ceil(2400 / world) <= shardRows('train', LIMITS, world), `world ${world}`);
});

test('a shard with the exact reduction: whole micro-batches of every step, whole evaluation batches of a split', () => {
  const exact: JobLimits = { ...LIMITS, rows: { train: 2400, validation: 300, test: 2100 }, exactShards: { microBatch: 8, evaluationBatch: 1024 } };
  // 48 rows a step in six micro-batches of 8: a rank of 2 takes three of them (24 rows a step), of 4 two (16), of 7 one (8);
  // but the final evaluation's slice of the training split, whole 1,024-row batches, can be more: the larger of the two.
  assert.equal(shardRows('train', exact, 2), 2048, 'not 50 x 24: two evaluation batches');
  assert.equal(shardRows('train', exact, 4), 1024, 'not 50 x 16: one evaluation batch');
  assert.equal(shardRows('train', exact, 7), 1024, 'not 50 x 8');
  assert.equal(shardRows('train', exact, 1), 2400);
  assert.equal(shardRows('train', { ...exact, rows: { ...exact.rows, train: 9600 }, stepsPerEpoch: 200 }, 4), 200 * 16, 'a longer epoch: the training shard');
  // 300 validation rows are one evaluation batch: one rank takes them all.
  assert.equal(shardRows('validation', exact, 3), 300);
  assert.equal(shardRows('test', exact, 2), 2048, 'three batches of 1,024 rows (the last 52), two ranks: two batches');
  assert.equal(shardRows('test', exact, 3), 1024);
  // The final evaluation of the training split (three batches) fits for any world.
  for (let world = 1; world <= 64; world++) assert.ok(Math.min(2400, Math.ceil(3 / world) * 1024) <= shardRows('train', exact, world), `world ${world}`);
});

test('a fetch: from a member of the newest ring, at most its shard, one per split at a time', () => {
  const f = ring(2, 'a', 'b');
  assert.equal(fetchIssue(f, 'b', 'train', 1200, LIMITS, false), null);
  assert.deepEqual(fetchIssue(f, 'c', 'train', 1, LIMITS, false), { code: 'PROTOCOL_ROLE', reason: 'fetch: c is not a member of the newest ring' });
  assert.deepEqual(fetchIssue(null, 'a', 'train', 1, LIMITS, false)?.code, 'PROTOCOL_ROLE');
  assert.deepEqual(fetchIssue(f, 'a', 'train', 1201, LIMITS, false), {
    code: 'PROTOCOL_BAD_MESSAGE',
    reason: 'fetch: 1201 train rows asked for; a shard of a world of 2 has at most 1200',
  });
  assert.deepEqual(fetchIssue(f, 'a', 'validation', 10, LIMITS, true), {
    code: 'PROTOCOL_BAD_MESSAGE',
    reason: 'fetch: a validation request is still being answered (one per split at a time)',
  });
});
