/**
 * The README's main command, `ringtrain local`, on the built-in Iris example: the same
 * run as `ringtrain train` (early stopping included), the coordinator's URL printed,
 * the run's token kept private; and the cluster commands' usage errors.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Cluster, exited, killAll, ringtrain, stderrOf, tempDir, TOKEN, writeJob } from './cluster-harness.js';

after(killAll);

interface Summary {
  steps: number;
  bestEpoch: number;
  stoppedEarly: boolean;
  history: unknown[];
  final: { test: { loss: number; accuracy: number } };
}

async function summaryOf(args: string[]): Promise<{ summary: Summary; stderr: string }> {
  const child = ringtrain([...args, '--json']);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const code = await exited(child);
  assert.equal(code, 0, stderrOf(child));
  return { summary: JSON.parse(out) as Summary, stderr: stderrOf(child) };
}

test('ringtrain local on the built-in example: the run ringtrain train makes, early stopping included', async () => {
  const dir = await tempDir('cli');
  const single = await summaryOf(['train', '--out', join(dir, 'train')]);
  const cluster = await summaryOf(['local', '--out', join(dir, 'local')]);
  const s = single.summary;
  const c = cluster.summary;
  assert.equal(s.stoppedEarly, true);
  assert.deepEqual([c.steps, c.bestEpoch, c.stoppedEarly, c.history.length], [s.steps, s.bestEpoch, s.stoppedEarly, s.history.length]);
  assert.equal(c.final.test.accuracy, s.final.test.accuracy);
  assert.ok(Math.abs(c.final.test.loss - s.final.test.loss) / s.final.test.loss < 1e-4, `${c.final.test.loss} vs ${s.final.test.loss}`);
  assert.match(cluster.stderr, /coordinator: http:\/\/127\.0\.0\.1:\d+ \(status: http:\/\/127\.0\.0\.1:\d+\/api\/status; control token in /);
  assert.equal(statSync(join(dir, 'local', 'token')).mode & 0o777, 0o600);
});

test('ringtrain local on a headerless CSV of integer labels: the coordinator infers the classes, says so, the workers train them', async () => {
  const dir = await tempDir('ints');
  const rows = Array.from({ length: 90 }, (_, i) => `${(i % 3) * 3 + ((i * 7) % 10) / 10},${((i * 3) % 10) / 10},${i % 3}`);
  await writeFile(join(dir, 'ints.csv'), `${rows.join('\n')}\n`);
  await writeFile(
    join(dir, 'job.yaml'),
    'name: ints\ndata: { source: csv:ints.csv, header: false, split: { validation: 0.2, test: 0.2 } }\nmodel: { hidden: [{ units: 8 }] }\n' +
      'training: { loss: cross-entropy, optimizer: { learningRate: 0.05 }, epochs: 15, batchSize: 16, backend: wasm }\n',
  );
  const { summary, stderr } = await summaryOf(['--log-level', 'info', 'local', '--job', join(dir, 'job.yaml'), '--workers', '2', '--out', join(dir, 'out')]);
  assert.ok(summary.final.test.accuracy >= 0.9, `test accuracy ${summary.final.test.accuracy}`);
  const said = stderr.split('\n').filter((l) => l.includes('holds integers')).map((l) => JSON.parse(l));
  assert.equal(said.length, 1, stderr);
  assert.equal(said[0].msg, 'label column "c2" holds integers and the loss is cross-entropy: classification with classes 0, 1, 2');
  assert.deepEqual(said[0].classes, ['0', '1', '2']);
});

test('the cluster commands refuse bad usage with CLI_USAGE and exit 2', async () => {
  const noToken = { RINGTRAIN_TOKEN: '', RINGTRAIN_TOKEN_FILE: '' };
  const cases: [string[], NodeJS.ProcessEnv, RegExp][] = [
    [['worker', '--coordinator', 'http://127.0.0.1:9'], noToken, /CLI_USAGE: no job token: set RINGTRAIN_TOKEN/],
    [['worker'], { RINGTRAIN_TOKEN: 'x'.repeat(32), RINGTRAIN_COORDINATOR: '' }, /CLI_USAGE: no coordinator/],
    [['worker', '--coordinator', 'ftp://x'], { RINGTRAIN_TOKEN: 'x'.repeat(32) }, /CLI_USAGE: --coordinator must be an http/],
    [['coordinator'], { RINGTRAIN_TOKEN: 'short' }, /CLI_USAGE: the job token is too short/],
    [['coordinator', '--token-file', '/nonexistent/token'], {}, /CLI_USAGE: cannot read the token file \/nonexistent\/token/],
    [['local', '--workers', '0'], {}, /CLI_USAGE: --workers must be an integer in 1\.\.64, got "0"/],
    [['local', '--max-restarts=-1'], {}, /CLI_USAGE: --max-restarts must be an integer in 0\.\.1000, got "-1"/],
    [['worker', '--coordinator', 'http://127.0.0.1:9', '--coordinator-timeout', '600'], { RINGTRAIN_TOKEN: 'x'.repeat(32) }, /CLI_USAGE: --coordinator-timeout must be a duration with a unit \(90s, 15m, 1h\) or none, got "600"/],
  ];
  // Workers that cannot start (tfjs-node is not installed on these machines) exit 2 with a
  // coded error, which a restart would repeat: `local` ends at once instead of waiting or restarting them.
  const dir = await tempDir('no-workers');
  cases.push([['local', '--backend', 'tensorflow', '--out', join(dir, 'out')], {}, /CLI_WORKERS_EXITED: worker local-[01] exited with code 2 before the job completed/]);
  for (const [args, env, message] of cases) {
    const child = ringtrain(args, env);
    assert.equal(await exited(child, 30_000), 2, args.join(' '));
    assert.match(stderrOf(child), message);
  }
});

test('RINGTRAIN_AFTER_JOB=wait keeps the coordinator serving and the workers idle after the job, until SIGTERM', async () => {
  const dir = await tempDir('after-job');
  const cluster = new Cluster(await writeJob(dir, { epochs: 2 }), join(dir, 'out'));
  await cluster.start({ RINGTRAIN_AFTER_JOB: 'wait' });
  const worker = cluster.addWorker('a', { RINGTRAIN_AFTER_JOB: 'wait' });
  await cluster.waitFor('the job to complete', (s) => s.state === 'completed');
  await new Promise((r) => setTimeout(r, 2000));
  // A Deployment would restart an exited container (which once exited with code 13 here).
  assert.equal(worker.exitCode, null, stderrOf(worker));
  assert.equal((await cluster.status()).state, 'completed');
  worker.kill('SIGTERM');
  cluster.coordinatorProcess.kill('SIGTERM');
  assert.deepEqual([await exited(worker, 15_000), await exited(cluster.coordinatorProcess, 15_000)], [0, 0]);
});

test('exit codes a Kubernetes Job acts on: POST /api/stop ends the job with 4 and its worker with 0; a worker with no coordinator for --coordinator-timeout exits 5', async () => {
  const dir = await tempDir('exit-codes');
  const cluster = new Cluster(await writeJob(dir, { epochs: 40 }), join(dir, 'out'));
  await cluster.start();
  const worker = cluster.addWorker('a', { RINGTRAIN_COORDINATOR_TIMEOUT: '3s' });
  await cluster.waitFor('training', (s) => s.state === 'running' && s.step >= 20);
  const res = await fetch(`http://127.0.0.1:${cluster.port}/api/stop`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(res.status, 200, await res.text());
  // Stopped for good: no model, so not "complete" (4); its worker was told the job is over (0).
  assert.deepEqual([await exited(cluster.coordinatorProcess, 30_000), await exited(worker, 30_000)], [4, 0], stderrOf(cluster.coordinatorProcess));

  // Nothing listens: gives up after 3 s, with the reason in its log.
  const started = Date.now();
  const lonely = ringtrain(['worker'], { RINGTRAIN_COORDINATOR: `http://127.0.0.1:${cluster.port}`, RINGTRAIN_TOKEN: TOKEN, RINGTRAIN_COORDINATOR_TIMEOUT: '3s', RINGTRAIN_ADVERTISE_HOST: '127.0.0.1', RINGTRAIN_BIND_HOST: '127.0.0.1' });
  assert.equal(await exited(lonely, 30_000), 5, stderrOf(lonely));
  const took = Date.now() - started;
  assert.ok(took >= 3000 && took < 20_000, `exited after ${took} ms`);
  assert.match(stderrOf(lonely), /no coordinator for 3 s \(--coordinator-timeout\); exiting with code 5/);
});
