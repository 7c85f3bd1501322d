/**
 * Rank 0's final weights stream into model/ as they arrive (final-weights.ts), and the
 * confusion matrix comes with `done`: model/ is byte for byte what writeModelFiles
 * writes for the same weights, however the chunks cut the floats; a value that is not
 * finite, in any chunk, closes the sender with 1008 naming the parameter, and leaves no
 * file; a `done` without the matrix the job counts, or with a malformed one, is refused
 * at the wire; report.html shows the matrix the workers sent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeModelFiles } from '@ringtrain/model';
import { bytesOf, encodeMessage, type TransferHead, type WorkerMessage } from '@ringtrain/protocol';
import { FiniteScan } from './final-weights.js';
import type { ReportData } from './report-data.js';
import { closed, CONFUSION, CONFUSION_COUNTS, coordinator, done, type FakeWorker, type Harness, joined, P, epoch, FINAL, status, until, within } from './server.fixture.js';

test('FiniteScan: pieces cut anywhere, floats cut in two included; the first value not finite named by its index in the whole stream', () => {
  const values = Float32Array.from({ length: 40 }, (_, i) => i / 3 - 4);
  const all = bytesOf(values);
  for (const cut of [1, 2, 3, 4, 5, 7, 160]) {
    const scan = new FiniteScan();
    for (let at = 0; at < all.byteLength; at += cut) assert.equal(scan.scan(all.slice(at, at + cut)), null, `pieces of ${cut}`);
  }
  for (const [bad, shown] of [[NaN, 'NaN'], [Infinity, 'Infinity'], [-Infinity, '-Infinity']] as const) {
    for (const index of [0, 13, 39]) {
      const v = Float32Array.from(values);
      v[index] = bad;
      const b = bytesOf(v);
      for (const cut of [3, 4, 6, 160]) {
        const scan = new FiniteScan();
        let found: string | null = null;
        for (let at = 0; at < b.byteLength && found === null; at += cut) found = scan.scan(b.subarray(at, at + cut));
        assert.equal(found, `params[${index}] is ${shown}`, `${shown} at ${index}, pieces of ${cut}`);
      }
    }
  }
  // An unaligned view (a piece at an odd offset of its buffer) is read right too.
  const odd = new Uint8Array(all.byteLength + 1);
  odd.set(all, 1);
  assert.equal(new FiniteScan().scan(odd.subarray(1)), null);
});

/** The weights of the default job (15 parameters) as the fixture's `done` sends them, but in chunks cut at `cuts` (byte offsets). */
function sendInChunks(w: FakeWorker, make: (head: TransferHead) => WorkerMessage, weights: Uint8Array, cuts: readonly number[], id: number): void {
  const head = { id, bytes: weights.byteLength };
  w.ws.send(encodeMessage(make(head)));
  const sha256 = createHash('sha256').update(weights).digest('hex');
  const ends = [...cuts, weights.byteLength];
  let at = 0;
  for (const end of ends) {
    const data = weights.slice(at, end);
    w.ws.send(encodeMessage({ type: 'chunk', id, offset: at, data, ...(end === weights.byteLength ? { sha256 } : {}) }));
    at = end;
  }
}

const result = (more: Record<string, unknown> = {}) => ({ history: [epoch(1), epoch(2)], bestEpoch: 2, stoppedEarly: false, steps: 2 * P, final: FINAL, confusion: CONFUSION, ...more });

/** Report.html's embedded data. */
async function reportOf(h: Harness): Promise<ReportData> {
  const html = await readFile(join(h.outDir, 'report.html'), 'utf8');
  const json = /<script type="application\/json" id="report-data">([\s\S]*?)<\/script>/.exec(html)?.[1];
  assert.ok(json, 'report.html embeds its data');
  return JSON.parse(json) as ReportData;
}

test('final weights in chunks that cut floats in two: model/ is what writeModelFiles writes for them; report.html has the matrix done carried', async (t) => {
  const h = await coordinator(t);
  const w1 = await joined(h, 'w1');
  const gen = await w1.next('generation');
  const params = Float32Array.from({ length: 15 }, (_, i) => Math.cos(i) * 2 - 0.5);
  sendInChunks(w1, (head) => ({ type: 'done', generation: gen.generation, result: result(), params: head }), bytesOf(params), [3, 17, 18, 40], 901);
  const outcome = await within(h.runtime.outcome, 'the job completed', 20_000);
  assert.equal(outcome.kind, 'completed');
  const expected = await mkdtemp(join(tmpdir(), 'ringtrain-expected-'));
  t.after(() => rm(expected, { recursive: true, force: true }));
  await writeModelFiles(expected, h.job.mlp.arch, params, h.job.metadata);
  for (const f of ['weights.bin', 'model.json']) assert.deepEqual(await readFile(join(h.outDir, 'model', f)), await readFile(join(expected, f)), f);
  assert.deepEqual((await readdir(join(h.outDir, 'model'))).sort(), ['model.json', 'weights.bin']);
  const metrics = JSON.parse(await readFile(join(h.outDir, 'metrics.json'), 'utf8')) as { parameters: number; steps: number };
  assert.deepEqual([metrics.parameters, metrics.steps], [15, 2 * P]);
  const report = await reportOf(h);
  assert.deepEqual(report.confusion, {
    split: 'test',
    classes: h.job.data.task.kind === 'classification' ? [...h.job.data.task.classes] : null,
    matrix: [CONFUSION_COUNTS.slice(0, 3), CONFUSION_COUNTS.slice(3, 6), CONFUSION_COUNTS.slice(6, 9)],
    rows: 15,
    splitRows: 15,
  });
});

test('a value that is not finite in any chunk closes rank 0 with 1008 naming it; nothing is left in model/, and a good done then completes the job', async (t) => {
  const h = await coordinator(t);
  let id = 950;
  for (const [index, cuts] of [[9, [8, 24, 40]], [3, [14, 30]], [14, [4, 57]]] as const) {
    const w = await joined(h, 'w1');
    const gen = await w.next('generation');
    const params = new Float32Array(15).fill(0.5);
    params[index] = index === 3 ? Infinity : NaN;
    const close = closed(w.ws);
    sendInChunks(w, (head) => ({ type: 'done', generation: gen.generation, result: result(), params: head }), bytesOf(params), cuts, ++id);
    const got = await close;
    assert.equal(got.code, 1008);
    assert.equal(got.reason, `PROTOCOL_BAD_MESSAGE: done: final weights params[${index}] is ${index === 3 ? 'Infinity' : 'NaN'}`);
    await until(() => h.runtime.status().workers.length === 0, 'the worker gone');
    // The temporary weights file is removed once the transfer has failed.
    await until(() => !existsSync(join(h.outDir, 'model')) || readdirSync(join(h.outDir, 'model')).length === 0, 'no file left in model/');
    assert.equal((await status(h)).model, null);
    assert.notEqual((await status(h)).state, 'completed');
  }
  const w = await joined(h, 'w1');
  const gen = await w.next('generation');
  w.send(done(gen.generation, 0.25));
  assert.equal((await within(h.runtime.outcome, 'the job completed', 20_000)).kind, 'completed');
  const weights = await readFile(join(h.outDir, 'model', 'weights.bin'));
  assert.deepEqual([...new Float32Array(weights.buffer, weights.byteOffset, weights.byteLength / 4)], new Array(15).fill(0.25));
});

test('a done without the confusion matrix, or with a malformed one, is PROTOCOL_BAD_MESSAGE at the wire, and the job is unharmed', async (t) => {
  const h = await coordinator(t);
  const counts = (...c: number[]) => bytesOf(Uint32Array.from(c));
  const cases: [string, unknown, RegExp][] = [
    ['none', null, /^PROTOCOL_BAD_MESSAGE: worker message "done": result\.confusion: missing: the job counts one on its test split/],
    ['left out', undefined, /^PROTOCOL_BAD_MESSAGE: worker message "done": result\.confusion: /],
    ['another split', { ...CONFUSION, split: 'validation' }, /result\.confusion\.split: the validation split; the job counts its test split/],
    ['other rows', { ...CONFUSION, rows: 14 }, /result\.confusion\.rows: 14 rows; the job counts 15/],
    ['2 x 2', { ...CONFUSION, counts: counts(5, 5, 5, 0) }, /result\.confusion\.counts: 16 bytes; 3 x 3 u32 counts are 36/],
    ['a wrong sum', { ...CONFUSION, counts: counts(5, 0, 0, 0, 4, 1, 0, 2, 2) }, /result\.confusion\.counts: the counts add up to 14, not its 15 rows/],
  ];
  for (const [name, confusion, reason] of cases) {
    const w = await joined(h, 'w1');
    const gen = await w.next('generation');
    const close = closed(w.ws);
    const r = result();
    if (confusion === undefined) delete (r as Record<string, unknown>)['confusion'];
    else (r as Record<string, unknown>)['confusion'] = confusion;
    sendInChunks(w, (head) => ({ type: 'done', generation: gen.generation, result: r, params: head }) as WorkerMessage, bytesOf(new Float32Array(15).fill(0.5)), [], 990 + cases.findIndex((c) => c[0] === name));
    const got = await close;
    assert.equal(got.code, 1008, name);
    assert.match(got.reason, reason, name);
    await until(() => h.runtime.status().workers.length === 0, `the worker gone after its ${name}`);
  }
  assert.equal(existsSync(join(h.outDir, 'model', 'weights.bin')), false);
  assert.equal((await status(h)).model, null);
});
