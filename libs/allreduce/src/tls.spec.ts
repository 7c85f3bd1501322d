/**
 * The pure parts of tls.ts: which name a dial verifies, and which errors are TLS
 * failures (final) rather than network ones (retried). Rings over real TLS, with
 * certificates made by openssl at run time, are in tests/allreduce-tls.spec.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { errorForClose } from './close.js';
import { dialOptions, tlsFailure, validateTls } from './tls.js';
import { isCode } from './ring.fixture.js';


describe('dialOptions', () => {
  it('verifies the host dialed: a name by SNI, an address by its IP SAN (SNI cannot carry one)', () => {
    assert.deepEqual(dialOptions({}, 'worker-3.example'), { servername: 'worker-3.example' });
    assert.deepEqual(dialOptions({}, '10.1.2.3'), { servername: '' });
    assert.deepEqual(dialOptions({}, 'fd00::1'), { servername: '' });
  });

  it('with serverName, that name whatever was dialed, and the CA when given', () => {
    assert.deepEqual(dialOptions({ serverName: 'ringtrain-worker', ca: 'CA' }, '10.1.2.3'), { ca: 'CA', servername: 'ringtrain-worker' });
  });
});

describe('tlsFailure', () => {
  const err = (code: string, message = '', reason?: string) => Object.assign(new Error(message), { code, ...(reason ? { reason } : {}) });

  it('a certificate that failed verification is untrusted', () => {
    for (const code of ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_HAS_EXPIRED', 'ERR_TLS_CERT_ALTNAME_INVALID']) {
      assert.equal(tlsFailure(err(code, 'm'))?.kind, 'untrusted', code);
    }
    assert.equal(tlsFailure(err('ERR_TLS_CERT_ALTNAME_INVALID', 'long message', "Host: x. is not in the cert's altnames"))?.detail, "ERR_TLS_CERT_ALTNAME_INVALID: Host: x. is not in the cert's altnames");
  });

  it("no TLS session is a handshake failure, with OpenSSL's reason on one line", () => {
    const plain = err('EPROTO', 'write EPROTO 80AC5009A07F0000:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../deps/openssl/openssl/ssl/record/ssl3_record.c:350:\n');
    assert.deepEqual(tlsFailure(plain), { kind: 'handshake', detail: 'EPROTO: wrong version number' });
    assert.equal(tlsFailure(err('ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', 'x', 'tlsv1 alert unknown ca'))?.detail, 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: tlsv1 alert unknown ca');
  });

  it('network errors and non-errors are not TLS failures', () => {
    for (const e of [err('ECONNREFUSED'), err('ECONNRESET'), err('ETIMEDOUT'), new Error('no code'), undefined, null, 'text']) assert.equal(tlsFailure(e), undefined);
  });

  it('a link closed on a TLS failure is RING_TLS_FAILED, naming the peer', () => {
    const e = errorForClose(1006, '', 2, err('SELF_SIGNED_CERT_IN_CHAIN', 'self-signed certificate in certificate chain'));
    assert.ok(isCode('RING_TLS_FAILED')(e));
    assert.match(e.message, /^TLS with rank 2: its certificate failed verification \(SELF_SIGNED_CERT_IN_CHAIN: self-signed certificate in certificate chain\)$/);
  });
});

describe('validateTls', () => {
  it('refuses what cannot serve or verify with RING_INVALID_ARGUMENT', () => {
    assert.throws(() => validateTls({ cert: 'CERT', key: 'KEY' }), isCode('RING_INVALID_ARGUMENT'));
  });
});
