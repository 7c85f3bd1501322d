/**
 * The confusion matrix's plan (confusion.ts): the test split, else validation, else
 * none; all rows up to the bound, else evenly spaced ones; and the sample's rows in the
 * ranks' slices add up to the sample, exactly once each, for any world.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rankRange } from '@ringtrain/data';
import { CONFUSION_MAX_ROWS, confusionPlan, sampledRow, sampleIn } from './confusion.js';

const classification = { kind: 'classification' as const, classes: ['a', 'b', 'c'] };
const data = (validation: number, testRows: number, task: { kind: 'classification'; classes: string[] } | { kind: 'regression'; target: string } = classification) =>
  ({ task, validation: { rows: validation }, test: { rows: testRows } }) as never;

test('the plan: the test split, the validation split without test rows, none for regression or no rows; at most the bound', () => {
  assert.deepEqual(confusionPlan(data(20, 30)), { split: 'test', classes: 3, splitRows: 30, rows: 30 });
  assert.deepEqual(confusionPlan(data(20, 0)), { split: 'validation', classes: 3, splitRows: 20, rows: 20 });
  assert.equal(confusionPlan(data(0, 0)), null);
  assert.equal(confusionPlan(data(20, 30, { kind: 'regression', target: 'y' })), null);
  assert.deepEqual(confusionPlan(data(0, 25_000)), { split: 'test', classes: 3, splitRows: 25_000, rows: CONFUSION_MAX_ROWS });
  assert.deepEqual(confusionPlan(data(0, 30), 7), { split: 'test', classes: 3, splitRows: 30, rows: 7 });
});

test('sampledRow: every row within the bound; past it floor(i n / m), the first row included', () => {
  assert.deepEqual([0, 1, 2, 3].map((i) => sampledRow(i, 4, 4)), [0, 1, 2, 3]);
  assert.deepEqual([0, 1, 2, 3].map((i) => sampledRow(i, 10, 4)), [0, 2, 5, 7]);
  assert.equal(sampledRow(9_999, 1_000_003, 10_000), Math.floor((9_999 * 1_000_003) / 10_000));
});

test('sampleIn: the slices of any world hold the whole sample between them, each row once, in order', () => {
  for (const [splitRows, rows] of [[30, 30], [30, 7], [10, 4], [1, 1], [25_000, 10_000], [1_000_003, 10_000], [12_345, 9_999]] as const) {
    const whole = Array.from({ length: rows }, (_, i) => sampledRow(i, splitRows, rows));
    for (const world of [1, 2, 3, 7, 16, 64]) {
      const parts = Array.from({ length: world }, (_, r) => {
        const [a, b] = rankRange(splitRows, r, world);
        const mine = sampleIn({ splitRows, rows }, a, b);
        for (const i of mine) assert.ok(i >= a && i < b, `row ${i} outside [${a}, ${b})`);
        return mine;
      });
      assert.deepEqual(parts.flat(), whole, `${rows} of ${splitRows} rows, world ${world}`);
    }
  }
});
