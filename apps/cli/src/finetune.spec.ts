/**
 * Fine-tuning through the command: train on some classes, then start a new job from
 * that run with a new head for other classes and the first layer frozen.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '../bin/ringtrain.mjs');

function ringtrain(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const DATA = 'synthetic:rows=3000,features=16,classes=6,seed=4';
const BASE = `
name: base
data: { source: "${DATA}", classes: ["0", "1", "2"], split: { validation: 0.1, test: 0.2, seed: 1 } }
model:
  hidden:
    - { units: 32, activation: relu }
    - { units: 16, activation: relu, dropout: 0.1 }
training: { optimizer: { name: adam, learningRate: 0.01 }, batchSize: 32, epochs: 12, seed: 3 }
`;
const TUNE = (epochs: number, extra = '') => `
name: tune
data: { source: "${DATA}", classes: ["3", "4", "5"], split: { validation: 0.1, test: 0.2, seed: 1 } }
init: { from: base-run, freeze: [0], replaceHead: true${extra} }
model: { l2: 0.0001 }
training: { optimizer: { name: adam, learningRate: 0.01 }, batchSize: 32, epochs: ${epochs}, seed: 8 }
`;

/** The bytes of dense layer 0 (kernel then bias) at the front of weights.bin. */
async function firstLayer(modelDir: string, inputs: number, units: number): Promise<Buffer> {
  return (await readFile(join(modelDir, 'weights.bin'))).subarray(0, 4 * (inputs * units + units));
}

test('fine-tune a trained run for new classes: the frozen layer stays bit-equal, the new head learns, resume is exact', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtrain-tune-'));
  await writeFile(join(dir, 'base.yaml'), BASE);
  const base = ringtrain('train', '--job', join(dir, 'base.yaml'), '--out', join(dir, 'base-run'), '--json');
  assert.equal(base.code, 0, base.stderr);
  assert.ok(JSON.parse(base.stdout).final.test.accuracy > 0.6);

  await writeFile(join(dir, 'tune.yaml'), TUNE(6));
  const tune = ringtrain('train', '--job', join(dir, 'tune.yaml'), '--out', join(dir, 'tune-run'), '--json');
  assert.equal(tune.code, 0, tune.stderr);
  const summary = JSON.parse(tune.stdout);
  assert.ok(summary.final.test.accuracy > 0.6, `fine-tuned test accuracy ${summary.final.test.accuracy} (chance: 0.33)`);
  assert.match(tune.stderr, /"msg":"fine-tuning"/);
  const frozenBefore = await firstLayer(join(dir, 'base-run', 'model'), 16, 32);
  const frozenAfter = await firstLayer(join(dir, 'tune-run', 'model'), 16, 32);
  assert.ok(frozenAfter.equals(frozenBefore), 'the frozen layer is bit-equal to the source model');
  const meta = JSON.parse(await readFile(join(dir, 'tune-run', 'model', 'model.json'), 'utf8')).userDefinedMetadata.ringtrain;
  assert.deepEqual(meta.task.classes, ['3', '4', '5']);
  assert.equal(meta.lineage[0].from, join(dir, 'base-run'));

  // A fine-tuning run checkpoints and resumes like any run: 3 epochs, then on to 6.
  await writeFile(join(dir, 'tune3.yaml'), TUNE(3));
  assert.equal(ringtrain('train', '--job', join(dir, 'tune3.yaml'), '--out', join(dir, 'tune-cut')).code, 0);
  const resumed = ringtrain('train', '--job', join(dir, 'tune.yaml'), '--out', join(dir, 'tune-cut'), '--resume');
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stderr, /"reason":"end","msg":"resuming"/);
  assert.doesNotMatch(resumed.stderr, /"msg":"fine-tuning"/, 'a resume continues; it does not start over from init');
  const a = await readFile(join(dir, 'tune-run', 'model', 'weights.bin'));
  const b = await readFile(join(dir, 'tune-cut', 'model', 'weights.bin'));
  assert.ok(a.equals(b), 'resumed fine-tuning equals the uninterrupted one');
  assert.ok((await firstLayer(join(dir, 'tune-cut', 'model'), 16, 32)).equals(frozenBefore), 'still frozen after the resume');

  // What cannot work is refused with INIT_INVALID, naming why.
  await writeFile(join(dir, 'bad1.yaml'), TUNE(1, ', freeze: [7]').replace('freeze: [0], ', ''));
  const bad1 = ringtrain('train', '--job', join(dir, 'bad1.yaml'), '--out', join(dir, 'bad1'));
  assert.equal(bad1.code, 2);
  assert.match(bad1.stderr, /error INIT_INVALID: init: freeze: no layer 7; the layers are 0\.\.2 \(dense_0, dense_1, output\)/);
  await writeFile(join(dir, 'bad2.yaml'), TUNE(1).replace('replaceHead: true', 'replaceHead: false'));
  const bad2 = ringtrain('train', '--job', join(dir, 'bad2.yaml'), '--out', join(dir, 'bad2'));
  assert.equal(bad2.code, 2);
  assert.match(bad2.stderr, /error INIT_INVALID: .*predicts classes 0, 1, 2; this job has 3, 4, 5 \(set replaceHead: true\)/);
});
