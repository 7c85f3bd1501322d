import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { TrainError } from './errors.js';
import { loadJobSpec, parseJobSpec, jobSpecToYaml } from './spec.js';

/** The issue's Iris spec, as shipped in examples/: it must parse exactly as the issue wrote it. */
const IRIS = readFileSync(fileURLToPath(new URL('../../../examples/iris.yaml', import.meta.url)), 'utf8');

function specError(fn: () => unknown): TrainError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof TrainError, `expected TrainError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected an error');
}

test('the issue example parses, with defaults filled in', () => {
  const spec = parseJobSpec(IRIS);
  assert.equal(spec.training.batchSize, 16);
  assert.deepEqual(spec.model.hidden[1], { units: 32, activation: 'relu', dropout: 0.1 });
  assert.deepEqual(spec.model.hidden[0], { units: 32, activation: 'relu', dropout: 0 });
  assert.equal(spec.training.optimizer.name, 'adam');
  assert.deepEqual(spec.training.optimizer.schedule, { kind: 'constant' });
  assert.deepEqual(spec.training.earlyStopping, { patience: 20, minDelta: 0 });
  assert.equal(spec.training.backend, 'auto');
  assert.deepEqual(spec.data.augment, { noise: 0, shift: 0 });
  // The resolved spec round-trips.
  assert.deepEqual(parseJobSpec(jobSpecToYaml(spec)), spec);
});

test('every problem is reported with its field path', () => {
  const bad = IRIS.replace('batchSize: 16', 'batchSize: sixteen')
    .replace('{ units: 32, activation: relu }', '{ units: -3, activation: swish }')
    .replace('epochs: 200', 'epoch: 200');
  const err = specError(() => parseJobSpec(bad, 'iris.yaml'));
  assert.equal(err.code, 'SPEC_INVALID');
  const joined = err.issues.join('\n');
  assert.match(joined, /^training\.batchSize: .*number.*\(got "sixteen"\)$/m);
  assert.match(joined, /^model\.hidden\[0\]\.units: .*\(got -3\)$/m);
  assert.match(joined, /^model\.hidden\[0\]\.activation: .*relu.*\(got "swish"\)$/m);
  assert.match(joined, /^training: .*epoch/m);
  assert.match(err.message, /^iris\.yaml is invalid/);
});

test('a missing required field is named', () => {
  const err = specError(() => parseJobSpec('name: x\nmodel: { l2: 0 }\n'));
  assert.equal(err.code, 'SPEC_INVALID');
  assert.ok(err.issues.some((i) => i.startsWith('data:')), err.issues.join('\n'));
  const noSource = specError(() => parseJobSpec('name: x\ndata: { label: y }\n'));
  assert.ok(noSource.issues.some((i) => i.startsWith('data.source:')), noSource.issues.join('\n'));
});

test('cross-field rules: early stopping needs validation rows; splits leave training rows', () => {
  const noVal = IRIS.replace('validation: 0.15', 'validation: 0');
  assert.match(specError(() => parseJobSpec(noVal)).issues[0]!, /^training\.earlyStopping:/);
  const noTrain = IRIS.replace('validation: 0.15, test: 0.2', 'validation: 0.5, test: 0.5');
  assert.match(specError(() => parseJobSpec(noTrain)).issues[0]!, /^data\.split:/);
});

test('training.reduction: fast by default, exact on request with an optional micro-batch size; a micro-batch without exact is refused, naming the field', () => {
  const t = (training: string): string => `name: t\ndata: { source: builtin:iris }\ntraining: { batchSize: 16${training} }\n`;
  assert.deepEqual([parseJobSpec(t('')).training.reduction, parseJobSpec(t('')).training.microBatch], ['fast', undefined]);
  assert.deepEqual([parseJobSpec(t(', reduction: exact, microBatch: 4')).training.reduction, parseJobSpec(t(', reduction: exact, microBatch: 4')).training.microBatch], ['exact', 4]);
  assert.deepEqual(specError(() => parseJobSpec(t(', microBatch: 4'))).issues, ['training.microBatch: micro-batches belong to the exact reduction; add training.reduction: exact, or drop it (got 4)']);
  assert.match(specError(() => parseJobSpec(t(', reduction: exact, microBatch: 0'))).issues[0]!, /^training\.microBatch: .*\(got 0\)$/);
  assert.match(specError(() => parseJobSpec(t(', reduction: exactly'))).issues[0]!, /^training\.reduction: .*exact.*fast.*\(got "exactly"\)$/);
});

test('data.header: a boolean for csv: sources, left out by default, refused elsewhere naming the field', () => {
  assert.equal(parseJobSpec('name: t\ndata: { source: csv:x.csv }\n').data.header, undefined, 'not filled in: left out differs from true');
  assert.equal(parseJobSpec('name: t\ndata: { source: csv:x.csv, header: false }\n').data.header, false);
  for (const source of ['builtin:iris', 'idx:fm', 'synthetic:rows=5']) {
    const err = specError(() => parseJobSpec(`name: t\ndata: { source: "${source}", header: false }\n`, 'h.yaml'));
    assert.equal(err.code, 'SPEC_INVALID');
    assert.deepEqual(err.issues, [`data.header: only a csv: source has a header setting; drop it for ${source} (got false)`]);
  }
  assert.match(specError(() => parseJobSpec('name: t\ndata: { source: csv:x.csv, header: no }\n')).issues[0]!, /^data\.header: .*\(got "no"\)$/);
});

test('broken YAML and a missing file get their own codes', async () => {
  assert.equal(specError(() => parseJobSpec('name: [unclosed\n')).code, 'SPEC_YAML_INVALID');
  await assert.rejects(loadJobSpec('/nonexistent/job.yaml'), (err: unknown) => {
    assert.ok(err instanceof TrainError);
    assert.equal(err.code, 'SPEC_FILE_MISSING');
    assert.match(err.message, /\/nonexistent\/job\.yaml/);
    return true;
  });
});

test('the documented defaults hold: model, training and the optimizer may be left out', () => {
  const spec = parseJobSpec('name: tiny\ndata: { source: builtin:iris }\n');
  assert.deepEqual(spec.model, { hidden: [], l2: 0 });
  assert.equal(spec.training.optimizer.name, 'adam');
  assert.equal(spec.training.optimizer.learningRate, 0.001);
  assert.equal(spec.training.batchSize, 32);
  assert.equal(spec.training.epochs, 10);
  const sgd = parseJobSpec('name: t\ndata: { source: builtin:iris }\ntraining: { optimizer: { name: sgd } }\n');
  assert.deepEqual(sgd.training.optimizer, { name: 'sgd', learningRate: 0.001, schedule: { kind: 'constant' }, momentum: 0, nesterov: false });
  const lr = parseJobSpec('name: t\ndata: { source: builtin:iris }\ntraining: { optimizer: { learningRate: 0.1 } }\n');
  assert.equal(lr.training.optimizer.name, 'adam');
  assert.equal(lr.training.optimizer.learningRate, 0.1);
  assert.deepEqual(spec.checkpoint, { everySteps: 0, everyEpoch: true, keep: 3, keepBest: true });
});
