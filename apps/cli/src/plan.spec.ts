import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { containerMemory } from './commands/plan.js';
import { parseDuration } from './commands/worker.js';
import { UsageError } from './errors.js';

const CLI = fileURLToPath(new URL('../bin/ringtrain.mjs', import.meta.url));
const MiB = 2 ** 20;

function ringtrain(...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('a worker container`s memory: the plan plus 25%, rounded up to 64 Mi; the limit 1 Gi more for a backend the plan`s base does not cover', () => {
  assert.deepEqual(containerMemory(290 * MiB, 'wasm'), { request: '384Mi', limit: '384Mi' });
  assert.deepEqual(containerMemory(307.2 * MiB, 'cpu'), { request: '384Mi', limit: '384Mi' });
  assert.deepEqual(containerMemory(307.3 * MiB, 'wasm'), { request: '448Mi', limit: '448Mi' });
  assert.deepEqual(containerMemory(3200 * MiB, 'wasm'), { request: '4032Mi', limit: '4032Mi' });
  assert.deepEqual(containerMemory(1600 * MiB, 'wasm'), { request: '2Gi', limit: '2Gi' });
  for (const native of ['auto', 'tensorflow'] as const) assert.deepEqual(containerMemory(1600 * MiB, native), { request: '2Gi', limit: '3Gi' }, native);
});

test('ringtrain plan: the Iris example`s plan as text and JSON, and a kustomize patch of the worker Job with the same memory', () => {
  const json = ringtrain('plan', '--format', 'json');
  assert.equal(json.code, 0, json.err);
  const p = JSON.parse(json.out) as { job: string; backend: string; parameters: number; itemsMiB: Record<string, number>; totalBytes: number; memory: { request: string; limit: string } };
  assert.deepEqual([p.job, p.backend, p.parameters], ['iris', 'auto', 4 * 32 + 32 + 32 * 32 + 32 + 32 * 3 + 3]);
  assert.equal(p.itemsMiB.base, 192);
  assert.equal(p.itemsMiB.ring, 98);
  assert.deepEqual(p.memory, containerMemory(p.totalBytes, 'auto'));
  assert.deepEqual(p.memory, { request: '384Mi', limit: '1408Mi' });
  const text = ringtrain('plan');
  assert.match(text.out, /^memory plan of one worker: job iris, 1,315 parameters, backend auto$/m);
  assert.match(text.out, /^a worker container's memory: request 384Mi, limit 1408Mi /m);
  const patch = parse(ringtrain('plan', '--format', 'kustomize').out) as {
    apiVersion: string;
    kind: string;
    metadata: { name: string };
    spec: { template: { spec: { containers: { name: string; resources: { requests: { memory: string }; limits: { memory: string } } }[] } } };
  };
  assert.deepEqual([patch.apiVersion, patch.kind, patch.metadata.name], ['batch/v1', 'Job', 'ringtrain-worker']);
  assert.deepEqual(patch.spec.template.spec.containers, [{ name: 'worker', resources: { requests: { memory: p.memory.request }, limits: { memory: p.memory.limit } } }]);
});

test('ringtrain plan: bad options and specs get coded errors and exit 2', () => {
  const format = ringtrain('plan', '--format', 'yaml');
  assert.equal(format.code, 2);
  assert.match(format.err, /CLI_USAGE: --format must be text, json or kustomize, got "yaml"/);
  const missing = ringtrain('plan', '--job', '/nonexistent/job.yaml');
  assert.equal(missing.code, 2);
  assert.match(missing.err, /error [A-Z_]+: .*\/nonexistent\/job\.yaml/);
});

test('--coordinator-timeout: a number with a unit, or none; a bare number is refused', () => {
  assert.equal(parseDuration('--t', undefined), null);
  assert.equal(parseDuration('--t', 'none'), null);
  assert.equal(parseDuration('--t', '500ms'), 500);
  assert.equal(parseDuration('--t', '90s'), 90_000);
  assert.equal(parseDuration('--t', '15m'), 900_000);
  assert.equal(parseDuration('--t', '1.5h'), 5_400_000);
  for (const bad of ['', '600', '0s', '-1m', '15 m', 'm', '1d', 'NONE']) {
    assert.throws(() => parseDuration('--t', bad), (e: unknown) => e instanceof UsageError && /--t must be a duration with a unit/.test((e as Error).message), bad);
  }
});
