/**
 * TLS with real processes, certificates made at run time (tls-certs.ts): a coordinator
 * started with --tls-cert and --tls-key serves the dashboard and the API over https and
 * answers plain http with 400 TLS_REQUIRED; workers with the CA join over wss and train
 * over a TLS ring, and the job ends with the same bits as the same job without TLS (two
 * workers throughout both times), by `coordinator` and `worker` and by `local`; a proxy
 * between the workers and the coordinator reads the job's token in clear without TLS
 * and never with it. Workers that cannot join say why with a coded error and exit 2 (a
 * CA that did not sign the coordinator's certificate, an http:// URL for a TLS port, an
 * https:// URL for a plain one), and bad TLS files or options stop a command at once,
 * naming the file.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { get as httpGet, type IncomingMessage } from 'node:http';
import { get as httpsGet } from 'node:https';
import { join } from 'node:path';
import { FaultProxy } from './allreduce-proxy.js';
import { coordinatorUrl, exited, killAll, ringtrain, run, stderrOf, tempDir, TOKEN, writeJob } from './cluster-harness.js';
import { makeCerts, type TestCerts } from './tls-certs.js';

interface Reply {
  readonly status: number;
  readonly type: string;
  readonly body: string;
}

function get(url: string, ca?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const done = (res: IncomingMessage): void => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body }));
    };
    const req = url.startsWith('https:') ? httpsGet(url, { ...(ca ? { ca: readFileSync(ca) } : {}) }, done) : httpGet(url, done);
    req.on('error', reject);
  });
}

describe('TLS on the coordinator port and the ring', () => {
  let certs: TestCerts;
  let dir = '';
  let job = '';
  let tlsEnv: NodeJS.ProcessEnv = {};
  /** The TLS coordinator of the first test; the others use it until its job completes. */
  let secure: ChildProcess;
  let secureUrl = '';

  before(async () => {
    certs = makeCerts();
    dir = await tempDir('tls');
    job = await writeJob(dir, { epochs: 2, startWorkers: 2 });
    tlsEnv = { RINGTRAIN_TLS_CERT: certs.cert, RINGTRAIN_TLS_KEY: certs.key, RINGTRAIN_TLS_CA: certs.ca };
  });
  after(killAll);

  const coordinator = async (out: string, env: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; url: string }> => {
    const child = ringtrain(['coordinator', '--job', job, '--out', join(dir, out), '--host', '127.0.0.1', '--port', '0'], { RINGTRAIN_TOKEN: TOKEN, ...env });
    return { child, url: await coordinatorUrl(child, 'stdout', 60_000) };
  };
  const worker = (url: string, id: string, env: NodeJS.ProcessEnv = {}): ChildProcess =>
    ringtrain(['--log-level', 'info', 'worker'], { RINGTRAIN_COORDINATOR: url, RINGTRAIN_TOKEN: TOKEN, RINGTRAIN_ADVERTISE_HOST: '127.0.0.1', RINGTRAIN_BIND_HOST: '127.0.0.1', RINGTRAIN_WORKER_ID: id, ...env });
  /** Runs a job with two workers that reach the coordinator through a recording proxy; resolves with what crossed it. */
  const trainThroughProxy = async (c: { child: ChildProcess; url: string }, env: NodeJS.ProcessEnv): Promise<Buffer> => {
    const target = new URL(c.url);
    const proxy = await FaultProxy.start(Number(target.port), { record: true });
    try {
      const via = `${target.protocol}//127.0.0.1:${proxy.port}`;
      const ws = [worker(via, 'a', env), worker(via, 'b', env)];
      assert.equal(await exited(c.child, 180_000), 0, stderrOf(c.child));
      assert.deepEqual(await Promise.all(ws.map((w) => exited(w, 30_000))), [0, 0], ws.map(stderrOf).join('\n'));
      // Each worker's ring endpoint served TLS exactly when its coordinator did (and its peers dialed it so).
      for (const w of ws) {
        const started = stderrOf(w).split('\n').find((l) => l.includes('"worker started"'));
        assert.equal((JSON.parse(started!) as { ringTls: boolean }).ringTls, target.protocol === 'https:', started);
      }
      return proxy.transcript();
    } finally {
      await proxy.close();
    }
  };

  test('a TLS coordinator serves the dashboard and the API over https, and answers plain http with 400 TLS_REQUIRED', async () => {
    ({ child: secure, url: secureUrl } = await coordinator('secure', tlsEnv));
    assert.match(secureUrl, /^https:\/\/127\.0\.0\.1:\d+$/);
    const page = await get(`${secureUrl}/`, certs.ca);
    assert.equal(page.status, 200);
    assert.match(page.type, /text\/html/);
    const status = await get(`${secureUrl}/api/status`, certs.ca);
    assert.equal(status.status, 200);
    assert.equal((JSON.parse(status.body) as { state: string }).state, 'waiting');
    const plain = await get(secureUrl.replace('https:', 'http:') + '/api/status');
    assert.equal(plain.status, 400);
    assert.equal((JSON.parse(plain.body) as { code: string }).code, 'TLS_REQUIRED');
    // A client that does not trust the CA gets no answer at all.
    await assert.rejects(get(`${secureUrl}/api/status`), (err: NodeJS.ErrnoException) => /UNABLE_TO_VERIFY|SELF_SIGNED/.test(String(err.code)));
  });

  test('workers that cannot reach a TLS coordinator, or are not set up for it, exit 2 with a coded error', async () => {
    const cases: [string, NodeJS.ProcessEnv, RegExp][] = [
      [secureUrl, { ...tlsEnv, RINGTRAIN_TLS_CA: certs.otherCa }, /error TLS_CERT_UNTRUSTED: the coordinator's certificate at wss:\/\/127\.0\.0\.1:\d+ failed verification \((UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN)/],
      [secureUrl.replace('https:', 'http:'), {}, /error TLS_REQUIRED: the coordinator at ws:\/\/127\.0\.0\.1:\d+ speaks TLS only: use an https:\/\/ URL/],
      [secureUrl, { RINGTRAIN_TLS_CA: certs.ca }, /error CLI_USAGE: a worker of a TLS coordinator \(https:\/\/\) serves its ring over TLS too: give --tls-cert and --tls-key/],
      [secureUrl.replace('https:', 'http:'), tlsEnv, /error CLI_USAGE: TLS options are set but the coordinator URL http:\/\/127\.0\.0\.1:\d+ is plain text/],
      [secureUrl, { ...tlsEnv, RINGTRAIN_TLS_KEY: certs.otherKey }, /error TLS_FILE_INVALID: the key in \S+other-ca\.key does not belong to the certificate in \S+server\.crt/],
    ];
    for (const [url, env, message] of cases) {
      const w = worker(url, 'refused', env);
      assert.equal(await exited(w, 30_000), 2, stderrOf(w));
      assert.match(stderrOf(w), message);
    }
    assert.equal(secure.exitCode, null, 'the coordinator is unharmed');
  });

  let plainWeights: Buffer;

  test('a job over TLS ends with the bits of the same job without TLS; the token crosses in clear only without TLS', async () => {
    const plain = await coordinator('plain', {});
    // A worker that expects TLS from a plain coordinator says so, and does not fall back.
    const w = worker(plain.url.replace('http:', 'https:'), 'expects-tls', tlsEnv);
    assert.equal(await exited(w, 30_000), 2, stderrOf(w));
    assert.match(stderrOf(w), /error TLS_HANDSHAKE_FAILED: no TLS session with the coordinator at wss:\/\/127\.0\.0\.1:\d+ \(\S+: wrong version number\)/);

    const clear = await trainThroughProxy(plain, {});
    assert.ok(clear.includes(Buffer.from(TOKEN)), 'without TLS the proxy reads the token');
    const sealed = await trainThroughProxy({ child: secure, url: secureUrl }, tlsEnv);
    assert.ok(sealed.length > 100_000, `${sealed.length} bytes crossed the proxy`);
    assert.ok(!sealed.includes(Buffer.from(TOKEN)), 'with TLS the proxy never reads the token');
    plainWeights = readFileSync(join(dir, 'plain', 'model', 'weights.bin'));
    assert.ok(readFileSync(join(dir, 'secure', 'model', 'weights.bin')).equals(plainWeights), 'bit-identical weights with and without TLS');
  });

  test('ringtrain local --tls-cert --tls-key --tls-ca trains the same bits', async () => {
    const out = join(dir, 'local');
    await run(['local', '--job', job, '--workers', '2', '--out', out, '--tls-cert', certs.cert, '--tls-key', certs.key, '--tls-ca', certs.ca]);
    assert.ok(readFileSync(join(out, 'model', 'weights.bin')).equals(plainWeights));
  });

  test("a worker whose ring certificate nobody can verify is excluded after the coordinator's own TLS probe; the others train the same bits", async () => {
    // The other CA's own certificate as the worker's: its peers and the coordinator trust only the job's CA.
    const three = await writeJob(await tempDir('tls-three'), { epochs: 2, startWorkers: 3 });
    const child = ringtrain(['coordinator', '--job', three, '--out', join(dir, 'excluded'), '--host', '127.0.0.1', '--port', '0'], { RINGTRAIN_TOKEN: TOKEN, ...tlsEnv });
    const url = await coordinatorUrl(child, 'stdout', 60_000);
    const good = [worker(url, 'a', tlsEnv), worker(url, 'b', tlsEnv)];
    const bad = worker(url, 'untrusted', { ...tlsEnv, RINGTRAIN_TLS_CERT: certs.otherCa, RINGTRAIN_TLS_KEY: certs.otherKey });
    assert.equal(await exited(bad, 60_000), 6, stderrOf(bad)); // excluded: a new process elsewhere may do
    assert.match(stderrOf(bad), /PEER_UNREACHABLE/);
    assert.equal(await exited(child, 180_000), 0, stderrOf(child));
    assert.deepEqual(await Promise.all(good.map((w) => exited(w, 30_000))), [0, 0]);
    const log = JSON.parse(readFileSync(join(dir, 'excluded', 'cluster.json'), 'utf8')) as { events: { kind: string; message: string }[] };
    const excluded = log.events.find((e) => e.kind === 'excluded');
    assert.ok(excluded && /untrusted/.test(excluded.message), JSON.stringify(log.events));
    assert.ok(readFileSync(join(dir, 'excluded', 'model', 'weights.bin')).equals(plainWeights));
  });

  test('bad TLS files and options stop the command at once, naming the file', async () => {
    const missing = join(dir, 'missing.key');
    const cases: [string[], NodeJS.ProcessEnv, RegExp][] = [
      [['coordinator', '--tls-cert', certs.cert], { RINGTRAIN_TOKEN: TOKEN }, /error CLI_USAGE: --tls-cert and --tls-key \(RINGTRAIN_TLS_CERT, RINGTRAIN_TLS_KEY\) go together/],
      [['coordinator'], { RINGTRAIN_TOKEN: TOKEN, RINGTRAIN_TLS_CERT: certs.cert, RINGTRAIN_TLS_KEY: missing }, new RegExp(`error TLS_FILE_UNREADABLE: cannot read the TLS key file ${missing}: ENOENT`)],
      [['coordinator', '--tls-cert', certs.key, '--tls-key', certs.key], { RINGTRAIN_TOKEN: TOKEN }, /error TLS_FILE_INVALID: the TLS certificate file \S+server\.key holds no PEM certificate/],
      [['coordinator', '--tls-cert', certs.cert, '--tls-key', certs.cert], { RINGTRAIN_TOKEN: TOKEN }, /error TLS_FILE_INVALID: the TLS key file \S+server\.crt holds no usable PEM private key/],
      [['local', '--tls-cert', certs.cert, '--tls-key', certs.key, '--tls-ca', certs.key], {}, /error TLS_FILE_INVALID: the TLS CA file \S+server\.key holds no PEM certificate/],
      [['local', '--tls-ca', certs.ca], {}, /error CLI_USAGE: --tls-ca and --tls-peer-name take effect with --tls-cert and --tls-key/],
      [['coordinator', '--tls-peer-name', 'ringtrain-worker'], { RINGTRAIN_TOKEN: TOKEN }, /error CLI_USAGE: --tls-ca and --tls-peer-name take effect with --tls-cert and --tls-key/],
    ];
    for (const [args, env, message] of cases) {
      const child = ringtrain(args, env);
      assert.equal(await exited(child, 30_000), 2, stderrOf(child));
      assert.match(stderrOf(child), message);
    }
  });
});
