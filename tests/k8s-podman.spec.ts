/**
 * The manifests run: deploy/k8s/overlays/podman, rendered with `kubectl kustomize` and
 * played with `podman kube play` on a network of its own, trains its job to completion
 * with a coordinator and 3 workers, from the local image, and every pod completes.
 *
 * podman 4.3 plays neither Jobs nor Services, so each Job becomes the pods its
 * controller would start (`parallelism` copies of its pod template, named NAME-pod-0,
 * NAME-pod-1, ... as podman names a Deployment's pods; restartPolicy Never), the
 * Service is dropped (the podman overlay points the workers at the coordinator's pod
 * name), and the kubelet's $(VAR) expansion of environment values is done here (podman
 * passes them as written; it does resolve the downward API's fieldRefs). The test then reads the pods' exit statuses as the Job controller would: the
 * coordinator's Job completes on 0, the workers' once one has exited 0 and none runs.
 * Left untested here, for want of a cluster: the controller itself (the pod failure
 * policies, backoff, replacement pods, ttlSecondsAfterFinished, a parallelism patch),
 * the Service's DNS name, the probes, and the downward API's status.podIP (the pods
 * advertise their names instead). tests/k8s-manifests.spec.ts checks those fields.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, stringify } from 'yaml';
import { buildImage, podman, suffix } from './container-harness.js';
import { tempDir } from './cluster-harness.js';

const OVERLAY = fileURLToPath(new URL('../deploy/k8s/overlays/podman', import.meta.url));
const network = `ringtrain-kube-${suffix()}`;
let manifest = '';

type Obj = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string> }; spec?: Record<string, unknown> };
type EnvVar = { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } };
type Container = { name: string; env?: EnvVar[] };
type JobObj = Obj & { spec: { parallelism?: number; template: { metadata?: { labels?: Record<string, string> }; spec: { containers: Container[] } } } };

/**
 * The kubelet's expansion of $(VAR) in environment values, from the variables above in
 * the list (a fieldRef's value: the pod's name or one of its labels); podman leaves
 * $(VAR) as written. An unknown reference stays as written, as the kubelet leaves it.
 */
function expandEnv(env: EnvVar[], pod: { name: string; labels: Record<string, string> }): EnvVar[] {
  const seen = new Map<string, string>();
  return env.map((e) => {
    const path = e.valueFrom?.fieldRef?.fieldPath;
    if (path !== undefined) {
      const label = /^metadata\.labels\['(.+)'\]$/.exec(path);
      const value = path === 'metadata.name' ? pod.name : label ? pod.labels[label[1]!] : undefined;
      if (value !== undefined) seen.set(e.name, value);
      return e;
    }
    if (e.value === undefined) return e;
    const value = e.value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v: string) => seen.get(v) ?? m);
    seen.set(e.name, value);
    return { name: e.name, value };
  });
}

/** The pods a Job's controller would start, as podman names a controller's pods. */
function podsOf(job: JobObj): Obj[] {
  return Array.from({ length: job.spec.parallelism ?? 1 }, (_, i) => {
    const name = `${job.metadata.name}-pod-${i}`;
    const labels = { ...job.spec.template.metadata?.labels, 'job-name': job.metadata.name };
    const containers = job.spec.template.spec.containers.map((c) => ({ ...c, ...(c.env ? { env: expandEnv(c.env, { name, labels }) } : {}) }));
    return { apiVersion: 'v1', kind: 'Pod', metadata: { name, labels }, spec: { ...job.spec.template.spec, containers } };
  });
}

/** The overlay as podman can play it: Jobs as their pods, no Service. */
function playable(objects: Obj[]): { objects: Obj[]; pods: Map<string, string[]> } {
  const out: Obj[] = [];
  const pods = new Map<string, string[]>();
  for (const o of objects) {
    if (o.kind === 'Service') continue;
    if (o.kind !== 'Job') {
      out.push(o);
      continue;
    }
    const job = o as JobObj;
    const made = podsOf(job);
    // podman names a pod's container POD-CONTAINER.
    pods.set(job.metadata.name, made.map((p) => `${p.metadata.name}-${job.spec.template.spec.containers[0]!.name}`));
    out.push(...made);
  }
  return { objects: out, pods };
}

async function down(): Promise<void> {
  if (manifest) await podman('kube', 'down', manifest).catch(() => '');
  // kube down leaves the claim's volume (and one for the job ConfigMap) behind.
  await podman('volume', 'rm', '-f', 'ringtrain-data', 'ringtrain-job').catch(() => '');
}

let rendered: Obj[] = [];
let containers = new Map<string, string[]>();

before(async () => {
  await buildImage();
  manifest = join(await tempDir('kube'), 'manifest.yaml');
  rendered = parseAllDocuments(execFileSync('kubectl', ['kustomize', OVERLAY], { encoding: 'utf8' })).map((d) => d.toJS() as Obj);
  const play = playable(rendered);
  containers = play.pods;
  writeFileSync(manifest, play.objects.map((o) => stringify(o)).join('---\n'));
  await down(); // leftovers of an interrupted earlier run
  await podman('network', 'create', network);
});

after(async () => {
  await down();
  await podman('network', 'rm', '-f', network).catch(() => '');
});

interface State {
  status: string;
  code: number;
}

async function stateOf(container: string): Promise<State> {
  const [status, code] = (await podman('inspect', '--format', '{{.State.Status}} {{.State.ExitCode}}', container)).trim().split(' ');
  return { status: status!, code: Number(code) };
}

/** Waits until every container has exited; their exit codes, in order. */
async function exitCodes(names: string[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const states = await Promise.all(names.map(stateOf));
    if (states.every((s) => s.status === 'exited')) return states.map((s) => s.code);
    if (Date.now() > deadline) {
      const logs = await Promise.all(names.map((n) => podman('logs', '--tail', '15', n).catch((e: Error) => e.message)));
      assert.fail(`still running after ${timeoutMs} ms: ${JSON.stringify(states)}\n${logs.join('\n---\n')}`);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

test('podman kube play of the podman overlay: a coordinator and 3 workers train the job, and both Jobs complete', async () => {
  assert.deepEqual([...containers.keys()].sort(), ['ringtrain-coordinator', 'ringtrain-worker']);
  const coordinator = containers.get('ringtrain-coordinator')!;
  const workers = containers.get('ringtrain-worker')!;
  assert.equal(workers.length, 3, 'parallelism 3');
  await podman('kube', 'play', '--network', network, manifest);

  // The coordinator's pod ends when the model is written: its Job completes.
  const [coordinatorCode] = await exitCodes(coordinator, 240_000);
  assert.equal(coordinatorCode, 0, await podman('logs', '--tail', '20', coordinator[0]!));
  // Told the job is over, every worker exits 0: the workers' Job completes, and no pod is left holding a GPU.
  assert.deepEqual(await exitCodes(workers, 60_000), [0, 0, 0]);
  const running = (await podman('ps', '--format', '{{.Names}}')).split('\n').filter((n) => n.startsWith('ringtrain-'));
  assert.deepEqual(running, [], 'no container of the job still runs');

  const volume = (await podman('volume', 'inspect', '--format', '{{.Mountpoint}}', 'ringtrain-data')).trim();
  const metrics = JSON.parse(readFileSync(join(volume, 'podman-test', 'metrics.json'), 'utf8')) as { steps: number; history: unknown[] };
  assert.equal(metrics.steps, 8 * 50, 'every step of 8 epochs of 50');
  assert.equal(metrics.history.length, 8);
  const log = JSON.parse(readFileSync(join(volume, 'podman-test', 'cluster.json'), 'utf8')) as { generations: { world: number }[] };
  assert.equal(log.generations.at(-1)?.world, 3, 'the last generation had the 3 workers');
  readFileSync(join(volume, 'podman-test', 'model', 'model.json'));

  // The workers ran under the memory their job's plan asks on wasm (384Mi), enforced as a cgroup limit.
  for (const w of workers) assert.equal(Number((await podman('inspect', '--format', '{{.HostConfig.Memory}}', w)).trim()), 384 * 2 ** 20, w);
});
