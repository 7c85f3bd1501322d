/**
 * Reading LayersModels without TensorFlow.js (model-read.ts) and the parameter segments
 * a model's start is streamed from (param-source.ts): models tfjs-layers itself saves
 * (Sequential and functional, the manifest in any order, sharded across files, a weight
 * split between two shards) read into the parameters tfjs holds; every refusal names
 * the weight or file at fault.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { type Architecture, paramLayout } from './architecture.js';
import { selectBackend } from './backend.js';
import { ModelError } from './errors.js';
import { initialParamsInto } from './initial-params.js';
import { Mlp } from './mlp.js';
import { loadModel, readModelHead } from './model-read.js';
import { writeModelFiles } from './modelio.js';
import { type ParamSegment, paramPieces, readParamsSync, takeParams } from './param-source.js';

before(async () => {
  await selectBackend('cpu');
});

const ARCH: Architecture = {
  inputs: 5,
  hidden: [
    { units: 7, activation: 'relu', dropout: 0.25 },
    { units: 6, activation: 'tanh', dropout: 0 },
  ],
  outputs: 3,
  output: 'softmax',
};

interface Saved {
  topology: object;
  specs: tf.io.WeightsManifestEntry[];
  data: Uint8Array;
}

/** What tfjs-layers' own save gives for `model`: its topology, weight specs and bytes. */
async function tfjsArtifacts(model: tfl.LayersModel): Promise<Saved> {
  let out: Saved | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      out = { topology: a.modelTopology as object, specs: a.weightSpecs!, data: new Uint8Array(tf.io.CompositeArrayBuffer.join(a.weightData)) };
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return out!;
}

/** Writes the artifacts as a model directory whose weights are cut into shards of `shardBytes`, with the manifest's entries in `order`. */
async function writeSharded(saved: Saved, shardBytes: number, order: (specs: tf.io.WeightsManifestEntry[]) => tf.io.WeightsManifestEntry[] = (s) => s): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'rt-read-'));
  // Reordering the manifest reorders the bytes with it: each weight's bytes follow its entry.
  const offsets = new Map<string, [number, number]>();
  let at = 0;
  for (const s of saved.specs) {
    const n = 4 * s.shape.reduce((a, b) => a * b, 1);
    offsets.set(s.name, [at, n]);
    at += n;
  }
  const specs = order([...saved.specs]);
  const bytes = Buffer.concat(specs.map((s) => saved.data.subarray(offsets.get(s.name)![0], offsets.get(s.name)![0] + offsets.get(s.name)![1])));
  const paths: string[] = [];
  for (let i = 0; i * shardBytes < bytes.byteLength; i++) {
    paths.push(`./group1-shard${i + 1}`);
    await writeFile(join(dir, `group1-shard${i + 1}`), bytes.subarray(i * shardBytes, (i + 1) * shardBytes));
  }
  await writeFile(join(dir, 'model.json'), JSON.stringify({ modelTopology: saved.topology, format: 'layers-model', weightsManifest: [{ paths, weights: specs }] }));
  return dir;
}

function sequential(): tfl.LayersModel {
  const m = tfl.sequential();
  m.add(tfl.layers.dense({ units: 7, activation: 'relu', inputShape: [5], name: 'first' }));
  m.add(tfl.layers.dropout({ rate: 0.25 }));
  m.add(tfl.layers.dense({ units: 6, activation: 'tanh', name: 'second' }));
  m.add(tfl.layers.dense({ units: 3, activation: 'softmax', name: 'head' }));
  return m;
}

function functional(): tfl.LayersModel {
  const input = tfl.input({ shape: [5], name: 'features' });
  let x = tfl.layers.dense({ units: 7, activation: 'relu', name: 'first' }).apply(input) as tfl.SymbolicTensor;
  x = tfl.layers.dropout({ rate: 0.25 }).apply(x) as tfl.SymbolicTensor;
  x = tfl.layers.dense({ units: 6, activation: 'tanh', name: 'second' }).apply(x) as tfl.SymbolicTensor;
  const out = tfl.layers.dense({ units: 3, activation: 'softmax', name: 'head' }).apply(x) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out });
}

/** The model's weights as tfjs holds them, flattened in the layout order (kernel then bias, layer by layer). */
function tfjsParams(model: tfl.LayersModel): Float32Array {
  return Float32Array.from(model.getWeights().flatMap((w) => [...(w.dataSync() as Float32Array)]));
}

test('Sequential and functional models saved by tfjs-layers, sharded and reordered, read into the parameters tfjs holds', async () => {
  for (const [name, make] of [['sequential', sequential], ['functional', functional]] as const) {
    const model = make();
    const want = tfjsParams(model);
    const saved = await tfjsArtifacts(model);
    // 60-byte shards split weights between files (60 is a whole number of floats); 1 MB keeps each whole.
    for (const [shard, order] of [[1 << 20, (s: tf.io.WeightsManifestEntry[]) => s], [60, (s: tf.io.WeightsManifestEntry[]) => s.reverse()]] as const) {
      const dir = await writeSharded(saved, shard, order);
      const loaded = await loadModel(dir);
      assert.deepEqual(loaded.mlp.arch, ARCH, name);
      assert.deepEqual(loaded.layerNames, ['first', 'second', 'head']);
      assert.equal(loaded.metadata, null);
      assert.deepEqual(loaded.mlp.params, want, `${name}, shards of ${shard} bytes`);
    }
    model.dispose();
  }
});

test("ringtrain's own weights.bin is one file range: the layout order is the file's order", async () => {
  const dir = await mkdtemp(join(tmpdir(), 'rt-read-'));
  const mlp = Mlp.create(ARCH, 3);
  await writeModelFiles(dir, ARCH, mlp.params, { formatVersion: 1, task: { kind: 'classification', classes: ['a', 'b', 'c'] }, loss: 'cross-entropy', normalizer: { method: 'none', cols: 5 }, featureNames: ['a', 'b', 'c', 'd', 'e'] });
  const head = await readModelHead(dir);
  assert.deepEqual(head.params, [{ kind: 'file', path: join(dir, 'weights.bin'), byteOffset: 0, count: paramLayout(ARCH).size }]);
  assert.deepEqual(head.layerNames, ['dense_0', 'dense_1', 'output']);
});

/** A sequential model's directory with `edit` applied to its model.json and weights. */
async function edited(edit: (json: { modelTopology: { config: { layers: { class_name: string; config: Record<string, unknown> }[] } }; weightsManifest: { paths: string[]; weights: Record<string, unknown>[] }[] }, weights: Float32Array) => Uint8Array | void): Promise<string> {
  const model = sequential();
  const saved = await tfjsArtifacts(model);
  model.dispose();
  const dir = await writeSharded(saved, 1 << 20);
  const json = JSON.parse(await (await import('node:fs/promises')).readFile(join(dir, 'model.json'), 'utf8'));
  const weights = new Float32Array(saved.data.slice().buffer);
  const bytes = edit(json, weights) ?? new Uint8Array(weights.buffer);
  await writeFile(join(dir, 'group1-shard1'), bytes);
  await writeFile(join(dir, 'model.json'), JSON.stringify(json));
  return dir;
}

test('refusals name what is wrong: a NaN weight, a short file, a quantized or missing weight, a layer that is not Dense or Dropout, a wrong shape', async () => {
  const cases: [string, Parameters<typeof edited>[0], RegExp, string?][] = [
    ['a NaN', (_, w) => void (w[3] = NaN), /weight first\/kernel\[3\] is NaN/],
    ['an infinity in a bias', (_, w) => void (w[5 * 7 + 2] = -Infinity), /weight first\/bias\[2\] is -Infinity/],
    ['a short file', (_, w) => new Uint8Array(w.buffer, 0, w.byteLength - 8), /hold \d+ bytes; the manifest names \d+/],
    [
      'a quantized kernel',
      (j, w) => {
        j.weightsManifest[0]!.weights[2]!['quantization'] = { dtype: 'uint8', scale: 1, min: 0 };
        // second/kernel (7 x 6, after first's 35 + 7 floats) stored as one byte a value.
        const b = new Uint8Array(w.buffer);
        return Buffer.concat([b.subarray(0, 4 * 42), new Uint8Array(42), b.subarray(4 * 84)]);
      },
      /weight second\/kernel is quantized uint8; only float32/,
    ],
    ['a missing bias', (j) => void (j.weightsManifest[0]!.weights[1]!['name'] = 'first/other'), /has no first\/bias/],
    ['a conv layer', (j) => void (j.modelTopology.config.layers[1]!.class_name = 'Conv1D'), /is a Conv1D; only Dense and Dropout/],
    ['a wrong shape', (j) => void (j.modelTopology.config.layers[2]!.config['units'] = 9), /second\/kernel has shape \[7,6\]; the layers need \[7,9\]/],
    ['a missing weights file', (j) => void j.weightsManifest[0]!.paths.push('./gone.bin'), /gone.bin: weights file named by/, 'MODEL_FILE_MISSING'],
  ];
  for (const [name, edit, message, code = 'MODEL_FILE_INVALID'] of cases) {
    const dir = await edited(edit);
    await assert.rejects(readModelHead(dir), (e: unknown) => e instanceof ModelError && e.code === code && message.test(e.message), name);
  }
});

test('segments: mixed file and initial ranges read whole and in pieces of any size to the same bits; takeParams cuts a prefix', async () => {
  const arch: Architecture = { inputs: 5, hidden: [{ units: 9, activation: 'relu', dropout: 0 }], outputs: 4, output: 'softmax' };
  const size = paramLayout(arch).size;
  const dir = await mkdtemp(join(tmpdir(), 'rt-seg-'));
  const file = Float32Array.from({ length: 40 }, (_, i) => i / 8);
  await writeFile(join(dir, 'w.bin'), new Uint8Array(file.buffer));
  // The first 30 parameters from the file (skipping its first 3 values), the rest fresh from the seed.
  const segments: ParamSegment[] = [
    { kind: 'file', path: join(dir, 'w.bin'), byteOffset: 12, count: 30 },
    { kind: 'initial', arch, seed: 7, at: 30, count: size - 30 },
  ];
  const want = initialParamsInto(arch, 7, 0, new Float32Array(size));
  want.set(file.subarray(3, 33));
  assert.deepEqual(readParamsSync(segments, size), want);
  for (const bytes of [1, 4, 6, 40, 4 * size, 1 << 20]) {
    const parts: Uint8Array[] = [];
    for await (const p of paramPieces(segments, bytes)) parts.push(p);
    assert.ok(parts.every((p) => p.byteLength <= Math.max(4, bytes)), `pieces of at most ${bytes} bytes`);
    const b = Buffer.concat(parts);
    assert.deepEqual(new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)), want, `pieces of ${bytes} bytes`);
  }
  assert.deepEqual(takeParams(segments, 35), [segments[0], { ...segments[1], count: 5 }]);
  assert.throws(() => takeParams(segments, size + 1), RangeError);
  await assert.rejects(async () => {
    for await (const _ of paramPieces([{ kind: 'file', path: join(dir, 'w.bin'), byteOffset: 0, count: 41 }])) void _;
  }, (e: unknown) => e instanceof ModelError && /ended at byte 160/.test(e.message));
});
