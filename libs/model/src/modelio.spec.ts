import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { access, mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { type Architecture, paramLayout } from './architecture.js';
import { selectBackend } from './backend.js';
import { ModelError } from './errors.js';
import { logits } from './forward.js';
import { Mlp } from './mlp.js';
import { layersModelJson, type ModelMetadata, saveModel, toLayersModel, writeFileAtomic, writeModelFiles } from './modelio.js';
import { loadModel } from './model-read.js';

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

/** The save path before writeModelFiles, kept as the reference: tfjs-layers builds the model and serializes it. */
async function tfjsModelFiles(mlp: Mlp, metadata: ModelMetadata): Promise<{ json: string; weights: Uint8Array }> {
  const model = toLayersModel(mlp);
  try {
    model.setUserDefinedMetadata({ ringtrain: metadata });
    let out: { json: string; weights: Uint8Array } | undefined;
    await model.save(
      tf.io.withSaveHandler(async (artifacts) => {
        const json = JSON.stringify({
          modelTopology: artifacts.modelTopology,
          format: 'layers-model',
          generatedBy: artifacts.generatedBy,
          convertedBy: null,
          weightsManifest: [{ paths: ['./weights.bin'], weights: artifacts.weightSpecs }],
          userDefinedMetadata: artifacts.userDefinedMetadata,
        });
        out = { json, weights: new Uint8Array(tf.io.CompositeArrayBuffer.join(artifacts.weightData)) };
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    return out!;
  } finally {
    model.dispose();
  }
}

/** What tfjs-node's file:// handler does: read model.json, then the weight files its manifest names, relative to it. */
function fileHandler(dir: string): tf.io.IOHandler {
  return {
    load: async () =>
      tf.io.getModelArtifactsForJSON(JSON.parse(await readFile(join(dir, 'model.json'), 'utf8')), async (manifest) => {
        const bytes = Buffer.concat(await Promise.all(manifest.flatMap((g) => g.paths).map((p) => readFile(join(dir, p)))));
        return [tf.io.getWeightSpecs(manifest), bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer];
      }),
  };
}

const bytesOf = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const REGRESSION: ModelMetadata = {
  formatVersion: 1,
  task: { kind: 'regression', target: 'y' },
  loss: 'mse',
  normalizer: { method: 'none', cols: 3 },
  featureNames: ['a', 'b', 'c'],
};
const CASES: [string, Architecture, ModelMetadata][] = [
  ['2 hidden (relu with dropout, tanh), softmax', ARCH, META],
  ['1 hidden (sigmoid with dropout), regression', { inputs: 3, hidden: [{ units: 5, activation: 'sigmoid', dropout: 0.5 }], outputs: 1, output: 'linear' }, REGRESSION],
  [
    '3 hidden (linear, tanh with dropout, sigmoid), softmax',
    {
      inputs: 4,
      hidden: [
        { units: 7, activation: 'linear', dropout: 0 },
        { units: 5, activation: 'tanh', dropout: 0.1 },
        { units: 3, activation: 'sigmoid', dropout: 0 },
      ],
      outputs: 3,
      output: 'softmax',
    },
    META,
  ],
  ['no hidden layer, regression', { inputs: 3, hidden: [], outputs: 1, output: 'linear' }, REGRESSION],
];

test('layersModelJson is, to the byte, the model.json tfjs-layers writes, and weights.bin the params', async () => {
  for (const [name, arch, meta] of CASES) {
    const mlp = Mlp.create(arch, 5);
    // Twice: tfjs's process-wide name counters move between the saves; nothing may follow them.
    for (let i = 0; i < 2; i++) {
      const tfjs = await tfjsModelFiles(mlp, meta);
      assert.deepEqual(JSON.parse(layersModelJson(arch, meta)), JSON.parse(tfjs.json), name);
      assert.equal(layersModelJson(arch, meta), tfjs.json, name);
      assert.deepEqual(tfjs.weights, bytesOf(mlp.params), name);
    }
  }
});

test('a directory from writeModelFiles loads with loadModel and tf.loadLayersModel, predicting what the Mlp predicts', async () => {
  for (const [name, arch, meta] of CASES) {
    const dir = await mkdtemp(join(tmpdir(), 'ringtrain-model-'));
    const mlp = Mlp.create(arch, 11);
    const before = tf.memory().numTensors;
    await writeModelFiles(dir, arch, mlp.params, meta);
    assert.deepEqual(new Uint8Array(await readFile(join(dir, 'weights.bin'))), bytesOf(mlp.params), name);
    assert.deepEqual(await readdir(dir), ['model.json', 'weights.bin'], name);

    const loaded = await loadModel(dir);
    assert.deepEqual(loaded.mlp.arch, arch, name);
    assert.deepEqual(loaded.mlp.params, mlp.params, name);
    assert.deepEqual(loaded.metadata, meta, name);

    const model = await tfl.loadLayersModel(fileHandler(dir));
    const x = tf.tensor2d(Array.from({ length: 3 * arch.inputs }, (_, i) => 2 * Math.sin(i + 1)), [3, arch.inputs]);
    const theirs = tf.tidy(() => (model.predict(x) as tf.Tensor).dataSync());
    const ours = tf.tidy(() => predict(mlp, x).dataSync());
    theirs.forEach((v, i) => assert.ok(Math.abs(v - ours[i]!) < 1e-5, `${name}: ${v} vs ${ours[i]}`));
    model.dispose();
    x.dispose();
    assert.equal(tf.memory().numTensors, before, `${name}: tensors leaked`);
  }
});

test('writeModelFiles writes weights.bin from a view: params inside a larger buffer are written exactly', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ringtrain-model-'));
  const size = paramLayout(ARCH).size;
  const backing = Float32Array.from({ length: size + 10 }, (_, i) => i * 0.25 - 7);
  const params = backing.subarray(3, 3 + size);
  await writeModelFiles(dir, ARCH, params, META);
  assert.deepEqual(new Uint8Array(await readFile(join(dir, 'weights.bin'))), bytesOf(params));
  const loaded = await loadModel(dir);
  assert.deepEqual(loaded.mlp.params, Float32Array.from(params));
});

test('writeModelFiles with the wrong number of parameters is MODEL_SHAPE_MISMATCH and writes nothing', async () => {
  const dir = join(await mkdtemp(join(tmpdir(), 'ringtrain-model-')), 'model');
  await assert.rejects(
    writeModelFiles(dir, ARCH, new Float32Array(paramLayout(ARCH).size - 1), META),
    (e: unknown) => e instanceof ModelError && e.code === 'MODEL_SHAPE_MISMATCH',
  );
  await assert.rejects(access(dir));
});
