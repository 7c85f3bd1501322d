import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Table } from '@ringtrain/data';
import { decodeCoordinatorMessage, float32s, int32s, ROWS_CHUNK_BYTES, rowsPerChunk, uint32s } from '@ringtrain/protocol';
import { type RowsSink, serveRows } from './rows.js';

/** 2,500 rows of 1,022 features (1,024 rows a chunk): row r's features are r*1000 + column, its label r % 7. */
function table(): Table {
  const rows = 2500;
  const cols = 1022;
  const features = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) features[r * cols + c] = r * 1000 + c;
  const labels = Int32Array.from({ length: rows }, (_, r) => r % 7);
  return { features, rows, cols, featureNames: [], labels, task: { kind: 'classification', classes: ['0', '1', '2', '3', '4', '5', '6'] } };
}

/** A sink that keeps the frames, notes when `free` came, and closes after `openFor` frames. */
function sink(openFor = Infinity): RowsSink & { frames: Uint8Array[] } {
  const frames: Uint8Array[] = [];
  return { frames, isOpen: () => frames.length < openFor, send: async (f) => void frames.push(new Uint8Array(f)) };
}

test('an answer comes in chunks of at most ROWS_CHUNK_BYTES, each the rows asked for in order, and frees its split once, with its last chunk', async () => {
  const t = table();
  assert.equal(rowsPerChunk(t.cols), 1024);
  // 2,100 rows, backwards, with repeats: three chunks of 1,024, 1,024 and 52.
  const indices = Uint32Array.from({ length: 2100 }, (_, i) => (((2499 - i * 3) % 2500) + 2500) % 2500);
  const to = sink();
  let freedAt = -1;
  await serveRows(to, t, { id: 9, split: 'train', indices }, () => {
    assert.equal(freedAt, -1, 'freed twice');
    freedAt = to.frames.length;
  });
  assert.equal(freedAt, 2, 'freed as the last chunk went out');
  const chunks = to.frames.map((f) => decodeCoordinatorMessage(f));
  assert.deepEqual(chunks.map((m) => (m.type === 'rows' ? [m.id, m.split, m.offset] : m.type)), [[9, 'train', 0], [9, 'train', 1024], [9, 'train', 2048]]);
  for (const m of chunks) {
    if (m.type !== 'rows') continue;
    assert.ok(m.features.byteLength + m.labels.byteLength + m.indices.byteLength <= ROWS_CHUNK_BYTES);
    const idx = uint32s(m.indices, 'indices');
    const x = float32s(m.features, 'features');
    const y = int32s(m.labels, 'labels');
    assert.deepEqual([...idx], [...indices.subarray(m.offset, m.offset + idx.length)]);
    for (let k = 0; k < idx.length; k++) {
      const r = idx[k]!;
      assert.equal(y[k], r % 7);
      assert.equal(x[k * t.cols], r * 1000);
      assert.equal(x[(k + 1) * t.cols - 1], r * 1000 + t.cols - 1);
    }
  }
});

test('an empty request is one empty chunk; a connection that closes ends the answer and frees the split', async () => {
  const t = table();
  const empty = sink();
  let freed = 0;
  await serveRows(empty, t, { id: 1, split: 'test', indices: new Uint32Array(0) }, () => freed++);
  assert.equal(empty.frames.length, 1);
  assert.equal(freed, 1);
  const closing = sink(1);
  await serveRows(closing, t, { id: 2, split: 'train', indices: Uint32Array.from({ length: 2100 }, (_, i) => i) }, () => freed++);
  assert.equal(closing.frames.length, 1);
  assert.equal(freed, 2);
});
