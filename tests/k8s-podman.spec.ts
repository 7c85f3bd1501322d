/**
 * The manifests run: deploy/k8s/overlays/podman, rendered with `kubectl kustomize` and
 * played with `podman kube play` on a network of its own, trains its job to completion
 * with a coordinator and 3 workers, from the local image.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildImage, podman, suffix } from './container-harness.js';
import { tempDir } from './cluster-harness.js';

const OVERLAY = fileURLToPath(new URL('../deploy/k8s/overlays/podman', import.meta.url));
const COORDINATOR = 'ringtrain-coordinator-pod-0-coordinator';
const network = `ringtrain-kube-${suffix()}`;
let manifest = '';

async function down(): Promise<void> {
  if (manifest) await podman('kube', 'down', manifest).catch(() => '');
  // kube down leaves the claim's volume (and one for the job ConfigMap) behind.
  await podman('volume', 'rm', '-f', 'ringtrain-data', 'ringtrain-job').catch(() => '');
}

before(async () => {
  await buildImage();
  manifest = join(await tempDir('kube'), 'manifest.yaml');
  writeFileSync(manifest, execFileSync('kubectl', ['kustomize', OVERLAY], { encoding: 'utf8' }));
  await down(); // leftovers of an interrupted earlier run
  await podman('network', 'create', network);
});

after(async () => {
  await down();
  await podman('network', 'rm', '-f', network).catch(() => '');
});

test('podman kube play of the podman overlay: a coordinator and 3 workers train the job to completion', async () => {
  await podman('kube', 'play', '--network', network, manifest);
  const deadline = Date.now() + 180_000;
  type Status = { state: string; step: number; ring: string[]; generation: number };
  let status: Status | null = null;
  while (Date.now() < deadline) {
    try {
      // The coordinator stays up after the job (RINGTRAIN_AFTER_JOB=wait), serving its status.
      const now = JSON.parse(await podman('exec', COORDINATOR, 'wget', '-qO-', 'http://127.0.0.1:7070/api/status')) as Status;
      status = now;
      if (now.state === 'completed') break;
    } catch {
      // not serving yet
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  assert.equal(status?.state, 'completed', `last status: ${JSON.stringify(status)}`);
  const metrics = JSON.parse(await podman('exec', COORDINATOR, 'cat', '/data/run/metrics.json')) as { steps: number; history: unknown[] };
  assert.equal(metrics.steps, 8 * 50, 'every step of 8 epochs of 50');
  assert.equal(metrics.history.length, 8);
  const log = JSON.parse(await podman('exec', COORDINATOR, 'cat', '/data/run/cluster.json')) as { generations: { world: number }[] };
  assert.equal(log.generations.at(-1)?.world, 3, 'the last generation had the 3 workers');
  const workers = (await podman('ps', '--format', '{{.Names}}')).split('\n').filter((n) => /^ringtrain-worker-pod-\d-worker$/.test(n));
  if (workers.length !== 3) {
    const all = await podman('ps', '-a', '--format', '{{.Names}} {{.Status}}');
    const gone = ['0', '1', '2'].map((i) => `ringtrain-worker-pod-${i}-worker`).filter((n) => !workers.includes(n));
    const logs = await Promise.all(gone.map((n) => podman('logs', '--tail', '15', n).catch((e: Error) => e.message)));
    assert.fail(`worker containers still up (idle after the job): ${workers.join(', ')}\n${all}\n${logs.join('\n---\n')}`);
  }
});
