/**
 * ModelFilesWriter (modelio.ts): a model directory written from weights that arrive in
 * pieces is, byte for byte, what writeModelFiles writes from the whole array; a wrong
 * size is MODEL_SHAPE_MISMATCH; a writer that fails or is aborted leaves the directory
 * as it was, with no temporary file.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp as mkdtempIn, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Architecture, paramLayout } from './architecture.js';
import { ModelError } from './errors.js';
import { type ModelMetadata, ModelFilesWriter, writeModelFiles } from './modelio.js';

const ARCH: Architecture = { inputs: 5, hidden: [{ units: 7, activation: 'relu', dropout: 0.1 }], outputs: 3, output: 'softmax' };
const META: ModelMetadata = {
  formatVersion: 1,
  task: { kind: 'classification', classes: ['a', 'b', 'c'] },
  loss: 'cross-entropy',
  normalizer: { method: 'none', cols: 5 },
  featureNames: ['p', 'q', 'r', 's', 't'],
};
const SIZE = paramLayout(ARCH).size;

const dirs: string[] = [];
const mkdtemp = async (prefix: string): Promise<string> => {
  const d = await mkdtempIn(prefix);
  dirs.push(d);
  return d;
};
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const params = (): Float32Array => Float32Array.from({ length: SIZE }, (_, i) => Math.sin(i + 1) * 3);
const bytesOf = (a: Float32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const isCode = (code: string) => (e: unknown) => e instanceof ModelError && e.code === code;

test('weights streamed in pieces of any length give the files writeModelFiles writes, and the SHA-256 of weights.bin', async () => {
  const root = await mkdtemp(join(tmpdir(), 'ringtrain-mfw-'));
  const p = params();
  await writeModelFiles(join(root, 'whole'), ARCH, p, META);
  const writer = await ModelFilesWriter.open(join(root, 'streamed'), ARCH, META);
  assert.equal(writer.bytes, 4 * SIZE);
  const all = bytesOf(p);
  // Pieces that cut floats in two, and a copy per piece (the writer must not need the caller's buffer after the write).
  for (let at = 0, k = 1; at < all.byteLength; k += 2) {
    const piece = all.slice(at, Math.min(all.byteLength, at + k));
    await writer.write(piece);
    at += piece.byteLength;
  }
  assert.equal(writer.received, 4 * SIZE);
  const { sha256, bytes } = await writer.finish();
  for (const f of ['weights.bin', 'model.json']) {
    assert.deepEqual(await readFile(join(root, 'streamed', f)), await readFile(join(root, 'whole', f)), f);
  }
  assert.equal(bytes, 4 * SIZE);
  assert.equal(sha256, createHash('sha256').update(await readFile(join(root, 'whole', 'weights.bin'))).digest('hex'));
  assert.deepEqual((await readdir(join(root, 'streamed'))).sort(), ['model.json', 'weights.bin']);
});

test('more weights than the model has, or fewer at finish, is MODEL_SHAPE_MISMATCH, and no file is left', async () => {
  const root = await mkdtemp(join(tmpdir(), 'ringtrain-mfw-'));
  const over = await ModelFilesWriter.open(join(root, 'over'), ARCH, META);
  await over.write(new Uint8Array(4 * SIZE - 2));
  await assert.rejects(over.write(new Uint8Array(3)), isCode('MODEL_SHAPE_MISMATCH'));
  await over.abort();
  assert.deepEqual(await readdir(join(root, 'over')), []);
  const under = await ModelFilesWriter.open(join(root, 'under'), ARCH, META);
  await under.write(new Uint8Array(4 * SIZE - 4));
  await assert.rejects(under.finish(), (e: unknown) => isCode('MODEL_SHAPE_MISMATCH')(e) && /\d+ bytes of weights; the model has \d+ parameters/.test((e as Error).message));
  assert.deepEqual(await readdir(join(root, 'under')), []);
  await assert.rejects(under.write(new Uint8Array(4)), isCode('MODEL_FILE_INVALID'));
});

test('an aborted writer leaves the model that was there, and no temporary file', async () => {
  const root = await mkdtemp(join(tmpdir(), 'ringtrain-mfw-'));
  const dir = join(root, 'model');
  const before = params();
  await writeModelFiles(dir, ARCH, before, META);
  const writer = await ModelFilesWriter.open(dir, ARCH, META);
  await writer.write(new Uint8Array(40).fill(7));
  assert.equal((await readdir(dir)).length, 3, 'the temporary file sits beside the model while weights arrive');
  await writer.abort();
  await writer.abort();
  assert.deepEqual((await readdir(dir)).sort(), ['model.json', 'weights.bin']);
  assert.deepEqual(new Uint8Array(await readFile(join(dir, 'weights.bin'))), bytesOf(before));
});
