/**
 * Serving rows. A worker fetches the rows of its shard once per epoch, ahead of need (a
 * `fetch`: a split and row indices, checked against the split by the decoder and against
 * the worker's shard by admission.ts). The answer goes back in `rows` chunks of at most
 * ROWS_CHUNK_BYTES (libs/protocol's rowsPerChunk), one at a time: the next chunk is
 * gathered (libs/data's gatherBatch, as a training step gathers its batch, into the same
 * buffers each time) once ws has written the last, so a request costs the coordinator one
 * chunk of memory however large it is and however slowly its worker reads.
 */
import { type BatchBuffers, gatherBatch, type Table } from '@ringtrain/data';
import { bytesOf, encodeMessage, rowsPerChunk, type Split } from '@ringtrain/protocol';

/** Where the chunks go: a worker's connection (connections.ts). */
export interface RowsSink {
  /** False once the connection is closing or closed: the rest of the answer is moot. */
  isOpen(): boolean;
  /** Resolves once the frame is written. */
  send(frame: Uint8Array): Promise<void>;
}

export interface RowsRequest {
  readonly id: number;
  readonly split: Split;
  readonly indices: Uint32Array;
}

/**
 * Answers `request` from `table`. `free` is called once, as soon as the last chunk is on
 * its way (the worker may then ask for the split again) or the answer ends early.
 */
export async function serveRows(to: RowsSink, table: Table, request: RowsRequest, free: () => void): Promise<void> {
  const { id, split, indices } = request;
  let freed = false;
  const release = (): void => {
    if (!freed) free();
    freed = true;
  };
  try {
    const per = rowsPerChunk(table.cols);
    let buffers: BatchBuffers = {};
    for (let offset = 0; to.isOpen(); offset += per) {
      const part = indices.subarray(offset, offset + per);
      const batch = gatherBatch(table, part, buffers);
      buffers = batch;
      const last = offset + part.length >= indices.length;
      if (last) release();
      await to.send(encodeMessage({ type: 'rows', id, split, offset, indices: bytesOf(part), features: bytesOf(batch.x), labels: bytesOf(batch.labels) }));
      if (last) return;
    }
  } finally {
    release();
  }
}
