import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { describe, it } from 'node:test';
import { IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, loadIdxDir, parseIdx } from './idx.js';
import { dataError, tmpDir, writeFixture } from './testing.js';

function idx(magic: number, dims: readonly number[], data: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, magic, false);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

/** Writes a 4-file IDX directory: n train and m test images of h x w, pixel = index + position. */
async function writeIdxDir(opts: { n?: number; m?: number; h?: number; w?: number; labels?: number[]; gzip?: boolean; testLabels?: number } = {}) {
  const { n = 3, m = 2, h = 2, w = 3, gzip = false } = opts;
  const dir = await tmpDir();
  const put = (name: string, bytes: Uint8Array) => writeFixture(dir, gzip ? `${name}.gz` : name, gzip ? gzipSync(bytes) : bytes);
  const pixels = (k: number) => Array.from({ length: k * h * w }, (_, i) => (i * 7) % 256);
  const labels = opts.labels ?? [7, 0, 9, 1, 3, 2];
  await put('train-images-idx3-ubyte', idx(IDX_IMAGES_MAGIC, [n, h, w], pixels(n)));
  await put('train-labels-idx1-ubyte', idx(IDX_LABELS_MAGIC, [n], labels.slice(0, n)));
  await put('t10k-images-idx3-ubyte', idx(IDX_IMAGES_MAGIC, [m, h, w], pixels(m)));
  const tl = opts.testLabels ?? m;
  await put('t10k-labels-idx1-ubyte', idx(IDX_LABELS_MAGIC, [tl], labels.slice(n, n + tl)));
  return dir;
}

describe('parseIdx', () => {
  it('reads dims and data', () => {
    const a = parseIdx(idx(IDX_IMAGES_MAGIC, [1, 2, 2], [1, 2, 3, 4]), 'f', IDX_IMAGES_MAGIC);
    assert.deepEqual(a.dims, [1, 2, 2]);
    assert.deepEqual([...a.data], [1, 2, 3, 4]);
  });

  it('rejects a wrong magic', () => {
    assert.throws(() => parseIdx(idx(IDX_LABELS_MAGIC, [4], [1, 2, 3, 4]), 'f', IDX_IMAGES_MAGIC), dataError('DATA_IDX_MAGIC', { file: 'f', message: /0x00000801, expected 0x00000803/ }));
    assert.throws(() => parseIdx(new Uint8Array([0x50, 0x4b, 3, 4, 0, 0, 0, 0]), 'f', IDX_LABELS_MAGIC), dataError('DATA_IDX_MAGIC'));
  });

  it('rejects dims that disagree with the length', () => {
    assert.throws(() => parseIdx(idx(IDX_IMAGES_MAGIC, [2, 2, 2], [1, 2, 3, 4]), 'f', IDX_IMAGES_MAGIC), dataError('DATA_IDX_SHAPE', { message: /need 24 bytes, file has 20/ }));
    assert.throws(() => parseIdx(idx(IDX_IMAGES_MAGIC, [1, 1, 1], [1, 2]), 'f', IDX_IMAGES_MAGIC), dataError('DATA_IDX_SHAPE'));
    assert.throws(() => parseIdx(new Uint8Array([0, 0, 8, 3, 0]), 'f', IDX_IMAGES_MAGIC), dataError('DATA_IDX_SHAPE'));
    assert.throws(() => parseIdx(new Uint8Array([0, 0]), 'f', IDX_IMAGES_MAGIC), dataError('DATA_IDX_SHAPE'));
  });
});

describe('loadIdxDir', () => {
  for (const gzip of [false, true]) {
    it(`loads train and test ${gzip ? 'gzipped' : 'plain'}, pixels raw, classes 0..9`, async () => {
      const dir = await writeIdxDir({ gzip });
      const { train, test } = await loadIdxDir(dir);
      assert.equal(train.rows, 3);
      assert.equal(test.rows, 2);
      assert.equal(train.cols, 6);
      assert.deepEqual(train.imageShape, { height: 2, width: 3 });
      assert.equal(train.featureNames[4], 'px_1_1');
      assert.deepEqual([...train.features.subarray(0, 8)], [0, 7, 14, 21, 28, 35, 42, 49]);
      assert.deepEqual(train.task, { kind: 'classification', classes: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] });
      assert.deepEqual([...train.labels], [7, 0, 9]);
      assert.deepEqual([...test.labels], [1, 3]);
    });
  }

  it('maps labels beyond 9 to the distinct values in numeric order', async () => {
    const dir = await writeIdxDir({ labels: [26, 1, 12, 1, 26] });
    const { train, test } = await loadIdxDir(dir);
    assert.deepEqual(train.task, { kind: 'classification', classes: ['1', '12', '26'] });
    assert.deepEqual([...train.labels], [2, 0, 1]);
    assert.deepEqual([...test.labels], [0, 2]);
  });

  it('reports a count mismatch, a missing file and a shape mismatch', async () => {
    const dir = await writeIdxDir({ testLabels: 1 });
    await assert.rejects(loadIdxDir(dir), dataError('DATA_COUNT_MISMATCH', { file: join(dir, 't10k-labels-idx1-ubyte'), message: /has 1 labels, .* has 2 images/ }));
    await assert.rejects(loadIdxDir(join(dir, 'absent')), dataError('DATA_FILE_MISSING', { file: join(dir, 'absent') }));
    const partial = await tmpDir();
    await assert.rejects(loadIdxDir(partial), dataError('DATA_FILE_MISSING', { file: join(partial, 'train-images-idx3-ubyte') }));
    const odd = await writeIdxDir();
    await writeFixture(odd, 't10k-images-idx3-ubyte', idx(IDX_IMAGES_MAGIC, [2, 3, 2], new Array(12).fill(0)));
    await assert.rejects(loadIdxDir(odd), dataError('DATA_IDX_SHAPE', { message: /train images are 2x3, test images 3x2/ }));
  });

  const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
  const fashion = resolve(repoRoot, '../shared/data/fashion-mnist');
  it('loads Fashion-MNIST fast', { skip: existsSync(fashion) ? false : `${fashion} is absent` }, async () => {
    const t0 = performance.now();
    const { train, test } = await loadIdxDir(fashion);
    const ms = performance.now() - t0;
    assert.equal(train.rows, 60000);
    assert.equal(test.rows, 10000);
    assert.equal(train.cols, 784);
    assert.deepEqual(train.imageShape, { height: 28, width: 28 });
    assert.equal(train.features.length, 60000 * 784);
    const counts = new Array<number>(10).fill(0);
    for (const l of train.labels) counts[l]!++;
    assert.deepEqual(counts, new Array(10).fill(6000));
    let max = 0;
    let sum = 0;
    for (const v of train.features) {
      if (v > max) max = v;
      sum += v;
    }
    assert.equal(max, 255);
    // Fashion-MNIST's mean pixel is 72.94 (0.2860 x 255).
    assert.ok(Math.abs(sum / train.features.length - 72.94) < 0.05, String(sum / train.features.length));
    assert.ok(ms < 2000, `took ${ms.toFixed(0)} ms`);
  });
});
