/**
 * Certificates for the TLS tests and the all-reduce benchmark, made at run time with
 * openssl into a temporary directory (no private key is ever committed): a CA; a leaf it
 * signs whose names are 127.0.0.1, localhost and ringtrain-worker; a leaf it signs with
 * none of those names; and a second CA that signed nothing of ours. EC P-256 keys, valid
 * for two days. Files are mode 0600.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCerts {
  readonly dir: string;
  /** The CA's certificate. */
  readonly ca: string;
  /** A leaf for IP:127.0.0.1, DNS:localhost, DNS:ringtrain-worker, and its key. */
  readonly cert: string;
  readonly key: string;
  /** A leaf for DNS:elsewhere.invalid only, and its key. */
  readonly unnamedCert: string;
  readonly unnamedKey: string;
  /** Another CA's certificate, and its key (a key that belongs to no leaf above). */
  readonly otherCa: string;
  readonly otherKey: string;
}

const openssl = (dir: string, args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function leaf(dir: string, name: string, altNames: string): void {
  writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${altNames}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n`);
  openssl(dir, ['req', ...EC, '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.csr`]);
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.crt`]);
}

export function makeCerts(): TestCerts {
  const dir = mkdtempSync(join(tmpdir(), 'ringtrain-tls-'));
  openssl(dir, ['req', '-x509', ...EC, '-days', '2', '-subj', '/CN=ringtrain test CA', '-keyout', 'ca.key', '-out', 'ca.crt']);
  openssl(dir, ['req', '-x509', ...EC, '-days', '2', '-subj', '/CN=another CA', '-keyout', 'other-ca.key', '-out', 'other-ca.crt']);
  leaf(dir, 'server', 'IP:127.0.0.1,DNS:localhost,DNS:ringtrain-worker');
  leaf(dir, 'unnamed', 'DNS:elsewhere.invalid');
  for (const f of readdirSync(dir)) chmodSync(join(dir, f), 0o600);
  const at = (f: string): string => join(dir, f);
  return {
    dir,
    ca: at('ca.crt'),
    cert: at('server.crt'),
    key: at('server.key'),
    unnamedCert: at('unnamed.crt'),
    unnamedKey: at('unnamed.key'),
    otherCa: at('other-ca.crt'),
    otherKey: at('other-ca.key'),
  };
}
