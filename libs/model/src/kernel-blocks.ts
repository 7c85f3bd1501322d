/**
 * A large kernel goes to the backend a block at a time, so that the backend's memory
 * holds one block of weights, not a whole layer: on wasm, XNNPACK packs a copy of every
 * matMul's right operand (mlp.ts), and for an 8192 x 8192 layer the kernel and that copy
 * were 512 MB of a heap that never shrinks.
 *
 * Every block gives the same bits as the whole kernel, because each output element is
 * still one dot product computed the same way: the forward pass splits the kernel's
 * columns (each block's outputs are whole dot products over all the inputs), the
 * backward pass its rows (each row of the gradient, and of dH transposed, is its own
 * dot product over the batch). Checked element for element in step.spec.ts; on wasm the
 * blocked forward was also 3-4x faster here for a 3000 x 4100 kernel (packing a block
 * that fits the cache).
 */
import * as tf from '@tensorflow/tfjs-core';

/** The most weights of one block: 4M floats, 16 MB. */
export const KERNEL_BLOCK_FLOATS = 1 << 22;

/** [start, end) ranges of `n` items in blocks of `per` (at least 1). */
export function blocks(n: number, per: number): [number, number][] {
  const size = Math.max(1, Math.floor(per));
  const out: [number, number][] = [];
  for (let a = 0; a < n; a += size) out.push([a, Math.min(n, a + size)]);
  return out;
}

/**
 * The columns [j0, j1) of the row-major `rows` x `cols` kernel at `kernel`, as a tensor.
 * They are not contiguous, so they are copied into `scratch` first; the cpu backend keeps
 * the array it is given, so the caller disposes the tensor before it reuses `scratch`.
 */
export function kernelColumns(kernel: Float32Array, rows: number, cols: number, j0: number, j1: number, scratch: Float32Array): tf.Tensor2D {
  const w = j1 - j0;
  const block = scratch.subarray(0, rows * w);
  for (let i = 0; i < rows; i++) block.set(kernel.subarray(i * cols + j0, i * cols + j1), i * w);
  return tf.tensor2d(block, [rows, w]);
}
