/**
 * Reading a tensor's values into a Float32Array of our own. `dataSync()` hands back a
 * fresh copy (on wasm, a slice of the heap), which for a 67-million-element gradient is
 * 268 MB of garbage per layer per step; the wasm backend can show its heap in place
 * (BackendWasm.typedArrayFromHeap, public in tfjs-backend-wasm 4.x), so there the values
 * are copied once, straight into `out`. Other backends keep dataSync, except webgpu,
 * whose reads are asynchronous (its dataSync needs an OffscreenCanvas, which Node
 * lacks): there the read is a promise, and the step and evaluation await it.
 */
import * as tf from '@tensorflow/tfjs-core';

interface HeapBackend {
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
}

function heapView(t: tf.Tensor): Float32Array | null {
  if (t.dtype !== 'float32' || tf.getBackend() !== 'wasm') return null;
  const backend = tf.backend() as unknown as Partial<HeapBackend>;
  if (typeof backend.typedArrayFromHeap !== 'function') return null;
  return backend.typedArrayFromHeap(t) as Float32Array;
}

/** Whether the backend in use reads tensors synchronously (every one but webgpu). */
export function syncReads(): boolean {
  return tf.getBackend() !== 'webgpu';
}

/** Copies the values of float32 tensor `t` into `out` at `offset`: at once (null), or, on webgpu, when the promise resolves. */
export function readInto(t: tf.Tensor, out: Float32Array, offset: number): Promise<void> | null {
  const view = heapView(t);
  if (view) {
    out.set(view, offset);
    return null;
  }
  if (!syncReads()) return t.data().then((v) => out.set(v as Float32Array, offset));
  out.set(t.dataSync() as Float32Array, offset);
  return null;
}
