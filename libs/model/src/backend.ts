/**
 * Backend selection. `auto` prefers the native TensorFlow bindings on a GPU
 * (tfjs-node-gpu), then WebGPU on a hardware adapter (Dawn, webgpu.ts), then tfjs-node
 * on the CPU, then WebAssembly, then plain JavaScript. The native packages are optional
 * dependencies: their install script downloads libtensorflow, which fails on machines
 * without that network, so they are imported only at run time and only if present.
 * `auto` tries WebGPU only on a machine with a GPU device, and passes over a software
 * adapter (lavapipe: slower than wasm); `webgpu` named outright takes any adapter.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { ModelError } from './errors.js';
import { adapterName, DETERMINISTIC_MATMUL, gpuDevicePresent, probeWebgpu } from './webgpu.js';

export type BackendName = 'auto' | 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';
export const BACKEND_NAMES: readonly BackendName[] = ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'];

export interface BackendInfo {
  /** The tfjs backend in use: 'tensorflow', 'webgpu', 'wasm' or 'cpu'. */
  readonly name: string;
  /** Which package provided it, for the log. */
  readonly provider: string;
  /** The WebGPU adapter, as one line ("nvidia: ..."), on webgpu. */
  readonly adapter?: string;
  /** What was tried and why it was skipped, for the log. */
  readonly skipped: readonly string[];
}

async function tryNative(pkg: string): Promise<boolean> {
  try {
    await import(pkg);
    return tf.engine().findBackendFactory('tensorflow') != null;
  } catch {
    return false;
  }
}

async function activate(name: string): Promise<boolean> {
  try {
    const ok = await tf.setBackend(name);
    if (ok) await tf.ready();
    return ok && tf.getBackend() === name;
  } catch {
    return false;
  }
}

const WEBGPU_PROVIDER = 'webgpu (Dawn) with @tensorflow/tfjs-backend-webgpu';

/** WebGPU when an adapter is found (and, for `auto`, a hardware one): the adapter's line, or why not. */
async function tryWebgpu(hardwareOnly: boolean): Promise<{ adapter: string } | { why: string }> {
  if (hardwareOnly && !gpuDevicePresent()) return { why: 'no GPU device (/dev/nvidia*, /dev/dri/renderD*)' };
  const probe = await probeWebgpu();
  if (!probe.ok) return { why: probe.why };
  const adapter = adapterName(probe.adapter);
  if (hardwareOnly && probe.adapter.fallback) return { why: `only a software adapter (${adapter}), slower than wasm` };
  try {
    // Registers the backend now that navigator.gpu exists (webgpu.ts).
    await import('@tensorflow/tfjs-backend-webgpu');
  } catch (err) {
    return { why: `@tensorflow/tfjs-backend-webgpu did not load (${(err as Error).message})` };
  }
  if (!(await activate('webgpu'))) return { why: `the backend failed to initialize on ${adapter}` };
  tf.env().set('WEBGPU_MATMUL_PROGRAM_TYPE', DETERMINISTIC_MATMUL);
  return { adapter };
}

export interface SelectOptions {
  /** false: `auto` never takes WebGPU (the coordinator, whose little tensor work reads synchronously). */
  readonly webgpu?: boolean;
}

export async function selectBackend(wanted: BackendName, options: SelectOptions = {}): Promise<BackendInfo> {
  const skipped: string[] = [];
  if (wanted === 'webgpu') {
    const w = await tryWebgpu(false);
    if ('adapter' in w) return { name: 'webgpu', provider: WEBGPU_PROVIDER, adapter: w.adapter, skipped };
    throw new ModelError('MODEL_BACKEND_UNAVAILABLE', `backend "webgpu": ${w.why}`);
  }
  if (wanted === 'auto' || wanted === 'tensorflow') {
    for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
      if ((await tryNative(pkg)) && (await activate('tensorflow'))) {
        return { name: 'tensorflow', provider: pkg, skipped };
      }
      skipped.push(`${pkg}: not installed or failed to load`);
      if (wanted === 'auto' && pkg === '@tensorflow/tfjs-node-gpu' && options.webgpu !== false) {
        const w = await tryWebgpu(true);
        if ('adapter' in w) return { name: 'webgpu', provider: WEBGPU_PROVIDER, adapter: w.adapter, skipped };
        skipped.push(`webgpu: ${w.why}`);
      }
    }
    if (wanted === 'tensorflow') {
      throw new ModelError(
        'MODEL_BACKEND_UNAVAILABLE',
        `backend "tensorflow" needs @tensorflow/tfjs-node-gpu or @tensorflow/tfjs-node (${skipped.join('; ')})`,
      );
    }
  }
  for (const name of wanted === 'auto' ? ['wasm', 'cpu'] : [wanted]) {
    if (await activate(name)) return { name, provider: `@tensorflow/tfjs-backend-${name}`, skipped };
    skipped.push(`${name}: failed to initialize`);
  }
  throw new ModelError('MODEL_BACKEND_UNAVAILABLE', `no usable backend for "${wanted}" (${skipped.join('; ')})`);
}
