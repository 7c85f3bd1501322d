import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { pack } from 'msgpackr';
import { RingError, RingFrameError } from './errors.js';
import { decodeHandshake, encodeHandshake, HANDSHAKE_VERSION, newNonce, probeFields, proof, proofMatches, tokenBytes } from './handshake.js';

const fields = { serverNonce: newNonce(), clientNonce: newNonce(), generation: 4, from: 1, to: 2, world: 3, segmentBytes: 1024 };

describe('handshake', () => {
  it('round-trips each message', () => {
    const hello = { type: 'hello', v: HANDSHAKE_VERSION, generation: 4, from: 1, to: 2, world: 3, segmentBytes: 1024, nonce: newNonce(), mac: randomBytes(32) } as const;
    const got = decodeHandshake(encodeHandshake(hello));
    assert.equal(got.type, 'hello');
    assert.deepEqual({ ...got, nonce: Buffer.from(got.type === 'hello' ? got.nonce : []), mac: Buffer.from(got.type === 'hello' ? got.mac : []) }, hello);
    assert.equal(decodeHandshake(encodeHandshake({ type: 'challenge', v: 1, nonce: newNonce() })).type, 'challenge');
    assert.equal(decodeHandshake(encodeHandshake({ type: 'welcome', v: 1, mac: randomBytes(32) })).type, 'welcome');
  });

  it('binds the proof to the token, the role, both nonces, the ranks and the segment size', () => {
    const key = tokenBytes('secret');
    const mac = proof(key, 'hello', fields);
    assert.ok(proofMatches(proof(tokenBytes('secret'), 'hello', fields), mac));
    assert.ok(!proofMatches(proof(tokenBytes('secreT'), 'hello', fields), mac));
    assert.ok(!proofMatches(proof(key, 'welcome', fields), mac));
    assert.ok(!proofMatches(proof(key, 'hello', { ...fields, to: 0 }), mac));
    assert.ok(!proofMatches(proof(key, 'hello', { ...fields, clientNonce: newNonce() }), mac));
    assert.ok(!proofMatches(proof(key, 'hello', { ...fields, segmentBytes: 2048 }), mac));
    assert.ok(!proofMatches(mac.subarray(0, 31), mac));
  });

  it('a probe decodes as its own message, and its proof is never a hello\'s (nor the reverse)', () => {
    const probe = decodeHandshake(encodeHandshake({ type: 'probe', v: 1, nonce: newNonce(), mac: randomBytes(32) }));
    assert.equal(probe.type, 'probe');
    const key = tokenBytes('secret');
    const zeros = probeFields(fields.serverNonce, fields.clientNonce);
    const probeMac = proof(key, 'probe', zeros);
    assert.ok(!proofMatches(proof(key, 'hello', zeros), probeMac));
    assert.ok(!proofMatches(proof(key, 'probe-welcome', zeros), probeMac));
    assert.ok(!proofMatches(proof(key, 'welcome', zeros), proof(key, 'probe-welcome', zeros)));
    assert.throws(() => decodeHandshake(pack({ type: 'probe', v: 1, nonce: newNonce(), mac: randomBytes(32), generation: 1 })), (err: unknown) => err instanceof RingFrameError);
  });

  it('refuses an empty token', () => {
    assert.throws(() => tokenBytes(''), (err: unknown) => err instanceof RingError && err.code === 'RING_INVALID_ARGUMENT');
  });

  it('rejects malformed messages with coded errors only', () => {
    const bad = [
      pack({ type: 'challenge', v: 2, nonce: newNonce() }),
      pack({ type: 'challenge', v: 1, nonce: randomBytes(31) }),
      pack({ type: 'challenge', v: 1, nonce: newNonce(), extra: 1 }),
      pack({ type: 'hello', v: 1, generation: -1, from: 0, to: 1, world: 2, segmentBytes: 4, nonce: newNonce(), mac: randomBytes(32) }),
      pack({ type: 'hello', v: 1, generation: 1, from: 2, to: 1, world: 2, segmentBytes: 4, nonce: newNonce(), mac: randomBytes(32) }),
      pack({ type: 'nope', v: 1 }),
      pack([1, 2, 3]),
      pack('hello'),
      Buffer.from([0xc1]),
    ];
    for (const buf of bad) assert.throws(() => decodeHandshake(buf), (err: unknown) => err instanceof RingFrameError && err.code === 'RING_BAD_FRAME');
    assert.throws(() => decodeHandshake(Buffer.alloc(600)), (err: unknown) => err instanceof RingFrameError && err.code === 'RING_FRAME_TOO_LARGE');
    for (let i = 0; i < 5000; i++) {
      try {
        decodeHandshake(randomBytes(Math.floor(Math.random() * 80)));
      } catch (err) {
        assert.ok(err instanceof RingFrameError, String(err));
      }
    }
  });
});
