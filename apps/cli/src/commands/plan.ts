/**
 * `ringtrain plan`: what one worker of a job will hold (the memory plan a worker works
 * out when the job arrives, libs/model memory-plan.ts), and the Kubernetes memory that
 * fits it: as text, as JSON, or as a kustomize patch for deploy/k8s's worker Job. The
 * worker refuses a job whose plan is over its cgroup limit (MEMORY_PLAN_EXCEEDED), so
 * the request and the limit come from here rather than from a guess. It loads the job's
 * data (and its init model) as the coordinator would, so it runs where they are.
 */
import { parseArgs } from 'node:util';
import type { BackendName } from '@ringtrain/model';
import { openJob } from '@ringtrain/train';
import { planOf } from '@ringtrain/worker';
import { UsageError } from '../errors.js';
import { specOnly } from '../job-args.js';

const MiB = 2 ** 20;
/** Room beside the plan: the V8 heap's growth, messages in flight, the allocator's slack. */
export const HEADROOM = 1.25;
/** Requests are whole steps of this, so that a small change of the plan keeps the manifest. */
const STEP_BYTES = 64 * MiB;
/**
 * What a native backend holds in host memory beyond the plan, whose process base was
 * measured on wasm and cpu (apps/worker memory.ts): libtensorflow (tfjs-node, in the CPU
 * image, which `auto` picks there), with a CUDA context on a GPU (tfjs-node-gpu), or
 * Dawn and its Vulkan driver (webgpu). Not measured here: an allowance on the limit,
 * not the request.
 */
export const NATIVE_ALLOWANCE = 1024 * MiB;

export interface ContainerMemory {
  /** The plan with headroom, in whole 64 MiB: what the scheduler reserves. */
  readonly request: string;
  /** The request, plus NATIVE_ALLOWANCE for a backend the plan's base does not cover. */
  readonly limit: string;
}

function quantity(bytes: number): string {
  return bytes % (1024 * MiB) === 0 ? `${bytes / (1024 * MiB)}Gi` : `${bytes / MiB}Mi`;
}

/** The memory a worker's container gets for a plan of `planBytes` on `backend`. */
export function containerMemory(planBytes: number, backend: BackendName): ContainerMemory {
  const request = Math.ceil((planBytes * HEADROOM) / STEP_BYTES) * STEP_BYTES;
  const measured = backend === 'wasm' || backend === 'cpu';
  return { request: quantity(request), limit: quantity(measured ? request : request + NATIVE_ALLOWANCE) };
}

export async function planCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { job: { type: 'string' }, backend: { type: 'string' }, format: { type: 'string' } },
    strict: true,
    allowPositionals: false,
  });
  const format = values.format ?? 'text';
  if (format !== 'text' && format !== 'json' && format !== 'kustomize') throw new UsageError(`--format must be text, json or kustomize, got "${format}"`);
  const spec = await specOnly(values.job, values.backend);
  const opened = await openJob(spec, null);
  const backend: BackendName = spec.training.backend;
  const t = opened.data.train;
  // `auto` may load any backend: its plan is the wasm one (the largest in the backend's heap), its limit has the allowance.
  const planned = backend === 'auto' ? 'wasm' : backend;
  const plan = planOf({ arch: { ...opened.arch, hidden: [...opened.arch.hidden] }, dataset: { cols: t.cols, rows: { train: t.rows, validation: opened.data.validation.rows, test: opened.data.test.rows } } }, spec, planned);
  const memory = containerMemory(plan.total, backend);
  const mib = (b: number): number => Math.round((10 * b) / MiB) / 10;
  if (format === 'json') {
    const items = Object.fromEntries(Object.entries(plan.items).map(([k, v]) => [k, mib(v)]));
    process.stdout.write(`${JSON.stringify({ job: spec.name, backend, parameters: plan.parameterCount, itemsMiB: items, totalMiB: mib(plan.total), totalBytes: plan.total, memory })}\n`);
    return;
  }
  if (format === 'kustomize') {
    process.stdout.write(
      `# ringtrain plan --format kustomize: job ${spec.name} on ${backend}, a worker's memory plan ${mib(plan.total)} MiB\n` +
        `# (request: +${Math.round((HEADROOM - 1) * 100)}%, in 64 Mi steps${memory.limit === memory.request ? '' : `; limit: +${NATIVE_ALLOWANCE / MiB} Mi for a native backend`}). Add it to a deploy/k8s overlay's patches.\n` +
        'apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: ringtrain-worker\nspec:\n  template:\n    spec:\n      containers:\n        - name: worker\n' +
        `          resources:\n            requests: { memory: ${memory.request} }\n            limits: { memory: ${memory.limit} }\n`,
    );
    return;
  }
  const width = Math.max(...Object.keys(plan.items).map((k) => k.length));
  const lines = Object.entries(plan.items)
    .filter(([, v]) => v > 0)
    .map(([k, v]) => `  ${k.padEnd(width)}  ${mib(v).toFixed(1).padStart(9)} MiB`);
  process.stdout.write(
    `memory plan of one worker: job ${spec.name}, ${plan.parameterCount.toLocaleString('en-US')} parameters, backend ${backend}\n${lines.join('\n')}\n` +
      `  ${'total'.padEnd(width)}  ${mib(plan.total).toFixed(1).padStart(9)} MiB\n` +
      `a worker container's memory: request ${memory.request}, limit ${memory.limit}  (ringtrain plan --format kustomize writes the patch)\n`,
  );
}
