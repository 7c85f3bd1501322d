/**
 * Reading a tensor's values into a Float32Array of our own. `dataSync()` hands back a
 * fresh copy (on wasm, a slice of the heap), which for a 67-million-element gradient is
 * 268 MB of garbage per layer per step; the wasm backend can show its heap in place
 * (BackendWasm.typedArrayFromHeap, public in tfjs-backend-wasm 4.x), so there the values
 * are copied once, straight into `out`. Other backends keep dataSync.
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

/** Copies the values of float32 tensor `t` into `out` at `offset`. */
export function readInto(t: tf.Tensor, out: Float32Array, offset: number): void {
  out.set(heapView(t) ?? (t.dataSync() as Float32Array), offset);
}
