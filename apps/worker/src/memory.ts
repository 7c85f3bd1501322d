/**
 * The worker's side of the memory plan (libs/model memory-plan.ts): what the plan cannot
 * know from the job (the process before the job, the ring's buffers), the limits it is
 * held to (the memory this process may use, the backend's heap), and the check that
 * refuses a job that cannot fit before anything is allocated (MEMORY_PLAN_EXCEEDED).
 *
 * The process limit is, in this order: the worker's --memory-limit (RINGTRAIN_MEMORY_LIMIT;
 * `none` checks no process limit), the cgroup's (v2 memory.max, v1
 * memory.limit_in_bytes: a container's or a pod's limit), or the machine's memory. A
 * cgroup limit above the machine's memory is no limit (v1 says "none" with
 * 9223372036854771712), so the smaller of the two is taken.
 */
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { DEFAULT_SEGMENT_BYTES, receivePoolBytes } from '@ringtrain/allreduce';
import type { MemoryItems, MemoryPlan } from '@ringtrain/model';
import { WorkerError } from './errors.js';

const MiB = 2 ** 20;

/**
 * The process before the job: Node, tsx, TensorFlow.js with its backends, ws, pino, zod.
 * Measured on Node 20.20 (x86-64): an idle `ringtrain worker` (no coordinator to reach)
 * has an RSS of 158 MiB; loading the worker's modules and starting the wasm or cpu
 * backend in a bare process takes it to 164-174 MiB. 192 MiB leaves room for the V8
 * heap's growth once messages flow.
 */
export const BASE_BYTES = 192 * MiB;

/**
 * The ring's own buffers, beside the gradient buffer it sums in place (counted by the
 * plan): libs/allreduce's defaults, which generation.ts does not change (ring.ts,
 * settingsOf): the pool of received frames kept for reuse with its stage for the SIMD add
 * (fast-receive.ts, frame-arena.ts), one scratch segment, and up to 64 MiB of frames of
 * the next operation queued before reading pauses. (What the ring sends from the
 * gradient buffer goes out of it without a copy.)
 */
export const RING_BYTES = receivePoolBytes(DEFAULT_SEGMENT_BYTES) + DEFAULT_SEGMENT_BYTES + 64 * MiB;

export interface ProcessLimit {
  /** Bytes this process may use, or null for no limit. */
  readonly bytes: number | null;
  /** Where it comes from, for the log and the error. */
  readonly source: 'option' | 'cgroup' | 'machine' | 'none';
}

/** A cgroup file's limit: bytes, or null for none ("max", or v1's page-rounded 2^63-1). */
export function parseCgroupLimit(text: string): number | null {
  const t = text.trim();
  if (!/^\d+$/.test(t)) return null;
  const n = Number(t);
  return n > 0 && n < 2 ** 62 ? n : null;
}

/** The memory cgroup's directory of this process: /proc/self/cgroup's v2 line ("0::/path") or v1 memory line. */
function cgroupFiles(read: (path: string) => string): string[] {
  const files: string[] = [];
  let self = '';
  try {
    self = read('/proc/self/cgroup');
  } catch {
    // not Linux, or no /proc: the mount roots below still apply inside a container
  }
  for (const line of self.split('\n')) {
    const [, controllers, path] = line.split(':');
    if (path === undefined || path === '/') continue;
    if (controllers === '') files.push(`/sys/fs/cgroup${path}/memory.max`);
    if (controllers?.split(',').includes('memory')) files.push(`/sys/fs/cgroup/memory${path}/memory.limit_in_bytes`);
  }
  // Inside a container the cgroup namespace puts the container's own cgroup at the root.
  files.push('/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes');
  return files;
}

/**
 * This process's memory limit: `option` (the worker's --memory-limit; null: none, by
 * the user's choice) when given, else the tightest cgroup limit, else the machine's memory.
 */
export function processMemoryLimit(option: number | null | undefined, read: (path: string) => string = (p) => readFileSync(p, 'utf8'), machine = totalmem()): ProcessLimit {
  if (option === null) return { bytes: null, source: 'none' };
  if (option !== undefined) return { bytes: option, source: 'option' };
  let cgroup: number | null = null;
  for (const file of cgroupFiles(read)) {
    let limit: number | null;
    try {
      limit = parseCgroupLimit(read(file));
    } catch {
      continue;
    }
    if (limit !== null && (cgroup === null || limit < cgroup)) cgroup = limit;
  }
  return cgroup !== null && cgroup < machine ? { bytes: cgroup, source: 'cgroup' } : { bytes: machine, source: 'machine' };
}

const mib = (bytes: number): number => Math.round((10 * bytes) / MiB) / 10;

/** The plan as the log shows it: each item, the total, the backend's part and the limits, in MiB. */
export function planFields(plan: MemoryPlan, limit: ProcessLimit): Record<string, unknown> {
  const items = Object.fromEntries(Object.entries(plan.items).map(([k, v]) => [k, mib(v)])) as Record<keyof MemoryItems, number>;
  return {
    parameters: plan.parameterCount,
    itemsMiB: items,
    totalMiB: mib(plan.total),
    backendHeapMiB: mib(plan.backendHeap),
    limitMiB: limit.bytes === null ? null : mib(limit.bytes),
    limitSource: limit.source,
    backendHeapLimitMiB: plan.backendHeapLimit === null ? null : mib(plan.backendHeapLimit),
  };
}

/** The largest items, for the error: what to make smaller. */
function largest(plan: MemoryPlan, keys: readonly (keyof MemoryItems)[]): string {
  return keys
    .map((k) => [k, plan.items[k]] as const)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 3)
    .map(([k, v]) => `${k} ${mib(v)} MiB`)
    .join(', ');
}

const HEAP_ITEMS = ['layerTensors', 'activations'] as const;

/**
 * Throws MEMORY_PLAN_EXCEEDED when the plan does not fit: the backend's part over its
 * heap limit (checked first: no memory limit lifts it), or the total over the process
 * limit. The message names the numbers, the limit, and what to change.
 */
export function checkMemoryPlan(plan: MemoryPlan, limit: ProcessLimit, backend: string): void {
  const params = `${plan.parameterCount.toLocaleString('en-US')} parameters`;
  if (plan.backendHeapLimit !== null && plan.backendHeap > plan.backendHeapLimit) {
    throw new WorkerError(
      'MEMORY_PLAN_EXCEEDED',
      `the ${backend} backend's heap would need ${mib(plan.backendHeap)} MiB (${largest(plan, HEAP_ITEMS)}) for ${params}, ` +
        `but it holds at most ${mib(plan.backendHeapLimit)} MiB (the wasm heap's hard limit): use backend tensorflow (training.backend or --backend), ` +
        `a smaller model, or a smaller batch per worker (a smaller training.batchSize, or a larger cluster.minWorkers)`,
    );
  }
  if (limit.bytes !== null && plan.total > limit.bytes) {
    const where = { option: '--memory-limit (RINGTRAIN_MEMORY_LIMIT)', cgroup: "this container's cgroup memory limit", machine: "this machine's memory", none: '' }[limit.source];
    throw new WorkerError(
      'MEMORY_PLAN_EXCEEDED',
      `this job would need ${mib(plan.total)} MiB on this worker (${largest(plan, Object.keys(plan.items) as (keyof MemoryItems)[])}, ...) for ${params}, ` +
        `but ${mib(limit.bytes)} MiB are available (${where}): give the worker more memory (the pod's memory limit), ` +
        `or make the job smaller: a smaller model, a smaller batch per worker (a smaller training.batchSize, or a larger cluster.minWorkers), ` +
        `an optimizer with fewer slots (adam keeps 2 a parameter, momentum 1), no early stopping (its best weights); --memory-limit none skips this check`,
    );
  }
}
