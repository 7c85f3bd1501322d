import { test } from 'node:test';
import assert from 'node:assert/strict';
import { memoryPlan, type MemoryPlanInput, WASM_HEAP_LIMIT } from '@ringtrain/model';
import { WorkerError } from './errors.js';
import { checkMemoryPlan, parseCgroupLimit, processMemoryLimit, RING_BYTES } from './memory.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

/** A file system of `files`; any other path is missing. */
const files =
  (f: Record<string, string>) =>
  (path: string): string => {
    const text = f[path];
    if (text === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
    return text;
  };

test('a cgroup limit: bytes, or none for "max" and v1`s page-rounded 2^63-1', () => {
  assert.equal(parseCgroupLimit('2147483648\n'), 2 * GiB);
  assert.equal(parseCgroupLimit('max\n'), null);
  assert.equal(parseCgroupLimit('9223372036854771712\n'), null);
  assert.equal(parseCgroupLimit(''), null);
  assert.equal(parseCgroupLimit('0'), null);
});

test('the process limit: the option, else the tightest cgroup limit (v2 or v1, by /proc/self/cgroup or at the root), else the machine`s memory', () => {
  const machine = 16 * GiB;
  assert.deepEqual(processMemoryLimit(3 * GiB, files({}), machine), { bytes: 3 * GiB, source: 'option' });
  assert.deepEqual(processMemoryLimit(null, files({}), machine), { bytes: null, source: 'none' });
  assert.deepEqual(processMemoryLimit(undefined, files({}), machine), { bytes: machine, source: 'machine' });
  const v2 = files({ '/proc/self/cgroup': '0::/kubepods/pod1/c1\n', '/sys/fs/cgroup/kubepods/pod1/c1/memory.max': '4294967296\n' });
  assert.deepEqual(processMemoryLimit(undefined, v2, machine), { bytes: 4 * GiB, source: 'cgroup' });
  const v1 = files({ '/proc/self/cgroup': '5:cpu:/\n4:memory:/docker/abc\n', '/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes': '1073741824\n' });
  assert.deepEqual(processMemoryLimit(undefined, v1, machine), { bytes: GiB, source: 'cgroup' });
  const namespaced = files({ '/proc/self/cgroup': '0::/\n', '/sys/fs/cgroup/memory.max': '2147483648\n' });
  assert.deepEqual(processMemoryLimit(undefined, namespaced, machine), { bytes: 2 * GiB, source: 'cgroup' });
  // v1 without a limit, and a cgroup limit above the machine's memory: the machine's.
  const none = files({ '/sys/fs/cgroup/memory/memory.limit_in_bytes': '9223372036854771712\n' });
  assert.deepEqual(processMemoryLimit(undefined, none, machine), { bytes: machine, source: 'machine' });
  const above = files({ '/sys/fs/cgroup/memory.max': String(64 * GiB) });
  assert.deepEqual(processMemoryLimit(undefined, above, machine), { bytes: machine, source: 'machine' });
});

test('the ring`s own buffers: 32 pooled received frames and the SIMD stage, each a 1 MiB segment and its header on a 64-byte line; a scratch segment; 64 MiB queued', () => {
  assert.equal(RING_BYTES, 33 * (MiB + 64) + MiB + 64 * MiB);
});

const input: MemoryPlanInput = {
  arch: { inputs: 784, hidden: [{ units: 512, activation: 'relu', dropout: 0.2 }], outputs: 10, output: 'softmax' },
  optimizer: { name: 'adam' },
  earlyStopping: false,
  batchRows: 128,
  rows: { train: 54_000, validation: 6000, test: 10_000 },
  cols: 784,
  backend: 'wasm',
  baseBytes: 192 * MiB,
  ringBytes: RING_BYTES,
};

function refusal(f: () => void): WorkerError {
  try {
    f();
  } catch (err) {
    assert.ok(err instanceof WorkerError);
    assert.equal(err.code, 'MEMORY_PLAN_EXCEEDED');
    return err;
  }
  assert.fail('no MEMORY_PLAN_EXCEEDED');
}

test('a plan over the process limit is refused, naming what it needs, what is available, which limit, and what to change', () => {
  const plan = memoryPlan(input);
  checkMemoryPlan(plan, { bytes: plan.total, source: 'cgroup' }, 'wasm');
  checkMemoryPlan(plan, { bytes: null, source: 'none' }, 'wasm');
  const needed = (Math.round((10 * plan.total) / MiB) / 10).toString();
  const err = refusal(() => checkMemoryPlan(plan, { bytes: 256 * MiB, source: 'cgroup' }, 'wasm'));
  assert.match(err.message, new RegExp(`would need ${needed} MiB on this worker \\(rows 209\\.7 MiB, base 192 MiB, ring 98 MiB, \\.\\.\\.\\) `));
  assert.match(err.message, /for 407,050 parameters, but 256 MiB are available \(this container's cgroup memory limit\)/);
  assert.match(err.message, /the pod's memory limit/);
  assert.match(err.message, /smaller batch per worker/);
  assert.match(refusal(() => checkMemoryPlan(plan, { bytes: 100 * MiB, source: 'option' }, 'wasm')).message, /100 MiB are available \(--memory-limit \(RINGTRAIN_MEMORY_LIMIT\)\)/);
});

test('on wasm, a plan whose backend part is over the heap`s 4 GiB is refused whatever the process limit, pointing to the tensorflow backend', () => {
  // One layer so wide that an evaluation batch's activations do not fit (its weights go in blocks, which would).
  const huge = { ...input, arch: { ...input.arch, hidden: [{ units: 400_000, activation: 'relu', dropout: 0 }] } } as const;
  const plan = memoryPlan(huge);
  assert.ok(plan.backendHeap > WASM_HEAP_LIMIT);
  const err = refusal(() => checkMemoryPlan(plan, { bytes: null, source: 'none' }, 'wasm'));
  assert.ok(err.message.startsWith("the wasm backend's heap would need 4722.9 MiB (activations 4690.9 MiB, layerTensors 32 MiB) for 318,000,010 parameters"), err.message);
  assert.match(err.message, /but it holds at most 4095\.9 MiB \(the wasm heap's hard limit\): use backend tensorflow/);
  // The same model on tensorflow has no heap limit: only the process's.
  checkMemoryPlan(memoryPlan({ ...huge, backend: 'tensorflow' }), { bytes: null, source: 'none' }, 'tensorflow');
});
