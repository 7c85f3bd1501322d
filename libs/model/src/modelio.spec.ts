import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { Architecture } from './architecture.js';
import { selectBackend } from './backend.js';
import { ModelError } from './errors.js';
import { logits } from './forward.js';
import { Mlp } from './mlp.js';
import { loadModel, type ModelMetadata, saveModel, writeFileAtomic } from './modelio.js';

/** The model's outputs as a user sees them (class probabilities, or regression values): what a LayersModel's predict() gives. */
function predict(mlp: Mlp, x: tf.Tensor2D): tf.Tensor2D {
  const z = logits(mlp, x);
  return mlp.arch.output === 'softmax' ? tf.softmax(z) : z;
}

const ARCH: Architecture = {
  inputs: 4,
  hidden: [
    { units: 8, activation: 'relu', dropout: 0.2 },
    { units: 6, activation: 'tanh', dropout: 0 },
  ],
  outputs: 3,
  output: 'softmax',
};
const META: ModelMetadata = {
  formatVersion: 1,
  task: { kind: 'classification', classes: ['a', 'b', 'c'] },
  loss: 'cross-entropy',
  normalizer: { method: 'none', cols: 4 },
  featureNames: ['w', 'x', 'y', 'z'],
};

before(async () => {
  await selectBackend('cpu');
});

test('save then load gives the same architecture, parameters and metadata', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtrain-model-'));
  const mlp = Mlp.create(ARCH, 9);
  await saveModel(mlp, dir, META);
  const json = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8'));
  assert.equal(json.format, 'layers-model');
  assert.deepEqual(json.weightsManifest[0].paths, ['./weights.bin']);
  const loaded = await loadModel(dir);
  assert.deepEqual(loaded.mlp.arch, ARCH);
  assert.deepEqual(loaded.mlp.params, mlp.params);
  assert.deepEqual(loaded.metadata, META);
  mlp.dispose();
  loaded.mlp.dispose();
});

test('a plain tf.LayersModel built from the files predicts what the Mlp predicts', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtrain-model-'));
  const mlp = Mlp.create(ARCH, 4);
  await saveModel(mlp, dir, META);
  // What a user does with tfjs-node's file:// handler, done by hand: read the two files.
  const json = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8'));
  const weights = await readFile(join(dir, 'weights.bin'));
  const model = await tfl.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: json.modelTopology,
      weightSpecs: json.weightsManifest[0].weights,
      weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength),
    }),
  );
  const x = tf.tensor2d([0.1, -2, 3, 0.5, 1, 1, -1, 0], [2, 4]);
  const theirs = (model.predict(x) as tf.Tensor).dataSync();
  const ours = tf.tidy(() => predict(mlp, x).dataSync());
  theirs.forEach((v, i) => assert.ok(Math.abs(v - ours[i]!) < 1e-6, `${v} vs ${ours[i]}`));
  model.dispose();
  x.dispose();
  mlp.dispose();
});

test('missing and corrupt model files are coded errors', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtrain-model-'));
  await assert.rejects(loadModel(dir), (e: unknown) => e instanceof ModelError && e.code === 'MODEL_FILE_MISSING');
  await writeFile(join(dir, 'model.json'), '{"modelTopology": 1');
  await assert.rejects(loadModel(dir), (e: unknown) => e instanceof ModelError && e.code === 'MODEL_FILE_INVALID');
  await writeFile(join(dir, 'model.json'), '{"hello": "world"}');
  await assert.rejects(loadModel(dir), (e: unknown) => e instanceof ModelError && e.code === 'MODEL_FILE_INVALID');
});

test('malformed ringtrain metadata is MODEL_FILE_INVALID, naming what is wrong', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtrain-model-'));
  const mlp = Mlp.create(ARCH, 2);
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ...META, task: { kind: 'classification', classes: ['a', 'b'] } }, /as classes for 3 outputs/],
    [{ ...META, loss: 'hinge' }, /has loss "hinge"/],
    [{ ...META, normalizer: { method: 'standardize', mean: [0], std: [0] } }, /invalid normalization statistics/],
    [{ ...META, formatVersion: 7 }, /has format 7/],
  ];
  for (const [meta, message] of cases) {
    await saveModel(mlp, dir, meta as unknown as ModelMetadata);
    await assert.rejects(loadModel(dir), (e: unknown) => e instanceof ModelError && e.code === 'MODEL_FILE_INVALID' && message.test(e.message));
  }
  mlp.dispose();
});

test('concurrent writeFileAtomic calls on one path all succeed; the file is one whole value and no temporary file is left', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtrain-atomic-'));
  const path = join(dir, 'coordinator.json');
  // Values of different lengths: a torn or interleaved write would not be any one of them.
  const values = Array.from({ length: 200 }, (_, i) => `${JSON.stringify({ generation: i, pad: 'x'.repeat(i * 37) })}\n`);
  const results = await Promise.allSettled(values.map((v) => writeFileAtomic(path, v)));
  assert.deepEqual(
    results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason)),
    [],
  );
  assert.ok(values.includes(await readFile(path, 'utf8')), 'the file holds one of the written values, whole');
  assert.deepEqual(await readdir(dir), ['coordinator.json']);
});

test('a writeFileAtomic that fails removes its temporary file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtrain-atomic-'));
  const path = join(dir, 'taken');
  await mkdir(join(path, 'inside'), { recursive: true }); // a non-empty directory: the rename onto it fails
  await assert.rejects(writeFileAtomic(path, 'data'));
  assert.deepEqual(await readdir(dir), ['taken']);
});
