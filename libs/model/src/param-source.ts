/**
 * Where a model's starting weights come from, without holding them: a list of segments
 * that together are the flat parameter vector in the layout order (architecture.ts).
 * A segment is float32 values in a file (a model's or a checkpoint's weights) or a range
 * of a fresh model's initial weights (computed from the seed, initial-params.ts).
 *
 * A fine-tuning job's start is the base model's hidden layers (a file range) and, with a
 * new head, the rest from the seed: the coordinator streams it a piece at a time
 * (paramPieces), and `ringtrain train` reads it whole (readParamsSync), the same bits.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Architecture } from './architecture.js';
import { ModelError } from './errors.js';
import { initialParamsInto } from './initial-params.js';

/** `count` float32 values (little-endian) at byte `byteOffset` of file `path`. */
export interface FileParams {
  readonly kind: 'file';
  readonly path: string;
  readonly byteOffset: number;
  readonly count: number;
}

/** Parameters [at, at + count) of a fresh `arch` model made with `seed`. */
export interface InitialParams {
  readonly kind: 'initial';
  readonly arch: Architecture;
  readonly seed: number;
  readonly at: number;
  readonly count: number;
}

export type ParamSegment = FileParams | InitialParams;

/** The number of parameters the segments hold together. */
export function segmentsSize(segments: readonly ParamSegment[]): number {
  return segments.reduce((n, s) => n + s.count, 0);
}

/** The first `count` parameters of `segments` (the base model's hidden layers, a prefix of its layout). */
export function takeParams(segments: readonly ParamSegment[], count: number): ParamSegment[] {
  const out: ParamSegment[] = [];
  let left = count;
  for (const s of segments) {
    if (left === 0) break;
    const n = Math.min(left, s.count);
    out.push({ ...s, count: n });
    left -= n;
  }
  if (left > 0) throw new RangeError(`takeParams: ${count} parameters asked of segments holding ${count - left}`);
  return out;
}

function shortFile(path: string, at: number): ModelError {
  return new ModelError('MODEL_FILE_INVALID', `${path}: ended at byte ${at}, before the weights its model names (was it changed since it was checked?)`);
}

/** Reads all the parameters into one new array of `size` (the whole model, for a process that trains it). */
export function readParamsSync(segments: readonly ParamSegment[], size: number): Float32Array {
  if (segmentsSize(segments) !== size) throw new RangeError(`readParamsSync: segments hold ${segmentsSize(segments)} parameters, not ${size}`);
  const out = new Float32Array(size);
  const bytes = new Uint8Array(out.buffer);
  let at = 0;
  for (const s of segments) {
    if (s.kind === 'initial') {
      initialParamsInto(s.arch, s.seed, s.at, out.subarray(at, at + s.count));
    } else {
      const fd = openSync(s.path, 'r');
      try {
        for (let done = 0; done < 4 * s.count; ) {
          const n = readSync(fd, bytes, 4 * at + done, 4 * s.count - done, s.byteOffset + done);
          if (n === 0) throw shortFile(s.path, s.byteOffset + done);
          done += n;
        }
      } finally {
        closeSync(fd);
      }
    }
    at += s.count;
  }
  return out;
}

/** The pieces are at most this many bytes: one transfer chunk. */
export const PARAM_PIECE_BYTES = 4 * 1024 * 1024;

/**
 * The parameters as bytes, a piece of at most `pieceBytes` at a time (read from the files,
 * or computed). Each piece is a new array: a transfer may still hold the tail of one (a
 * chunk it has not filled yet) when it asks for the next, so a reused buffer would be
 * overwritten under it.
 */
export async function* paramPieces(segments: readonly ParamSegment[], pieceBytes = PARAM_PIECE_BYTES): AsyncGenerator<Uint8Array> {
  const per = Math.max(1, Math.floor(pieceBytes / 4));
  for (const s of segments) {
    if (s.kind === 'initial') {
      for (let at = 0; at < s.count; at += per) {
        const piece = initialParamsInto(s.arch, s.seed, s.at + at, new Float32Array(Math.min(per, s.count - at)));
        yield new Uint8Array(piece.buffer);
      }
      continue;
    }
    const fh = await open(s.path, 'r');
    try {
      for (let done = 0; done < 4 * s.count; ) {
        const piece = new Uint8Array(Math.min(4 * per, 4 * s.count - done));
        const { bytesRead } = await fh.read(piece, 0, piece.byteLength, s.byteOffset + done);
        if (bytesRead === 0) throw shortFile(s.path, s.byteOffset + done);
        done += bytesRead;
        yield piece.subarray(0, bytesRead);
      }
    } finally {
      await fh.close();
    }
  }
}
