import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMemoryLimit } from './commands/worker.js';
import { UsageError } from './errors.js';

test('--memory-limit: bytes, Kubernetes suffixes, none; anything else is a usage error', () => {
  assert.equal(parseMemoryLimit(undefined), undefined);
  assert.equal(parseMemoryLimit('none'), null);
  assert.equal(parseMemoryLimit('1048576'), 2 ** 20);
  assert.equal(parseMemoryLimit('512Mi'), 512 * 2 ** 20);
  assert.equal(parseMemoryLimit('1.5Gi'), 1.5 * 2 ** 30);
  assert.equal(parseMemoryLimit('8G'), 8e9);
  assert.equal(parseMemoryLimit('100K'), 1e5);
  for (const bad of ['', '0', '-1', '4X', '4 Gi', 'Gi', '1e9', 'NONE']) {
    assert.throws(() => parseMemoryLimit(bad), (e: unknown) => e instanceof UsageError && /--memory-limit must be/.test((e as Error).message), bad);
  }
});
