/**
 * Backend selection. `auto` prefers the native TensorFlow bindings (tfjs-node-gpu on
 * GPU pods, then tfjs-node), then WebAssembly, then plain JavaScript. The native
 * packages are optional dependencies: their install script downloads libtensorflow,
 * which fails on machines without that network, so they are imported only at run time
 * and only if present.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { ModelError } from './errors.js';

export type BackendName = 'auto' | 'tensorflow' | 'wasm' | 'cpu';
export const BACKEND_NAMES: readonly BackendName[] = ['auto', 'tensorflow', 'wasm', 'cpu'];

export interface BackendInfo {
  /** The tfjs backend in use: 'tensorflow', 'wasm' or 'cpu'. */
  readonly name: string;
  /** Which package provided it, for the log. */
  readonly provider: string;
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

export async function selectBackend(wanted: BackendName): Promise<BackendInfo> {
  const skipped: string[] = [];
  if (wanted === 'auto' || wanted === 'tensorflow') {
    for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
      if ((await tryNative(pkg)) && (await activate('tensorflow'))) {
        return { name: 'tensorflow', provider: pkg, skipped };
      }
      skipped.push(`${pkg}: not installed or failed to load`);
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
