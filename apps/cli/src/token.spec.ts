import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterJob, newToken, readToken } from './token.js';

const usage = (re: RegExp) => (e: unknown) => (e as { code?: string }).code === 'CLI_USAGE' && re.test((e as Error).message);

test('the token comes from a file (flag, then RINGTRAIN_TOKEN_FILE, as a mounted Secret) or RINGTRAIN_TOKEN', () => {
  const dir = mkdtempSync(join(tmpdir(), 'token-'));
  const file = join(dir, 'token');
  writeFileSync(file, 'from-the-file-0123456789\n');
  assert.equal(readToken(file, {}), 'from-the-file-0123456789');
  assert.equal(readToken(undefined, { RINGTRAIN_TOKEN_FILE: file, RINGTRAIN_TOKEN: 'ignored-when-a-file-is-named' }), 'from-the-file-0123456789');
  assert.equal(readToken(undefined, { RINGTRAIN_TOKEN: ' from-the-environment-0123 ' }), 'from-the-environment-0123');
  assert.throws(() => readToken(undefined, {}), usage(/no job token/));
  assert.throws(() => readToken(undefined, { RINGTRAIN_TOKEN: 'short' }), usage(/too short/));
  assert.throws(() => readToken(join(dir, 'missing'), {}), usage(/cannot read the token file .*missing/));
  assert.match(newToken(), /^[0-9a-f]{64}$/);
});

test('RINGTRAIN_AFTER_JOB is exit (default) or wait', () => {
  assert.equal(afterJob({}), false);
  assert.equal(afterJob({ RINGTRAIN_AFTER_JOB: 'wait' }), true);
  assert.throws(() => afterJob({ RINGTRAIN_AFTER_JOB: 'linger' }), usage(/must be exit or wait, got "linger"/));
});
