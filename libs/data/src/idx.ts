/**
 * IDX, the MNIST file format (http://yann.lecun.com/exdb/mnist/): a big-endian header
 * of magic (0x0000 type ndims), one uint32 per dimension, then the items as unsigned
 * bytes. Images are 0x00000803 [n, height, width], labels 0x00000801 [n].
 *
 * A directory holds the four files of the MNIST family with their own train/test split,
 * each optionally gzipped. Pixels are decoded straight into one Float32Array with their
 * raw values 0..255; scaling is the normalizer's job, so that the statistics saved with
 * a model describe what the model actually saw.
 *
 * Classes: when every label is a digit 0..9 (MNIST, Fashion-MNIST, KMNIST) the classes
 * are "0".."9" and a label is its own class index, even if a small file lacks a digit,
 * so the model always has ten outputs. Otherwise (EMNIST letters are 1..26) the classes
 * are the distinct values of train and test together, in numeric order.
 */
import { join } from 'node:path';
import { DataError } from './errors.js';
import { allInOrder, firstExisting, readBytes } from './files.js';
import type { Table } from './types.js';

export const IDX_IMAGES_MAGIC = 0x00000803;
export const IDX_LABELS_MAGIC = 0x00000801;

export interface IdxArray {
  readonly dims: readonly number[];
  /** The items, a view into the file's bytes. */
  readonly data: Uint8Array;
}

/** Parses one IDX file and checks its magic and that its dims account for every byte. */
export function parseIdx(bytes: Uint8Array, file: string, magic: number): IdxArray {
  const ndims = magic & 0xff;
  const headerLen = 4 + 4 * ndims;
  if (bytes.length < 4) throw shape(file, `file has ${bytes.length} bytes, shorter than the 4-byte magic`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const got = view.getUint32(0, false);
  if (got !== magic) {
    throw new DataError('DATA_IDX_MAGIC', `${file}: magic is ${hex(got)}, expected ${hex(magic)} (${ndims === 3 ? 'images' : 'labels'})`, { file });
  }
  if (bytes.length < headerLen) throw shape(file, `file has ${bytes.length} bytes, shorter than its ${headerLen}-byte header`);
  const dims: number[] = [];
  let items = 1;
  for (let d = 0; d < ndims; d++) {
    const n = view.getUint32(4 + 4 * d, false);
    dims.push(n);
    items *= n;
  }
  if (bytes.length !== headerLen + items) {
    throw shape(file, `dimensions [${dims.join(', ')}] need ${headerLen + items} bytes, file has ${bytes.length}`);
  }
  return { dims, data: bytes.subarray(headerLen) };
}

function shape(file: string, what: string): DataError {
  return new DataError('DATA_IDX_SHAPE', `${file}: ${what}`, { file });
}

function hex(n: number): string {
  return '0x' + n.toString(16).padStart(8, '0');
}

/** Reads dir/<prefix>-images-idx3-ubyte[.gz] and its labels into one Table, with raw class values. */
async function loadPair(dir: string, prefix: string): Promise<{ table: Omit<Table, 'labels' | 'task'>; raw: Uint8Array }> {
  const imagesFile = await firstExisting(spellings(join(dir, `${prefix}-images-idx3-ubyte`)));
  const labelsFile = await firstExisting(spellings(join(dir, `${prefix}-labels-idx1-ubyte`)));
  const [imageBytes, labelBytes] = await allInOrder<[Uint8Array, Uint8Array]>([readBytes(imagesFile), readBytes(labelsFile)]);
  const images = parseIdx(imageBytes, imagesFile, IDX_IMAGES_MAGIC);
  const labels = parseIdx(labelBytes, labelsFile, IDX_LABELS_MAGIC);
  const [n, height, width] = images.dims as [number, number, number];
  if (labels.dims[0] !== n) {
    throw new DataError('DATA_COUNT_MISMATCH', `${labelsFile}: has ${labels.dims[0]} labels, ${imagesFile} has ${n} images`, { file: labelsFile });
  }
  const cols = height * width;
  // TypedArray.set converts uint8 to float32 in native code: ~50 ms for 60k x 784.
  const features = new Float32Array(n * cols);
  features.set(images.data);
  return { table: { features, rows: n, cols, featureNames: pixelNames(height, width), imageShape: { height, width } }, raw: labels.data };
}

function spellings(base: string): string[] {
  return [base, `${base}.gz`];
}

const nameCache = new Map<string, readonly string[]>();

function pixelNames(height: number, width: number): readonly string[] {
  const key = `${height}x${width}`;
  let names = nameCache.get(key);
  if (names === undefined) {
    const out: string[] = [];
    for (let r = 0; r < height; r++) for (let c = 0; c < width; c++) out.push(`px_${r}_${c}`);
    names = Object.freeze(out);
    nameCache.set(key, names);
  }
  return names;
}

/** Loads an MNIST-family directory with its own train and test split. */
export async function loadIdxDir(dir: string): Promise<{ train: Table; test: Table }> {
  await firstExisting([dir]);
  type Pair = Awaited<ReturnType<typeof loadPair>>;
  const [train, test] = await allInOrder<[Pair, Pair]>([loadPair(dir, 'train'), loadPair(dir, 't10k')]);
  const ts = train.table.imageShape!;
  const vs = test.table.imageShape!;
  if (ts.height !== vs.height || ts.width !== vs.width) {
    throw new DataError('DATA_IDX_SHAPE', `${dir}: train images are ${ts.height}x${ts.width}, test images ${vs.height}x${vs.width}`, { file: dir });
  }
  const values = new Set<number>([...new Set(train.raw), ...new Set(test.raw)]);
  const digits = [...values].every((v) => v < 10);
  const sorted = digits ? [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] : [...values].sort((a, b) => a - b);
  const index = new Int32Array(256).fill(-1);
  sorted.forEach((v, i) => (index[v] = i));
  const task = { kind: 'classification', classes: sorted.map(String) } as const;
  const finish = (p: typeof train): Table => ({ ...p.table, labels: Int32Array.from(p.raw, (v) => index[v]!), task });
  return { train: finish(train), test: finish(test) };
}
