/**
 * Reading source files: one place that turns Node's errno codes into DataErrors and
 * undoes gzip. Gzip is recognized by its magic bytes (1f 8b), not by the file name,
 * because renamed and half-decompressed downloads are common.
 */
import { access, readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { DataError } from './errors.js';

const gunzipAsync = promisify(gunzip);

export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** Reads a whole file, decompressing it when it is gzip. Empty files are an error. */
export async function readBytes(file: string): Promise<Uint8Array> {
  let raw: Buffer;
  try {
    raw = await readFile(file);
  } catch (err) {
    throw fileError(file, err);
  }
  if (raw.length === 0) throw new DataError('DATA_FILE_EMPTY', `${file}: file is empty`, { file });
  if (!isGzip(raw)) return raw;
  let out: Buffer;
  try {
    out = await gunzipAsync(raw);
  } catch (err) {
    throw new DataError('DATA_GZIP_INVALID', `${file}: starts with the gzip magic but does not decompress (${errnoText(err)})`, { file, cause: err });
  }
  if (out.length === 0) throw new DataError('DATA_FILE_EMPTY', `${file}: decompresses to nothing`, { file });
  return out;
}

/** Resolves to the first of `candidates` that exists, or throws DATA_FILE_MISSING naming them all. */
export async function firstExisting(candidates: readonly string[]): Promise<string> {
  for (const c of candidates) {
    try {
      await access(c);
      return c;
    } catch {
      // try the next spelling
    }
  }
  const first = candidates[0] ?? '';
  throw new DataError('DATA_FILE_MISSING', `${first}: no such file (looked for ${candidates.join(', ')})`, { file: first });
}

/**
 * Like Promise.all, but when several reject, the first in argument order wins, not the
 * first in time: the error a user sees must not depend on which read finished first.
 */
export async function allInOrder<T extends readonly unknown[]>(promises: { [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const settled = await Promise.allSettled(promises);
  for (const s of settled) if (s.status === 'rejected') throw s.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<unknown>).value) as unknown as T;
}

function fileError(file: string, err: unknown): DataError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    return new DataError('DATA_FILE_MISSING', `${file}: no such file`, { file, cause: err });
  }
  return new DataError('DATA_FILE_UNREADABLE', `${file}: cannot read (${errnoText(err)})`, { file, cause: err });
}

function errnoText(err: unknown): string {
  const e = err as NodeJS.ErrnoException | undefined;
  return e?.code ?? (err instanceof Error ? err.message : String(err));
}
