/**
 * deploy/k8s as Kubernetes would see it: every overlay renders with `kubectl kustomize`,
 * every rendered object validates against the Kubernetes API schema (kubernetes-models),
 * and the policies hold: recommended labels, probes on the coordinator, requests and
 * limits on every container, a non-root and read-only securityContext, a grace period,
 * GPUs requested by the gpu overlay's workers. The TLS component, in the `tls` overlay
 * (cpu) and added to gpu: the Secret mounted read-only (mode 0440) in both pods, every
 * channel switched to TLS, the probes to HTTPS.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { Deployment } from 'kubernetes-models/apps/v1';
import { ConfigMap, PersistentVolumeClaim, Secret, Service } from 'kubernetes-models/v1';

const K8S = fileURLToPath(new URL('../deploy/k8s/', import.meta.url));
/** `gpu+tls` is the gpu overlay with the TLS component added, as docs/kubernetes.md tells users to do. */
const OVERLAYS = ['cpu', 'gpu', 'podman', 'tls', 'gpu+tls'] as const;

type Obj = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string> }; [k: string]: unknown };
type Container = {
  name: string;
  image: string;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: { readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean; capabilities?: { drop?: string[] } };
  readinessProbe?: { httpGet?: { scheme?: string } };
  livenessProbe?: { httpGet?: { scheme?: string } };
  env?: { name: string; value?: string }[];
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
};
type PodSpec = {
  containers: Container[];
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; fsGroup?: number };
  terminationGracePeriodSeconds?: number;
  volumes?: { name: string; emptyDir?: unknown; secret?: { secretName: string; defaultMode?: number } }[];
};

/** The kustomization of `base+component`: an overlay with a component added, in a temporary directory. */
function composed(overlay: string): string {
  const [base, component] = overlay.split('+');
  const dir = mkdtempSync(join(tmpdir(), 'ringtrain-kustomize-'));
  const rel = (p: string): string => relative(dir, `${K8S}${p}`);
  writeFileSync(join(dir, 'kustomization.yaml'), `resources: [${rel(`overlays/${base}`)}]\ncomponents: [${rel(`components/${component}`)}]\n`);
  return dir;
}

function render(overlay: string): Obj[] {
  const dir = overlay.includes('+') ? composed(overlay) : `${K8S}overlays/${overlay}`;
  try {
    const text = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
    return parseAllDocuments(text).map((d) => d.toJS() as Obj);
  } finally {
    if (overlay.includes('+')) rmSync(dir, { recursive: true, force: true });
  }
}

const MODELS: Record<string, new (o: never) => { validate(): void }> = {
  Deployment: Deployment as never,
  Service: Service as never,
  ConfigMap: ConfigMap as never,
  Secret: Secret as never,
  PersistentVolumeClaim: PersistentVolumeClaim as never,
};

function podSpec(o: Obj): PodSpec {
  return (o as unknown as { spec: { template: { spec: PodSpec } } }).spec.template.spec;
}

for (const overlay of OVERLAYS) {
  test(`overlay ${overlay}: renders, and every object is valid Kubernetes`, () => {
    const objects = render(overlay);
    const kinds = objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
    for (const want of ['Deployment/ringtrain-coordinator', 'Deployment/ringtrain-worker', 'PersistentVolumeClaim/ringtrain-data']) {
      assert.ok(kinds.includes(want), `${want} missing from ${kinds.join(', ')}`);
    }
    assert.ok(kinds.some((k) => k.startsWith('ConfigMap/ringtrain-job')), 'the job spec ConfigMap');
    for (const o of objects) {
      const Model = MODELS[o.kind];
      assert.ok(Model, `no schema check for kind ${o.kind}`);
      assert.doesNotThrow(() => new Model(o as never).validate(), `${o.kind}/${o.metadata.name}`);
    }
  });

  test(`overlay ${overlay}: labels, resources, securityContext, probes and grace`, () => {
    const problems: string[] = [];
    for (const o of render(overlay)) {
      const where = `${o.kind}/${o.metadata.name}`;
      const labels = o.metadata.labels ?? {};
      for (const key of ['app.kubernetes.io/name', 'app.kubernetes.io/part-of', 'app.kubernetes.io/managed-by']) {
        if (!labels[key]) problems.push(`${where}: label ${key}`);
      }
      if (o.kind !== 'Deployment') continue;
      if (!labels['app.kubernetes.io/component']) problems.push(`${where}: label app.kubernetes.io/component`);
      const spec = podSpec(o);
      if (spec.securityContext?.runAsNonRoot !== true) problems.push(`${where}: runAsNonRoot`);
      if (!(typeof spec.terminationGracePeriodSeconds === 'number' && spec.terminationGracePeriodSeconds >= 30)) problems.push(`${where}: terminationGracePeriodSeconds >= 30`);
      if (!spec.volumes?.some((v) => v.name === 'tmp' && v.emptyDir !== undefined)) problems.push(`${where}: a writable /tmp (emptyDir) beside the read-only root`);
      for (const c of spec.containers) {
        const at = `${where} container ${c.name}`;
        for (const r of ['cpu', 'memory']) {
          if (!c.resources?.requests?.[r]) problems.push(`${at}: requests.${r}`);
          if (!c.resources?.limits?.[r]) problems.push(`${at}: limits.${r}`);
        }
        if (c.securityContext?.readOnlyRootFilesystem !== true) problems.push(`${at}: readOnlyRootFilesystem`);
        if (c.securityContext?.allowPrivilegeEscalation !== false) problems.push(`${at}: allowPrivilegeEscalation false`);
        if (!c.securityContext?.capabilities?.drop?.includes('ALL')) problems.push(`${at}: drop ALL capabilities`);
        if (!c.env?.some((e) => e.name === 'RINGTRAIN_AFTER_JOB' && e.value === 'wait')) problems.push(`${at}: RINGTRAIN_AFTER_JOB=wait (a Deployment restarts what exits)`);
        const isCoordinator = o.metadata.name === 'ringtrain-coordinator';
        // podman kube play needs systemd for probes: that overlay alone drops them.
        if (isCoordinator && overlay !== 'podman' && (!c.readinessProbe || !c.livenessProbe)) problems.push(`${at}: readiness and liveness probes`);
        if (!isCoordinator && overlay.startsWith('gpu') && c.resources?.limits?.['nvidia.com/gpu'] !== '1') problems.push(`${at}: one GPU`);
        if (overlay.startsWith('gpu') && !isCoordinator && !c.image.includes('ringtrain-gpu')) problems.push(`${at}: the GPU image`);
        if (overlay === 'podman' && !c.image.startsWith('localhost/')) problems.push(`${at}: a local image`);
      }
    }
    assert.deepEqual(problems, []);
  });
}

test('the workers find the coordinator through its Service, and advertise their pod IP', () => {
  const objects = render('cpu');
  const service = objects.find((o) => o.kind === 'Service' && o.metadata.name === 'ringtrain-coordinator');
  assert.ok(service, 'a Service for the coordinator');
  const worker = podSpec(objects.find((o) => o.metadata.name === 'ringtrain-worker')!).containers[0]!;
  const env = Object.fromEntries((worker.env ?? []).map((e) => [e.name, e]));
  assert.equal(env.RINGTRAIN_COORDINATOR?.value, 'http://ringtrain-coordinator:7070');
  assert.deepEqual((env.RINGTRAIN_ADVERTISE_HOST as unknown as { valueFrom: unknown }).valueFrom, { fieldRef: { fieldPath: 'status.podIP' } });
});

for (const overlay of ['tls', 'gpu+tls']) {
  test(`overlay ${overlay}: the TLS Secret in both pods, every channel over TLS, probes over HTTPS`, () => {
    const objects = render(overlay);
    const deployment = (name: string): PodSpec => podSpec(objects.find((o) => o.kind === 'Deployment' && o.metadata.name === name)!);
    const files = { RINGTRAIN_TLS_CERT: '/etc/ringtrain-tls/tls.crt', RINGTRAIN_TLS_KEY: '/etc/ringtrain-tls/tls.key', RINGTRAIN_TLS_CA: '/etc/ringtrain-tls/ca.crt' };
    for (const name of ['ringtrain-coordinator', 'ringtrain-worker']) {
      const spec = deployment(name);
      const c = spec.containers[0]!;
      const env = Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]));
      // The Secret, readable by the pod's group (fsGroup) and nobody else; mounted read-only.
      assert.deepEqual(spec.volumes?.find((v) => v.name === 'tls')?.secret, { secretName: 'ringtrain-tls', defaultMode: 0o440 }, name);
      assert.equal(spec.securityContext?.fsGroup, 10001, name);
      assert.deepEqual(c.volumeMounts?.find((m) => m.name === 'tls'), { name: 'tls', mountPath: '/etc/ringtrain-tls', readOnly: true }, name);
      for (const [key, path] of Object.entries(files)) assert.equal(env[key], path, `${name} ${key}`);
      // Peers dial pod IPs: their certificates are checked for this name (the coordinator's probes too).
      assert.equal(env.RINGTRAIN_TLS_PEER_NAME, 'ringtrain-worker', name);
    }
    const coordinator = deployment('ringtrain-coordinator').containers[0]!;
    assert.equal(coordinator.readinessProbe?.httpGet?.scheme, 'HTTPS');
    assert.equal(coordinator.livenessProbe?.httpGet?.scheme, 'HTTPS');
    const worker = deployment('ringtrain-worker').containers[0]!;
    assert.equal(worker.env?.find((e) => e.name === 'RINGTRAIN_COORDINATOR')?.value, 'https://ringtrain-coordinator:7070');
  });
}
