/**
 * The WebGPU backend (`training.backend: webgpu`, Dawn from the `webgpu` npm package) as
 * a user runs it, on Mesa's software Vulkan driver (lavapipe, which tests/system-deps.sh
 * installs from bookworm-backports): the same job trained on webgpu and on wasm, step by
 * step; the error when no adapter exists; `auto` on a machine without a GPU device (the
 * software adapter's case is libs/model's webgpu.spec.ts); and a cluster of one wasm and
 * one webgpu worker.
 *
 * Tolerance: the two backends run the same float32 arithmetic in another order (GPU
 * kernels tile and sum differently from XNNPACK), and training carries that along. On
 * this job (2 layers of 256, dropout, input noise, Adam), over 200 steps, measured here:
 * a step's loss at most 7.0e-7 apart (relative), the final weights 5.5e-7 (relative L2);
 * the mixed cluster 4.5e-7 and 3.0e-7. 1e-4 leaves room for another CPU's LLVM under
 * lavapipe, while a step lost, repeated or computed wrong moves the weights by 1e-2.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { assertCloseTraining, Cluster, exited, killAll, ringtrain, stderrOf, tempDir, writeJob } from './cluster-harness.js';

const TOLERANCE = 1e-4;
const EPOCHS = 4;
let dir = '';
let job = '';
let wasm = '';
let webgpu = '';
let webgpuLog = '';

after(killAll);

/** `ringtrain train` with `--backend backend` into `out`; its stderr (info level, for the backend line). */
async function train(backend: string, out: string, env: NodeJS.ProcessEnv = {}): Promise<{ code: number; log: string }> {
  const child = ringtrain(['--log-level', 'info', 'train', '--job', job, '--out', out, '--backend', backend], env);
  const code = await exited(child, 300_000);
  return { code, log: stderrOf(child) };
}

/** The `backend selected` line of a log. */
function selected(log: string): { backend: string; adapter?: string; skipped: string[] } {
  const line = log.split('\n').find((l) => l.includes('"msg":"backend selected"'));
  assert.ok(line, `no 'backend selected' line in:\n${log.slice(-2000)}`);
  return JSON.parse(line) as { backend: string; adapter?: string; skipped: string[] };
}

before(async () => {
  dir = await tempDir('webgpu');
  job = await writeJob(dir, { epochs: EPOCHS });
  wasm = join(dir, 'wasm');
  webgpu = join(dir, 'webgpu');
  const [a, b] = await Promise.all([train('wasm', wasm), train('webgpu', webgpu)]);
  assert.equal(a.code, 0, a.log);
  assert.equal(b.code, 0, b.log);
  webgpuLog = b.log;
});

test('ringtrain train --backend webgpu: the adapter is logged; every step`s loss and the final weights within 1e-4 of wasm; the same model files', () => {
  const chosen = selected(webgpuLog);
  assert.equal(chosen.backend, 'webgpu');
  assert.match(chosen.adapter ?? '', /llvmpipe.*\(software\)$/, 'lavapipe, named as the software adapter it is');
  assertCloseTraining(wasm, webgpu, TOLERANCE, 'webgpu against wasm');
  const model = (out: string): Record<string, unknown> => JSON.parse(readFileSync(join(out, 'model', 'model.json'), 'utf8')) as Record<string, unknown>;
  // The same LayersModel: topology, weight manifest (names, shapes, dtypes), metadata.
  assert.deepEqual(model(webgpu), model(wasm));
  assert.equal(statSync(join(webgpu, 'model', 'weights.bin')).size, statSync(join(wasm, 'model', 'weights.bin')).size);
  const metrics = JSON.parse(readFileSync(join(webgpu, 'metrics.json'), 'utf8')) as { backend: string; steps: number };
  assert.deepEqual([metrics.backend, metrics.steps], ['webgpu', EPOCHS * 50]);
});

test('no WebGPU adapter: MODEL_BACKEND_UNAVAILABLE naming what is missing, exit 2; auto on a machine without a GPU takes wasm, its log all JSON', async () => {
  // No Vulkan driver: the loader finds no ICD at this path.
  const none = await train('webgpu', join(dir, 'none'), { VK_ICD_FILENAMES: join(dir, 'no-such-icd.json'), VK_DRIVER_FILES: join(dir, 'no-such-icd.json') });
  assert.equal(none.code, 2, none.log);
  assert.match(none.log, /ringtrain: error MODEL_BACKEND_UNAVAILABLE: backend "webgpu": no WebGPU adapter: no Vulkan driver found/);
  // A machine without a GPU device, whatever this one has (RINGTRAIN_DEV_DIR stands in for /dev).
  const auto = await train('auto', join(dir, 'auto'), { RINGTRAIN_DEV_DIR: join(dir, 'no-dev') });
  assert.equal(auto.code, 0, auto.log);
  const chosen = selected(auto.log);
  assert.equal(chosen.backend, 'wasm');
  // No GPU here: Dawn is not even asked (on lavapipe it prints warnings to stderr, into the JSON log).
  assert.ok(chosen.skipped.includes('webgpu: no GPU device (/dev/nvidia*, /dev/dri/renderD*)'), `skipped: ${JSON.stringify(chosen.skipped)}`);
  const lines = auto.log.split('\n').filter((l) => l.trim() !== '');
  assert.deepEqual(lines.filter((l) => !l.startsWith('{')), [], 'every line of the log is JSON');
});

test('a cluster of one wasm worker and one webgpu worker trains the job: each says its backend, the run within 1e-4 of train', async () => {
  const out = join(dir, 'cluster');
  const cluster = new Cluster(job, out);
  await cluster.start();
  const a = cluster.addWorker('a', { RINGTRAIN_BACKEND: 'wasm' });
  const b = cluster.addWorker('b', { RINGTRAIN_BACKEND: 'webgpu' });
  // Each worker's heartbeats say its backend; the status lists them.
  const backends = (s: unknown): Record<string, string> => Object.fromEntries(((s as { workers?: { id: string; backend: string }[] }).workers ?? []).map((w) => [w.id, w.backend]));
  const both = await cluster.waitFor('both workers training, each on its backend', (s) => backends(s).a === 'wasm' && backends(s).b === 'webgpu', 120_000);
  assert.deepEqual(backends(both), { a: 'wasm', b: 'webgpu' });
  await cluster.completed(300_000);
  assert.deepEqual(await Promise.all([exited(a, 30_000), exited(b, 30_000)]), [0, 0]);
  const log = JSON.parse(readFileSync(join(out, 'cluster.json'), 'utf8')) as { generations: { world: number }[] };
  assert.equal(log.generations.at(-1)?.world, 2, 'both trained to the end');
  // What the run trained on is the workers' backends, not the coordinator's own.
  assert.equal((JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')) as { backend: string }).backend, 'wasm+webgpu');
  // The exact reduction sums what each computed exactly; the webgpu worker's share is computed in another order.
  assertCloseTraining(wasm, out, TOLERANCE, 'wasm and webgpu workers against wasm train');
});
