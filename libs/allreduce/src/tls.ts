/**
 * TLS under the ring: every frame encrypted and integrity-checked, and the listening
 * member's identity checked by the dialing one. The HMAC handshake (handshake.ts) stays
 * on top and still proves the job's token both ways: TLS is confidentiality, the token
 * is membership.
 *
 * An endpoint with `tls` serves `cert` and `key` (https and wss); the rings using it dial
 * their successors over wss and verify the successor's certificate chain against `ca`
 * (Node's bundled root CAs without one) and its name. Which name:
 *
 * - by default the host dialed, as any TLS client does: a certificate per host with that
 *   host's name, or an IP SAN for an address;
 * - with `serverName`, that name whatever address was dialed. Ring peers dial each other
 *   by advertised address, in Kubernetes the pod IP, which no certificate issued before
 *   the pod started can name; one certificate with a fixed name (say `ringtrain-worker`)
 *   signed by the job's own CA then serves every worker. Its meaning: a peer is anyone
 *   holding a key whose certificate for that name the CA signed. So the CA must be the
 *   job's (or the namespace's) own, never a public one.
 *
 * A certificate that fails verification, or a peer that does not speak TLS, fails the dial
 * at once with RING_TLS_FAILED; nothing falls back to plain text. Client certificates are
 * not asked for: the token already authenticates the dialer.
 */
import { X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { RingError } from './errors.js';

export interface RingTls {
  /** PEM certificate chain this endpoint serves (leaf first). */
  readonly cert: string | Buffer;
  /** PEM private key of the certificate. */
  readonly key: string | Buffer;
  /** PEM CA certificates a peer's certificate must chain to; default Node's bundled roots. */
  readonly ca?: string | Buffer;
  /** The name a peer's certificate must carry, whatever address is dialed; default the dialed host. */
  readonly serverName?: string;
}

/** What `ws` passes to `tls.connect` when dialing `host`. */
export interface TlsDialOptions {
  readonly ca?: string | Buffer;
  /** SNI and the name checked; '' for an IP address without `serverName` (SNI cannot carry one; the IP is checked). */
  readonly servername: string;
}

/** Checks that `tls` can make a server and a client context; RING_INVALID_ARGUMENT naming what is wrong. */
export function validateTls(tls: RingTls): void {
  try {
    createSecureContext({ cert: tls.cert, key: tls.key });
  } catch (err) {
    throw new RingError('RING_INVALID_ARGUMENT', `tls: the certificate or key is unusable: ${(err as Error).message}`, {}, { cause: err });
  }
  if (tls.ca !== undefined) {
    try {
      // createSecureContext ignores a CA that is no certificate at all; this does not.
      new X509Certificate(tls.ca);
    } catch (err) {
      throw new RingError('RING_INVALID_ARGUMENT', `tls: the CA certificates are unusable: ${(err as Error).message}`, {}, { cause: err });
    }
  }
  if (tls.serverName !== undefined && !/^[A-Za-z0-9*]([A-Za-z0-9.*-]{0,251}[A-Za-z0-9])?$/.test(tls.serverName)) {
    throw new RingError('RING_INVALID_ARGUMENT', `tls: serverName must be a host name, got "${tls.serverName}"`);
  }
}

/** The client side of `tls` for a dial to `host` (a prober, which serves nothing, passes only `ca` and `serverName`). */
export function dialOptions(tls: Pick<RingTls, 'ca' | 'serverName'>, host: string): TlsDialOptions {
  const ip = /^[\d.]+$/.test(host) || host.includes(':');
  return { ...(tls.ca !== undefined ? { ca: tls.ca } : {}), servername: tls.serverName ?? (ip ? '' : host) };
}

/**
 * The OpenSSL verification results Node reports as `err.code` when a peer's certificate
 * is refused (X509_V_ERR_* without the prefix), and Node's own name check.
 */
const VERIFY_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY', 'CERT_SIGNATURE_FAILURE', 'CERT_NOT_YET_VALID', 'CERT_HAS_EXPIRED', 'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'CERT_CHAIN_TOO_LONG', 'CERT_REVOKED',
  'INVALID_CA', 'PATH_LENGTH_EXCEEDED', 'INVALID_PURPOSE', 'CERT_UNTRUSTED', 'CERT_REJECTED', 'HOSTNAME_MISMATCH', 'ERR_TLS_CERT_ALTNAME_INVALID',
]);

export interface TlsFailure {
  /** `untrusted`: the peer's certificate failed verification; `handshake`: no TLS session (the peer speaks plain text, no common version or cipher, an alert). */
  readonly kind: 'untrusted' | 'handshake';
  /** The code and OpenSSL's reason, on one line: "UNABLE_TO_VERIFY_LEAF_SIGNATURE: unable to verify the first certificate". */
  readonly detail: string;
}

/**
 * Whether `err` (from a TLS client socket) is a TLS failure rather than a network one.
 * Network errors (refused, reset, timed out) are not: they may pass.
 */
export function tlsFailure(err: unknown): TlsFailure | undefined {
  const e = err as { code?: unknown; reason?: unknown; message?: unknown } | null | undefined;
  const code = e?.code;
  if (typeof code !== 'string') return undefined;
  const kind = VERIFY_CODES.has(code) ? 'untrusted' : code.startsWith('ERR_SSL_') || code === 'EPROTO' ? 'handshake' : undefined;
  if (!kind) return undefined;
  // OpenSSL's errors carry the reason alone; EPROTO's message is OpenSSL's whole error line.
  const message = String(e?.message ?? '');
  const reason = typeof e?.reason === 'string' ? e.reason : (/:SSL routines:[^:]*:([^:]+):/.exec(message)?.[1] ?? message.split('\n')[0]!.trim());
  return { kind, detail: `${code}: ${reason}` };
}
