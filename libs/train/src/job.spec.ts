/**
 * openJob decides the task from the spec and the data: integer labels with an explicit
 * cross-entropy loss are classes (and it says so, for the app to log), other numbers
 * with cross-entropy are refused with the value and line that stood in the way. A resume
 * and a fine-tuning run decide the same way.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { selectBackend } from '@ringtrain/model';
import { latestCheckpoint, writeCheckpoint } from './checkpoint.js';
import { TrainError } from './errors.js';
import { checkpointOptions, openJob, type OpenedJob } from './job.js';
import { summarize, writeRunOutput } from './output.js';
import { resumeMismatches } from './resume.js';
import { parseJobSpec, type JobSpec } from './spec.js';
import { train } from './trainer.js';

let dir: string;

/** 60 rows, no header: two features and an integer class 0..2 that the first feature separates. */
function integerRows(): string {
  return Array.from({ length: 60 }, (_, i) => `${(i % 3) * 2 + (i % 7) / 10},${(i * 5) % 11},${i % 3}`).join('\n');
}

function spec(data: string, training = 'training: { loss: cross-entropy, epochs: 2, batchSize: 8 }', extra = ''): JobSpec {
  return parseJobSpec(`name: ints\ndata: ${data}\n${training}\n${extra}`);
}

async function opened(s: JobSpec): Promise<OpenedJob> {
  const job = await openJob(s, null);
  return job;
}

function specInvalid(message: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof TrainError, String(err));
    assert.equal(err.code, 'SPEC_INVALID');
    assert.match(err.message, message);
    return true;
  };
}

describe('openJob: the task from the labels and the loss', () => {
  let csv: string;
  let floats: string;
  before(async () => {
    await selectBackend('cpu');
    dir = await mkdtemp(join(tmpdir(), 'ringtrain-job-'));
    csv = join(dir, 'ints.csv');
    await writeFile(csv, integerRows());
    floats = join(dir, 'floats.csv');
    await writeFile(floats, 'a,y\n1,0\n2,1\n3,0.5\n4,2\n');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('integer labels with cross-entropy are classes 0, 1, 2, reported; the saved model names them', async () => {
    const s = spec(`{ source: "csv:${csv}", header: false, split: { validation: 0.2, test: 0.2 } }`);
    const job = await openJob(s, null);
    const { data, mlp } = job;
    assert.deepEqual(data.task, { kind: 'classification', classes: ['0', '1', '2'] });
    assert.deepEqual(data.train.featureNames, ['c0', 'c1']);
    assert.deepEqual([data.train.rows, data.validation.rows, data.test.rows], [36, 12, 12]);
    assert.deepEqual(job.taskInference, {
      label: 'c2',
      classes: ['0', '1', '2'],
      message: 'label column "c2" holds integers and the loss is cross-entropy: classification with classes 0, 1, 2',
    });
    assert.equal(job.loss, 'cross-entropy');
    assert.deepEqual([mlp.arch.outputs, mlp.arch.output], [3, 'softmax']);
    const run = join(dir, 'run');
    const result = await train({
      spec: s,
      data,
      mlp,
      loss: job.loss,
      checkpoint: { everySteps: 0, everyEpoch: true, save: async (snap, reason) => void (await writeCheckpoint(run, snap, checkpointOptions(job, reason))) },
    });
    assert.equal(typeof result.final?.test?.accuracy, 'number', 'classification metrics');
    await writeRunOutput(run, s, data, summarize(s, data, 'cpu', job.loss, result), result, job.metadata);
    const model = JSON.parse(await readFile(join(run, 'model', 'model.json'), 'utf8'));
    assert.deepEqual(model.userDefinedMetadata.ringtrain.task, { kind: 'classification', classes: ['0', '1', '2'] });
  });

  test('a resume decides the same way, and data.header left out equals true for it', async () => {
    const ckpt = await latestCheckpoint(join(dir, 'run'));
    assert.ok(ckpt);
    const job = await openJob(ckpt.spec, ckpt);
    assert.equal(job.mlp.arch.outputs, 3);
    assert.deepEqual(job.data.task, { kind: 'classification', classes: ['0', '1', '2'] });
    assert.equal(job.taskInference?.label, 'c2');
    const { header: _header, ...rest } = ckpt.spec.data;
    assert.deepEqual(resumeMismatches(ckpt.spec, { ...ckpt.spec, data: rest }), ['data.header: the checkpoint has false, the spec has true']);
    const textHeader = { ...ckpt.spec, data: rest };
    assert.deepEqual(resumeMismatches(textHeader, { ...textHeader, data: { ...rest, header: true } }), []);
  });

  test('a fine-tuning run from that model keeps its classes without a new head', async () => {
    const s = spec(`{ source: "csv:${csv}", header: false }`, 'training: { loss: cross-entropy, epochs: 1 }', `init: { from: "${join(dir, 'run')}", freeze: [0] }`);
    const job = await opened(s);
    assert.deepEqual(job.data.task, { kind: 'classification', classes: ['0', '1', '2'] });
    assert.equal(job.taskInference?.classes.length, 3);
    assert.deepEqual([...job.frozenLayers], [0]);
    assert.equal(job.lineage.length, 1);
  });

  test('non-integer numbers with cross-entropy are refused, naming the value and its line', async () => {
    await assert.rejects(
      opened(spec(`{ source: "csv:${floats}" }`)),
      specInvalid(new RegExp(`^training\\.loss: cross-entropy needs class labels, but label column "y" of ${floats} holds non-integer numbers \\(e\\.g\\. 0\\.5 on line 4\\): use mse for regression, or integer or text labels$`)),
    );
  });

  test('data.task still decides: regression with cross-entropy is refused, classification is not inferred', async () => {
    await assert.rejects(opened(spec(`{ source: "csv:${csv}", header: false, task: regression }`)), specInvalid(/has a numeric target/));
    const forced = await opened(spec(`{ source: "csv:${floats}", task: classification }`));
    assert.deepEqual(forced.data.task, { kind: 'classification', classes: ['0', '0.5', '1', '2'] });
    assert.equal(forced.taskInference, null, 'the spec said so: nothing was inferred');
  });

  test('without an explicit loss, integers stay a regression target; other sources keep their tasks', async () => {
    const plain = await opened(spec(`{ source: "csv:${csv}", header: false }`, 'training: { epochs: 1 }'));
    assert.deepEqual(plain.data.task, { kind: 'regression', target: 'c2' });
    assert.equal(plain.loss, 'mse');
    assert.equal(plain.taskInference, null);
    const iris = await opened(spec('{ source: "builtin:iris" }'));
    assert.equal(iris.data.task.kind, 'classification');
    assert.equal(iris.taskInference, null, 'text labels are classes anyway');
    await assert.rejects(opened(spec('{ source: "synthetic:rows=50,features=3,classes=0" }')), specInvalid(/synthetic:.* has a numeric target/));
    const synthetic = await opened(spec('{ source: "synthetic:rows=50,features=3,classes=4" }'));
    assert.equal(synthetic.taskInference, null);
  });
});
