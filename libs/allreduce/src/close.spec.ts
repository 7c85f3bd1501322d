import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeReason, MAX_CLOSE_REASON_BYTES } from './close.js';

test('a close reason within 123 bytes is kept as it is', () => {
  assert.equal(closeReason(''), '');
  assert.equal(closeReason('RING_PEER_LOST: rank 2'), 'RING_PEER_LOST: rank 2');
  const full = 'x'.repeat(MAX_CLOSE_REASON_BYTES);
  assert.equal(closeReason(full), full);
  // A reason that ends with U+FFFD of its own keeps it.
  assert.equal(closeReason('bad byte \uFFFD'), 'bad byte \uFFFD');
});

test('a longer one is cut to at most 123 bytes, never through a character, at every offset of a multi-byte character', () => {
  for (const ch of ['é', '€', '😀']) {
    for (let pad = 0; pad < 4; pad++) {
      const text = 'a'.repeat(pad) + ch.repeat(100);
      const cut = closeReason(text);
      const bytes = Buffer.byteLength(cut);
      assert.ok(bytes <= MAX_CLOSE_REASON_BYTES, `${bytes} bytes`);
      assert.ok(bytes > MAX_CLOSE_REASON_BYTES - Buffer.byteLength(ch), `${bytes} bytes: cut too early`);
      assert.ok(text.startsWith(cut), 'a prefix of the text');
      assert.ok(!cut.includes('\uFFFD'), 'no replacement character');
    }
  }
});
