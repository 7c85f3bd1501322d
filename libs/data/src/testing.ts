/** Test helpers, shared by the spec files; excluded from the build, not exported. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import type { DataErrorCode } from './errors.js';
import { DataError } from './errors.js';

/** A fresh temporary directory, removed when the spec file's tests are done. */
export async function tmpDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ringtrain-data-'));
  after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes `content` to dir/name and returns the full path. */
export async function writeFixture(dir: string, name: string, content: string | Uint8Array): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, content);
  return file;
}

/** A predicate for assert.throws / assert.rejects: a DataError with this code and these fields. */
export function dataError(code: DataErrorCode, fields: { file?: string; row?: number; column?: string; message?: RegExp } = {}) {
  return (err: unknown): boolean => {
    if (!(err instanceof DataError)) throw new Error(`expected a DataError, got ${String(err)}`);
    if (err.code !== code) throw new Error(`expected ${code}, got ${err.code}: ${err.message}`);
    for (const k of ['file', 'row', 'column'] as const) {
      if (fields[k] !== undefined && err[k] !== fields[k]) throw new Error(`expected ${k} ${String(fields[k])}, got ${String(err[k])}: ${err.message}`);
    }
    if (fields.message && !fields.message.test(err.message)) throw new Error(`message ${JSON.stringify(err.message)} does not match ${String(fields.message)}`);
    return true;
  };
}
