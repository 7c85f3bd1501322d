/**
 * The ringtrain command end to end, as a user runs it: a child process, its exit code,
 * what it prints and the files it writes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '../bin/ringtrain.mjs');
const IRIS_SPEC = resolve(dirname(fileURLToPath(import.meta.url)), '../../../examples/iris.yaml');

function ringtrain(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

async function tmp(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'ringtrain-cli-'));
}

test('--help lists the commands and exits 0', () => {
  const r = ringtrain('--help');
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^\s+train\s/m);
  assert.match(r.stdout, /^\s+eval\s/m);
  const t = ringtrain('train', '--help');
  assert.equal(t.code, 0);
  assert.match(t.stdout, /--job FILE/);
});

test('train on Iris writes a loadable model, metrics and the resolved spec; eval agrees', async () => {
  const out = join(await tmp(), 'run');
  const r = ringtrain('train', '--job', IRIS_SPEC, '--out', out, '--json');
  assert.equal(r.code, 0, r.stderr);
  const summary = JSON.parse(r.stdout);
  assert.ok(summary.final.test.accuracy >= 0.93, `test accuracy ${summary.final.test.accuracy}`);
  assert.equal(summary.backend, 'wasm');
  // The log is JSON lines on stderr when it is not a terminal, and names the backend.
  const logs = r.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  assert.ok(logs.some((l) => l.msg === 'backend selected' && l.backend === 'wasm'));
  // Off a terminal, progress is a log record per epoch: stderr is JSON lines only.
  assert.equal(logs.length, r.stderr.trim().split('\n').length, 'every stderr line is JSON');
  const epochs = logs.filter((l) => l.msg === 'epoch');
  assert.equal(epochs.length, summary.epochs);
  assert.equal(epochs[0].epochs, 200);
  assert.equal(typeof epochs[0].train.loss, 'number');
  for (const f of ['model/model.json', 'model/weights.bin', 'metrics.json', 'job.yaml']) assert.ok(existsSync(join(out, f)), f);
  const metrics = JSON.parse(await readFile(join(out, 'metrics.json'), 'utf8'));
  assert.equal(metrics.history.length, summary.epochs);
  assert.deepEqual(metrics.final, summary.final);
  const job = parse(await readFile(join(out, 'job.yaml'), 'utf8'));
  assert.equal(job.training.batchSize, 16);
  assert.equal(job.training.optimizer.beta1, 0.9, 'defaults are written out');

  const e = ringtrain('eval', '--model', join(out, 'model'), '--json');
  assert.equal(e.code, 0, e.stderr);
  const result = JSON.parse(e.stdout);
  // By default eval scores the run's own held-out test rows: the run's test figures.
  assert.equal(result.source, 'builtin:iris');
  assert.equal(result.count, 30);
  assert.equal(result.accuracy, summary.final.test.accuracy);
  assert.ok(Math.abs(result.loss - summary.final.test.loss) < 1e-6);
  assert.equal(result.confusion.flat().reduce((a: number, b: number) => a + b, 0), 30);
  // Any source: all 150 rows of Iris.
  const all = JSON.parse(ringtrain('eval', '--model', join(out, 'model'), '--data', 'builtin:iris', '--json').stdout);
  assert.equal(all.count, 150);
  assert.ok(all.accuracy >= 0.93, `eval accuracy ${all.accuracy}`);

  // Data the model cannot judge is refused with a code, not scored as garbage.
  const dir = await tmp();
  const header = 'sepal_length,sepal_width,petal_length,petal_width,species';
  await writeFile(join(dir, 'rose.csv'), `${header}\n5.1,3.5,1.4,0.2,setosa\n6.0,3.0,4.0,1.0,rose\n`);
  const rose = ringtrain('eval', '--model', join(out, 'model'), '--data', `csv:${join(dir, 'rose.csv')}`);
  assert.equal(rose.code, 2);
  assert.match(rose.stderr, /error EVAL_CLASS_UNKNOWN: .*"rose"/);
  await writeFile(join(dir, 'narrow.csv'), 'a,b,c,species\n1,2,3,setosa\n');
  const narrow = ringtrain('eval', '--model', join(out, 'model'), '--data', `csv:${join(dir, 'narrow.csv')}`);
  assert.equal(narrow.code, 2);
  assert.match(narrow.stderr, /error EVAL_SHAPE_MISMATCH: .*3 features; the model expects 4/);
});

test('a label column that is not the last is remembered: eval reads the same column', async () => {
  const dir = await tmp();
  // y = 2a - b: a regression target in the first column, where eval must not look last.
  const rows = ['y,a,b'];
  for (let i = 0; i < 60; i++) rows.push(`${2 * (i % 7) - (i % 5)},${i % 7},${i % 5}`);
  await writeFile(join(dir, 'lin.csv'), rows.join('\n'));
  await writeFile(
    join(dir, 'lin.yaml'),
    'name: lin\ndata: { source: csv:lin.csv, label: y, split: { validation: 0.1, test: 0.2 } }\nmodel: { hidden: [] }\n' +
      'training: { optimizer: { name: adam, learningRate: 0.05 }, epochs: 200, batchSize: 8 }\n',
  );
  const r = ringtrain('train', '--job', join(dir, 'lin.yaml'), '--out', join(dir, 'run'), '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.ok(JSON.parse(r.stdout).final.test.loss < 0.01, r.stdout);
  const e = ringtrain('eval', '--model', join(dir, 'run', 'model'), '--data', `csv:${join(dir, 'lin.csv')}`, '--json');
  assert.equal(e.code, 0, e.stderr);
  const result = JSON.parse(e.stdout);
  assert.equal(result.count, 60);
  assert.ok(result.loss < 0.01, `eval loss ${result.loss}`);
});

test('a headerless CSV of integer labels with cross-entropy trains a classifier, says so once, and eval reads it back', async () => {
  const dir = await tmp();
  // Three separable classes 0, 1, 2 and no header, as numpy.savetxt writes a data set.
  const rows: string[] = [];
  for (let i = 0; i < 90; i++) {
    const c = i % 3;
    rows.push(`${c * 3 + ((i * 7) % 10) / 10},${(c === 1 ? 3 : 0) + ((i * 3) % 10) / 10},${c}`);
  }
  const file = join(dir, 'ints.csv');
  await writeFile(file, `${rows.join('\n')}\n`);
  // Taken as a header, the first row (0,0,0) names a column twice: the error says why.
  const refused = ringtrain('train', '--job', IRIS_SPEC, '--data', `csv:${file}`, '--out', join(dir, 'refused'));
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /error DATA_HEADER_INVALID: .*ints\.csv:1: header names column "0" twice; the first row is all numbers: if the file has no header, set data\.header: false/);

  // The Iris example's loss is cross-entropy: the integer labels are its classes.
  const out = join(dir, 'run');
  const r = ringtrain('train', '--job', IRIS_SPEC, '--data', `csv:${file}`, '--no-header', '--out', out, '--json');
  assert.equal(r.code, 0, r.stderr);
  const summary = JSON.parse(r.stdout);
  assert.equal(summary.loss, 'cross-entropy');
  assert.ok(summary.final.test.accuracy >= 0.9, `test accuracy ${summary.final.test.accuracy}`);
  const logs = r.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  const inferred = logs.filter((l) => /holds integers/.test(l.msg));
  assert.equal(inferred.length, 1, 'logged once');
  assert.equal(inferred[0].msg, 'label column "c2" holds integers and the loss is cross-entropy: classification with classes 0, 1, 2');
  assert.deepEqual(inferred[0].classes, ['0', '1', '2']);
  assert.equal(logs.find((l) => l.msg === 'data ready').task, 'classification');
  const model = JSON.parse(await readFile(join(out, 'model', 'model.json'), 'utf8'));
  assert.deepEqual(model.userDefinedMetadata.ringtrain.task, { kind: 'classification', classes: ['0', '1', '2'] });
  assert.deepEqual(model.userDefinedMetadata.ringtrain.featureNames, ['c0', 'c1']);
  assert.equal(parse(await readFile(join(out, 'job.yaml'), 'utf8')).data.header, false);

  // eval: the run's own test rows (job.yaml says there is no header), then the whole file.
  const held = ringtrain('eval', '--model', join(out, 'model'), '--json');
  assert.equal(held.code, 0, held.stderr);
  assert.equal(JSON.parse(held.stdout).count, 18);
  assert.equal(JSON.parse(held.stdout).accuracy, summary.final.test.accuracy);
  const all = ringtrain('eval', '--model', join(out, 'model'), '--data', `csv:${file}`, '--no-header', '--json');
  assert.equal(all.code, 0, all.stderr);
  assert.equal(JSON.parse(all.stdout).count, 90);

  // Fractions are no classes: refused, naming one and its line.
  await writeFile(join(dir, 'floats.csv'), '0.1,0\n0.2,1.5\n0.3,1\n0.4,2\n0.5,0\n');
  const floats = ringtrain('train', '--job', IRIS_SPEC, '--data', `csv:${join(dir, 'floats.csv')}`, '--no-header', '--out', join(dir, 'floats'));
  assert.equal(floats.code, 2);
  assert.match(floats.stderr, /error SPEC_INVALID: training\.loss: cross-entropy needs class labels, but label column "c1" of .*floats\.csv holds non-integer numbers \(e\.g\. 1\.5 on line 2\): use mse/);
});

test('a malformed spec: exit 2, SPEC_INVALID, every bad field named', async () => {
  const dir = await tmp();
  const spec = (await readFile(IRIS_SPEC, 'utf8')).replace('batchSize: 16', 'batchSize: 0').replace('activation: relu }', 'activation: relux }');
  await writeFile(join(dir, 'bad.yaml'), spec);
  const r = ringtrain('train', '--job', join(dir, 'bad.yaml'), '--out', join(dir, 'out'));
  assert.equal(r.code, 2);
  assert.match(r.stderr, /error SPEC_INVALID: .*bad\.yaml is invalid/);
  assert.match(r.stderr, /training\.batchSize: .*\(got 0\)/);
  assert.match(r.stderr, /model\.hidden\[0\]\.activation: .*\(got "relux"\)/);
  assert.equal(existsSync(join(dir, 'out')), false, 'nothing is written');
});

test('a missing spec file and a missing data file name the file', async () => {
  const dir = await tmp();
  const noSpec = ringtrain('train', '--job', join(dir, 'nope.yaml'));
  assert.equal(noSpec.code, 2);
  assert.match(noSpec.stderr, /error SPEC_FILE_MISSING: .*nope\.yaml/);
  const noData = ringtrain('train', '--job', IRIS_SPEC, '--data', `csv:${join(dir, 'missing.csv')}`, '--out', join(dir, 'o'));
  assert.equal(noData.code, 2);
  assert.match(noData.stderr, /error DATA_FILE_MISSING: .*missing\.csv/);
});

test('a ragged CSV: exit 2, DATA_RAGGED_ROW naming the file and line', async () => {
  const dir = await tmp();
  const rows = ['a,b,kind', '1,2,x', '3,4,y', '5,6', '7,8,x'];
  await writeFile(join(dir, 'ragged.csv'), rows.join('\n'));
  const r = ringtrain('train', '--job', IRIS_SPEC, '--data', `csv:${join(dir, 'ragged.csv')}`, '--label', 'kind', '--out', join(dir, 'o'));
  assert.equal(r.code, 2);
  assert.match(r.stderr, /error DATA_RAGGED_ROW: .*ragged\.csv:4\b/);
});

test('an unknown option or command is a usage error', () => {
  const r = ringtrain('train', '--epochs', '3');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /error CLI_USAGE: .*--epochs/);
  assert.equal(ringtrain('fly').code, 2);
});
