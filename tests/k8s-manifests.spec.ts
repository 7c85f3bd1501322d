/**
 * deploy/k8s as Kubernetes would see it: every overlay renders with `kubectl kustomize`,
 * every rendered object validates against the Kubernetes API schema (kubernetes-models,
 * Job fields included), and the policies hold, a test each: the coordinator and the
 * workers are Jobs that complete, whose pod failure policies act on the exit statuses
 * as docs/errors.md says (EXIT of @ringtrain/protocol, checked code by code against the
 * Job controller's rules); the API server's own checks of those policies; recommended
 * labels and the job's `ringtrain.io/job`; ttlSecondsAfterFinished; worker memory from
 * the job's memory plan (`ringtrain plan`), GPUs on GPU workers; the security context,
 * probes and grace; the worker's coordinator URL, expanded as the kubelet expands it.
 * Two jobs side by side (deploy/k8s/examples/two-jobs) share nothing. The TLS component:
 * the Secret mounted read-only (mode 0440) in both pods, every channel over TLS.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { Job } from 'kubernetes-models/batch/v1';
import { ConfigMap, PersistentVolumeClaim, Secret, Service } from 'kubernetes-models/v1';
import { EXIT } from '@ringtrain/protocol';

const K8S = fileURLToPath(new URL('../deploy/k8s/', import.meta.url));
const CLI = fileURLToPath(new URL('../apps/cli/bin/ringtrain.mjs', import.meta.url));
/** `gpu+tls` is the gpu overlay with the TLS component added, as docs/kubernetes.md tells users to do. */
const OVERLAYS = ['cpu', 'gpu', 'gpu-webgpu', 'podman', 'tls', 'gpu+tls'] as const;

type Labels = Record<string, string>;
type Obj = { apiVersion: string; kind: string; metadata: { name: string; labels?: Labels }; [k: string]: unknown };
type EnvVar = { name: string; value?: string; valueFrom?: unknown };
type Container = {
  name: string;
  image: string;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: { readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean; capabilities?: { drop?: string[] } };
  readinessProbe?: { httpGet?: { scheme?: string } };
  livenessProbe?: { httpGet?: { scheme?: string } };
  env?: EnvVar[];
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
};
type PodSpec = {
  containers: Container[];
  restartPolicy?: string;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; fsGroup?: number };
  terminationGracePeriodSeconds?: number;
  volumes?: { name: string; emptyDir?: unknown; secret?: { secretName: string; defaultMode?: number } }[];
};
type Rule = {
  action: 'FailJob' | 'FailIndex' | 'Ignore' | 'Count';
  onExitCodes?: { containerName?: string; operator: 'In' | 'NotIn'; values: number[] };
  onPodConditions?: { type: string; status?: string }[];
};
type JobSpec = {
  completions?: number;
  parallelism?: number;
  backoffLimit?: number;
  ttlSecondsAfterFinished?: number;
  selector?: unknown;
  podFailurePolicy?: { rules: Rule[] };
  template: { metadata?: { labels?: Labels }; spec: PodSpec };
};
type JobObj = Obj & { spec: JobSpec };

/** A kustomization of `base+component` (an overlay with a component added) in a temporary directory. */
function composed(overlay: string): string {
  const [base, component] = overlay.split('+');
  const dir = mkdtempSync(join(tmpdir(), 'ringtrain-kustomize-'));
  const rel = (p: string): string => relative(dir, `${K8S}${p}`);
  writeFileSync(join(dir, 'kustomization.yaml'), `resources: [${rel(`overlays/${base}`)}]\ncomponents: [${rel(`components/${component}`)}]\n`);
  return dir;
}

function renderDir(dir: string): Obj[] {
  return parseAllDocuments(execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8' })).map((d) => d.toJS() as Obj);
}

function render(overlay: string): Obj[] {
  if (!overlay.includes('+')) return renderDir(`${K8S}overlays/${overlay}`);
  const dir = composed(overlay);
  try {
    return renderDir(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const MODELS: Record<string, new (o: never) => { validate(): void }> = {
  Job: Job as never,
  Service: Service as never,
  ConfigMap: ConfigMap as never,
  Secret: Secret as never,
  PersistentVolumeClaim: PersistentVolumeClaim as never,
};

const jobs = (objects: Obj[]): JobObj[] => objects.filter((o): o is JobObj => o.kind === 'Job');
const jobNamed = (objects: Obj[], suffix: string): JobObj => {
  const found = jobs(objects).filter((o) => o.metadata.name.endsWith(suffix));
  assert.equal(found.length, 1, `one Job named *${suffix}`);
  return found[0]!;
};
const coordinatorJob = (objects: Obj[]): JobObj => jobNamed(objects, 'ringtrain-coordinator');
const workerJob = (objects: Obj[]): JobObj => jobNamed(objects, 'ringtrain-worker');
const envOf = (c: Container): Map<string, EnvVar> => new Map((c.env ?? []).map((e) => [e.name, e]));

/** The job spec the overlay carries (its ConfigMap's job.yaml). */
function jobSpecText(objects: Obj[]): string {
  const cm = objects.find((o) => o.kind === 'ConfigMap' && /ringtrain-job/.test(o.metadata.name)) as { data: Record<string, string> } | undefined;
  assert.ok(cm?.data['job.yaml'], 'the job spec ConfigMap');
  return cm.data['job.yaml'];
}

/**
 * What the Job controller does with a pod whose container `container` ended with `code`
 * (podFailurePolicy: the first rule that matches; none: the failure counts toward
 * backoffLimit). 0 is a success, which no rule sees.
 */
function controllerAction(job: JobSpec, container: string, code: number): 'Succeeded' | Rule['action'] {
  if (code === 0) return 'Succeeded';
  for (const rule of job.podFailurePolicy?.rules ?? []) {
    const on = rule.onExitCodes;
    if (!on || (on.containerName !== undefined && on.containerName !== container)) continue;
    if (on.operator === 'In' ? on.values.includes(code) : !on.values.includes(code)) return rule.action;
  }
  return 'Count';
}

/** $(VAR) as the kubelet expands it: from the variables above it in the list; anything else stays as written. */
function expanded(env: EnvVar[], name: string, fieldValues: Record<string, string> = {}): string {
  const seen = new Map<string, string>();
  for (const e of env) {
    const value = e.value !== undefined ? e.value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v: string) => seen.get(v) ?? m) : (fieldValues[e.name] ?? '');
    seen.set(e.name, value);
    if (e.name === name) return value;
  }
  assert.fail(`no ${name}`);
}

/** `ringtrain plan --format json` of a job spec's text: the memory one worker needs. */
function plan(specText: string, backend: string | undefined): { totalBytes: number; memory: { request: string; limit: string } } {
  const dir = mkdtempSync(join(tmpdir(), 'ringtrain-plan-'));
  try {
    writeFileSync(join(dir, 'job.yaml'), specText);
    const args = [CLI, 'plan', '--job', join(dir, 'job.yaml'), '--format', 'json', ...(backend ? ['--backend', backend] : [])];
    return JSON.parse(execFileSync(process.execPath, args, { encoding: 'utf8' })) as { totalBytes: number; memory: { request: string; limit: string } };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function bytes(q: string | undefined): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(q ?? '');
  assert.ok(m, `a memory quantity: ${q}`);
  const unit: Record<string, number> = { '': 1, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return Number(m[1]) * unit[m[2] ?? '']!;
}

for (const overlay of OVERLAYS) {
  test(`overlay ${overlay}: renders, and every object is valid Kubernetes`, () => {
    const objects = render(overlay);
    const kinds = objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
    for (const want of ['Job/ringtrain-coordinator', 'Job/ringtrain-worker', 'Service/ringtrain-coordinator', 'PersistentVolumeClaim/ringtrain-data']) {
      assert.ok(kinds.includes(want), `${want} missing from ${kinds.join(', ')}`);
    }
    assert.ok(!kinds.some((k) => k.startsWith('Deployment/')), 'no Deployments: a Deployment restarts what completes');
    for (const o of objects) {
      const Model = MODELS[o.kind];
      assert.ok(Model, `no schema check for kind ${o.kind}`);
      assert.doesNotThrow(() => new Model(o as never).validate(), `${o.kind}/${o.metadata.name}`);
    }
  });

  test(`overlay ${overlay}: the coordinator is a Job of one pod that completes with the model, and is run again after a stop or a crash`, () => {
    const job = coordinatorJob(render(overlay)).spec;
    assert.equal(job.completions, 1);
    assert.equal(job.parallelism, 1);
    assert.ok((job.backoffLimit ?? 6) >= 3, 'crashes are retried, each resuming from the checkpoint');
    const actions = Object.fromEntries(Object.entries(EXIT).map(([name, code]) => [name, controllerAction(job, 'coordinator', code)]));
    assert.deepEqual(
      { done: actions.done, bug: actions.bug, usage: actions.usage, interrupted: actions.interrupted, stopped: actions.stopped },
      { done: 'Succeeded', bug: 'Count', usage: 'FailJob', interrupted: 'Ignore', stopped: 'FailJob' },
    );
    const env = envOf(job.template.spec.containers[0]!);
    assert.equal(env.get('RINGTRAIN_AFTER_JOB')?.value ?? 'exit', 'exit', 'the coordinator exits after the job, or its pod never completes');
    const volumes = job.template.spec.volumes as unknown as { name: string; persistentVolumeClaim?: { claimName: string } }[];
    assert.equal(volumes.find((v) => v.name === 'data')?.persistentVolumeClaim?.claimName, 'ringtrain-data', 'checkpoints on the volume, where the next pod resumes');
    // Outputs in a directory named after the job (its label, by the downward API): a fine-tuning job writes beside it.
    const labels = job.template.metadata?.labels ?? {};
    assert.deepEqual(env.get('RINGTRAIN_JOB_NAME')?.valueFrom, { fieldRef: { fieldPath: "metadata.labels['ringtrain.io/job']" } });
    assert.equal(expanded(job.template.spec.containers[0]!.env!, 'RINGTRAIN_OUT', { RINGTRAIN_JOB_NAME: labels['ringtrain.io/job']! }), `/data/${labels['ringtrain.io/job']}`);
  });

  test(`overlay ${overlay}: the workers are a Job of parallelism pods that completes when they exit 0 at the end`, () => {
    const job = workerJob(render(overlay)).spec;
    assert.equal(job.completions, undefined, 'completions unset: done once a worker succeeds and the rest have ended');
    assert.ok(Number.isInteger(job.parallelism) && job.parallelism! >= 1, 'parallelism is the worker count');
    const actions = Object.fromEntries(Object.entries(EXIT).map(([name, code]) => [name, controllerAction(job, 'worker', code)]));
    assert.deepEqual(
      { done: actions.done, bug: actions.bug, usage: actions.usage, interrupted: actions.interrupted, noCoordinator: actions.noCoordinator, excluded: actions.excluded },
      // A usage error is never retried; a worker that left on SIGTERM (a scale-down, a drain) is no failure.
      { done: 'Succeeded', bug: 'Count', usage: 'FailJob', interrupted: 'Ignore', noCoordinator: 'Count', excluded: 'Count' },
    );
    const env = envOf(job.template.spec.containers[0]!);
    assert.equal(env.get('RINGTRAIN_AFTER_JOB')?.value ?? 'exit', 'exit');
    assert.match(env.get('RINGTRAIN_COORDINATOR_TIMEOUT')?.value ?? '', /^\d+(s|m|h)$/, 'a worker started after its coordinator finished gives up');
  });

  test(`overlay ${overlay}: pod failure policies pass the API server's checks`, () => {
    for (const o of jobs(render(overlay))) {
      const spec = o.spec;
      const where = o.metadata.name;
      assert.equal(spec.template.spec.restartPolicy, 'Never', `${where}: podFailurePolicy requires restartPolicy Never`);
      assert.equal(spec.selector, undefined, `${where}: the Job controller makes its own selector`);
      const names = spec.template.spec.containers.map((c) => c.name);
      for (const rule of spec.podFailurePolicy?.rules ?? []) {
        assert.ok(['FailJob', 'Ignore', 'Count'].includes(rule.action), `${where}: ${rule.action} (FailIndex needs an Indexed Job)`);
        assert.ok((rule.onExitCodes === undefined) !== (rule.onPodConditions === undefined), `${where}: exactly one of onExitCodes, onPodConditions`);
        const on = rule.onExitCodes;
        if (on) {
          assert.ok(on.containerName === undefined || names.includes(on.containerName), `${where}: container ${on.containerName}`);
          assert.ok(on.values.length >= 1 && on.values.length <= 255, `${where}: 1-255 values`);
          assert.deepEqual(on.values, [...new Set(on.values)].sort((a, b) => a - b), `${where}: values unique and ascending`);
          assert.ok(!(on.operator === 'In' && on.values.includes(0)), `${where}: 0 cannot be In`);
        }
        for (const c of rule.onPodConditions ?? []) assert.ok(c.type.length > 0, `${where}: a condition type`);
      }
      const disruption = (spec.podFailurePolicy?.rules ?? []).find((r) => r.onPodConditions?.some((c) => c.type === 'DisruptionTarget'));
      assert.equal(disruption?.action, 'Ignore', `${where}: an evicted or preempted pod is replaced, not counted`);
    }
  });

  test(`overlay ${overlay}: finished Jobs are cleaned up (ttlSecondsAfterFinished)`, () => {
    for (const o of jobs(render(overlay))) {
      const ttl = o.spec.ttlSecondsAfterFinished;
      assert.ok(Number.isInteger(ttl) && ttl! >= 3600, `${o.metadata.name}: ttlSecondsAfterFinished ${ttl}, long enough to read its status and logs`);
    }
  });

  test(`overlay ${overlay}: recommended labels and ringtrain.io/job, the job's own name`, () => {
    const objects = render(overlay);
    const name = (parse(jobSpecText(objects)) as { name: string }).name;
    const problems: string[] = [];
    const check = (where: string, labels: Labels, component: boolean): void => {
      const want: Labels = { 'app.kubernetes.io/name': 'ringtrain', 'app.kubernetes.io/part-of': 'ringtrain', 'app.kubernetes.io/managed-by': 'kustomize', 'app.kubernetes.io/instance': name, 'ringtrain.io/job': name };
      for (const [k, v] of Object.entries(want)) if (labels[k] !== v) problems.push(`${where}: ${k}=${labels[k]}, want ${v}`);
      if (component && !labels['app.kubernetes.io/component']) problems.push(`${where}: app.kubernetes.io/component`);
    };
    for (const o of objects) {
      check(`${o.kind}/${o.metadata.name}`, o.metadata.labels ?? {}, o.kind !== 'ConfigMap' && o.kind !== 'Secret');
      if (o.kind === 'Job') check(`${o.metadata.name} pods`, (o as JobObj).spec.template.metadata?.labels ?? {}, true);
    }
    assert.deepEqual(problems, []);
    const service = objects.find((o) => o.kind === 'Service')! as Obj & { spec: { selector: Labels } };
    assert.deepEqual(service.spec.selector, { 'app.kubernetes.io/component': 'coordinator', 'app.kubernetes.io/instance': name, 'ringtrain.io/job': name }, "the Service selects this job's coordinator alone");
  });

  test(`overlay ${overlay}: requests and limits everywhere; worker memory from the job's memory plan; GPUs on GPU workers`, () => {
    const objects = render(overlay);
    const problems: string[] = [];
    for (const o of jobs(objects)) {
      for (const c of o.spec.template.spec.containers) {
        const at = `${o.metadata.name} container ${c.name}`;
        for (const r of ['cpu', 'memory']) {
          if (!c.resources?.requests?.[r]) problems.push(`${at}: requests.${r}`);
          if (!c.resources?.limits?.[r]) problems.push(`${at}: limits.${r}`);
        }
        if (bytes(c.resources?.limits?.memory) < bytes(c.resources?.requests?.memory)) problems.push(`${at}: memory limit under its request`);
      }
    }
    assert.deepEqual(problems, []);
    const worker = workerJob(objects).spec.template.spec.containers[0]!;
    const backend = envOf(worker).get('RINGTRAIN_BACKEND')?.value;
    const planned = plan(jobSpecText(objects), backend);
    // The worker refuses a job whose plan is over its cgroup limit (MEMORY_PLAN_EXCEEDED); the plan's headroom is the V8 heap's growth.
    for (const [kind, want] of [['requests', planned.memory.request], ['limits', planned.memory.limit]] as const) {
      const got = bytes(worker.resources?.[kind]?.memory);
      assert.ok(got >= bytes(want), `worker ${kind}.memory ${worker.resources?.[kind]?.memory}: the job's plan (${(planned.totalBytes / 2 ** 20).toFixed(1)} MiB) asks ${want}`);
    }
    if (overlay.startsWith('gpu')) {
      assert.equal(worker.resources?.requests?.['nvidia.com/gpu'], '1', 'one GPU requested');
      assert.equal(worker.resources?.limits?.['nvidia.com/gpu'], '1', 'one GPU');
      if (overlay === 'gpu-webgpu') {
        // Dawn reaches the GPU through Vulkan: the NVIDIA container toolkit mounts the driver's ICD for the graphics capability.
        assert.match(worker.image, /ringtrain-webgpu/, 'the WebGPU image');
        assert.equal(backend, 'webgpu');
        assert.match(envOf(worker).get('NVIDIA_DRIVER_CAPABILITIES')?.value ?? '', /(^|,)graphics(,|$)/);
      } else {
        assert.match(worker.image, /ringtrain-gpu/, 'the CUDA image');
        assert.equal(backend, 'tensorflow');
      }
    } else {
      assert.equal(worker.resources?.limits?.['nvidia.com/gpu'], undefined);
    }
    for (const o of jobs(objects)) {
      if (overlay === 'podman') assert.match(o.spec.template.spec.containers[0]!.image, /^localhost\//, 'a local image');
    }
  });

  test(`overlay ${overlay}: non-root, read-only, no privileges; probes on the coordinator; a grace period`, () => {
    const problems: string[] = [];
    for (const o of jobs(render(overlay))) {
      const where = o.metadata.name;
      const spec = o.spec.template.spec;
      if (spec.securityContext?.runAsNonRoot !== true) problems.push(`${where}: runAsNonRoot`);
      if (!(typeof spec.terminationGracePeriodSeconds === 'number' && spec.terminationGracePeriodSeconds >= 30)) problems.push(`${where}: terminationGracePeriodSeconds >= 30`);
      if (!spec.volumes?.some((v) => v.name === 'tmp' && v.emptyDir !== undefined)) problems.push(`${where}: a writable /tmp (emptyDir) beside the read-only root`);
      for (const c of spec.containers) {
        const at = `${where} container ${c.name}`;
        if (c.securityContext?.readOnlyRootFilesystem !== true) problems.push(`${at}: readOnlyRootFilesystem`);
        if (c.securityContext?.allowPrivilegeEscalation !== false) problems.push(`${at}: allowPrivilegeEscalation false`);
        if (!c.securityContext?.capabilities?.drop?.includes('ALL')) problems.push(`${at}: drop ALL capabilities`);
        // podman kube play needs systemd for probes: that overlay alone drops them.
        if (where === 'ringtrain-coordinator' && overlay !== 'podman' && (!c.readinessProbe || !c.livenessProbe)) problems.push(`${at}: readiness and liveness probes`);
      }
    }
    assert.deepEqual(problems, []);
  });

  test(`overlay ${overlay}: every $(VAR) in an environment names a variable above it, and the workers' URL is the coordinator's Service`, () => {
    const objects = render(overlay);
    for (const o of jobs(objects)) {
      for (const c of o.spec.template.spec.containers) {
        const env = c.env ?? [];
        env.forEach((e, i) => {
          for (const [, v] of (e.value ?? '').matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) {
            assert.ok(env.slice(0, i).some((x) => x.name === v), `${o.metadata.name} ${e.name}: $(${v}) is not defined above it (a patch moved it?)`);
          }
        });
      }
    }
    if (overlay === 'podman') return; // podman has no Services: its workers dial the coordinator's pod by name (k8s-podman.spec.ts)
    const url = expanded(workerJob(objects).spec.template.spec.containers[0]!.env!, 'RINGTRAIN_COORDINATOR');
    const scheme = overlay.includes('tls') ? 'https' : 'http';
    assert.equal(url, `${scheme}://ringtrain-coordinator:7070`);
    const env = envOf(workerJob(objects).spec.template.spec.containers[0]!);
    assert.deepEqual(env.get('RINGTRAIN_ADVERTISE_HOST')?.valueFrom, { fieldRef: { fieldPath: 'status.podIP' } }, 'peers dial the pod IP');
    assert.deepEqual(env.get('RINGTRAIN_WORKER_ID')?.valueFrom, { fieldRef: { fieldPath: 'metadata.name' } });
  });
}

test('two jobs side by side (examples/two-jobs): no object shared, each Service selects its own coordinator, each worker dials its own', () => {
  const objects = renderDir(`${K8S}examples/two-jobs`);
  const ids = objects.map((o) => `${o.kind}/${o.metadata.name}`);
  assert.deepEqual(ids.filter((id, i) => ids.indexOf(id) !== i), [], 'no two objects of one kind and name');
  for (const o of objects) new MODELS[o.kind]!(o as never).validate();
  const names = ['iris', 'blobs'];
  for (const job of names) {
    const mine = objects.filter((o) => o.metadata.labels?.['ringtrain.io/job'] === job);
    assert.deepEqual(mine.map((o) => o.kind).sort(), ['ConfigMap', 'Job', 'Job', 'PersistentVolumeClaim', 'Service'], job);
    assert.ok(mine.every((o) => o.metadata.name.startsWith(`${job}-ringtrain-`)), `${job}: every name prefixed`);
    assert.equal((parse(jobSpecText(mine)) as { name: string }).name, job, `${job}: the label is the job spec's name`);
    const service = mine.find((o) => o.kind === 'Service') as Obj & { spec: { selector: Labels } };
    // The Service's selector matches this job's coordinator pods, and neither the other job's nor any worker's.
    for (const o of jobs(objects)) {
      const labels = o.spec.template.metadata?.labels ?? {};
      const selected = Object.entries(service.spec.selector).every(([k, v]) => labels[k] === v);
      assert.equal(selected, o.metadata.name === `${job}-ringtrain-coordinator`, `${service.metadata.name} selects ${o.metadata.name}?`);
    }
    const worker = mine.find((o) => o.kind === 'Job' && o.metadata.name.endsWith('worker')) as JobObj;
    assert.equal(expanded(worker.spec.template.spec.containers[0]!.env!, 'RINGTRAIN_COORDINATOR'), `http://${job}-ringtrain-coordinator:7070`);
    const coordinator = mine.find((o) => o.kind === 'Job' && o.metadata.name.endsWith('coordinator')) as JobObj;
    const volumes = coordinator.spec.template.spec.volumes as unknown as { name: string; persistentVolumeClaim?: { claimName: string }; configMap?: { name: string } }[];
    assert.equal(volumes.find((v) => v.name === 'data')?.persistentVolumeClaim?.claimName, `${job}-ringtrain-data`);
    assert.equal(volumes.find((v) => v.name === 'job')?.configMap?.name, mine.find((o) => o.kind === 'ConfigMap')!.metadata.name);
  }
  assert.equal(workerJob(objects.filter((o) => o.metadata.labels?.['ringtrain.io/job'] === 'blobs')).spec.parallelism, 3);
});

for (const overlay of ['tls', 'gpu+tls']) {
  test(`overlay ${overlay}: the TLS Secret in both pods, every channel over TLS, probes over HTTPS`, () => {
    const objects = render(overlay);
    const pod = (name: string): PodSpec => jobNamed(objects, name).spec.template.spec;
    const files = { RINGTRAIN_TLS_CERT: '/etc/ringtrain-tls/tls.crt', RINGTRAIN_TLS_KEY: '/etc/ringtrain-tls/tls.key', RINGTRAIN_TLS_CA: '/etc/ringtrain-tls/ca.crt' };
    for (const name of ['ringtrain-coordinator', 'ringtrain-worker']) {
      const spec = pod(name);
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
    const coordinator = pod('ringtrain-coordinator').containers[0]!;
    assert.equal(coordinator.readinessProbe?.httpGet?.scheme, 'HTTPS');
    assert.equal(coordinator.livenessProbe?.httpGet?.scheme, 'HTTPS');
    assert.equal(expanded(pod('ringtrain-worker').containers[0]!.env!, 'RINGTRAIN_COORDINATOR'), 'https://ringtrain-coordinator:7070');
  });
}
