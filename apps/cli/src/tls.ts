/**
 * TLS options: --tls-cert, --tls-key (the certificate the coordinator's port and a
 * worker's ring endpoint serve), --tls-ca (the CA that the coordinator's and the ring
 * endpoints' certificates are verified against: by workers, and by the coordinator when
 * it probes an endpoint) and --tls-peer-name (the name ring endpoints' certificates are
 * checked for instead of the address dialed), each also from RINGTRAIN_TLS_CERT,
 * RINGTRAIN_TLS_KEY, RINGTRAIN_TLS_CA, RINGTRAIN_TLS_PEER_NAME. Files are read and checked once, at start, so that a bad file stops the process with an error
 * naming it rather than failing every connection later: a file that cannot be read is
 * TLS_FILE_UNREADABLE; one with no PEM certificate or key in it, a key that does not
 * belong to the certificate, or a certificate past its end date is TLS_FILE_INVALID. A
 * key file that any user may read is logged as a warning. Files are not reloaded: a
 * renewed certificate takes a restart.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { Logger } from 'pino';
import { UsageError } from './errors.js';

export class TlsFileError extends Error {
  constructor(
    readonly code: 'TLS_FILE_UNREADABLE' | 'TLS_FILE_INVALID',
    message: string,
  ) {
    super(message);
  }
}

/** The parseArgs options every command that takes TLS files declares. */
export const TLS_OPTIONS = {
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-ca': { type: 'string' },
  'tls-peer-name': { type: 'string' },
} as const;

export interface TlsPaths {
  readonly cert?: string;
  readonly key?: string;
  readonly ca?: string;
  /** Not a path: the name ring endpoints' certificates must carry. */
  readonly peerName?: string;
}

type TlsValues = { readonly [K in keyof typeof TLS_OPTIONS]?: string | undefined };

/** The options given by the flags, else by the environment (an empty variable sets none). */
export function tlsPaths(values: TlsValues, env: NodeJS.ProcessEnv = process.env): TlsPaths {
  const pick = (flag: string | undefined, name: string): string | undefined => (flag ?? env[name]) || undefined;
  const found = {
    cert: pick(values['tls-cert'], 'RINGTRAIN_TLS_CERT'),
    key: pick(values['tls-key'], 'RINGTRAIN_TLS_KEY'),
    ca: pick(values['tls-ca'], 'RINGTRAIN_TLS_CA'),
    peerName: pick(values['tls-peer-name'], 'RINGTRAIN_TLS_PEER_NAME'),
  };
  return Object.fromEntries(Object.entries(found).filter(([, v]) => v !== undefined)) as TlsPaths;
}

export const usesTls = (p: TlsPaths): boolean => Object.keys(p).length > 0;

/** Everything TLS, read and checked. */
export interface LoadedTls {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca?: Buffer;
  readonly peerName?: string;
}

function read(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new TlsFileError('TLS_FILE_UNREADABLE', `cannot read the TLS ${what} file ${path}: ${(err as Error).message}`);
  }
}

function certificate(pem: Buffer, path: string, what: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new TlsFileError('TLS_FILE_INVALID', `the TLS ${what} file ${path} holds no PEM certificate: ${(err as Error).message}`);
  }
}

/** The certificate and key to serve, checked; undefined when neither is named. */
function loadServerTls(p: TlsPaths, log?: Logger): { cert: Buffer; key: Buffer } | undefined {
  if (p.cert === undefined && p.key === undefined) return undefined;
  if (p.cert === undefined || p.key === undefined) {
    throw new UsageError('--tls-cert and --tls-key (RINGTRAIN_TLS_CERT, RINGTRAIN_TLS_KEY) go together: give both, or neither');
  }
  const cert = read(p.cert, 'certificate');
  const key = read(p.key, 'key');
  const x509 = certificate(cert, p.cert, 'certificate');
  if (new Date(x509.validTo) < new Date()) throw new TlsFileError('TLS_FILE_INVALID', `the certificate in ${p.cert} expired on ${x509.validTo}`);
  let keyObject: KeyObject;
  try {
    keyObject = createPrivateKey(key);
  } catch (err) {
    throw new TlsFileError('TLS_FILE_INVALID', `the TLS key file ${p.key} holds no usable PEM private key (an encrypted key cannot be used): ${(err as Error).message}`);
  }
  if (!x509.checkPrivateKey(keyObject)) throw new TlsFileError('TLS_FILE_INVALID', `the key in ${p.key} does not belong to the certificate in ${p.cert}`);
  if ((statSync(p.key).mode & 0o004) !== 0) log?.warn({ file: p.key }, 'the TLS key file is readable by every user: chmod o-r it (mode 0600 or 0640)');
  return { cert, key };
}

/** The CA certificates to verify against, checked; undefined when none is named (Node's bundled roots are used). */
function loadCa(p: TlsPaths): Buffer | undefined {
  if (p.ca === undefined) return undefined;
  const ca = read(p.ca, 'CA');
  certificate(ca, p.ca, 'CA');
  return ca;
}

/** Every TLS option, read and checked; undefined when none is set. Once any is, the certificate and key are required. */
export function loadTls(p: TlsPaths, log?: Logger): LoadedTls | undefined {
  if (!usesTls(p)) return undefined;
  const served = loadServerTls(p, log);
  if (!served) throw new UsageError('--tls-ca and --tls-peer-name take effect with --tls-cert and --tls-key (RINGTRAIN_TLS_CERT, RINGTRAIN_TLS_KEY): give those too, or none');
  const ca = loadCa(p);
  return { ...served, ...(ca ? { ca } : {}), ...(p.peerName ? { peerName: p.peerName } : {}) };
}
