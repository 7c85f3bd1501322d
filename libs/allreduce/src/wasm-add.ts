/**
 * The float32 add of the all-reduce's reduce-scatter, in WebAssembly SIMD.
 *
 * Every element a rank receives in the reduce-scatter is added to its own value. As a
 * JavaScript loop over Float32Arrays that took 10 ms per 64 MiB on our 2-core VMs and,
 * under `perf` at W = 3, 64 MiB, a fifth of all the ranks' CPU time: each element is
 * widened to float64, added and rounded back. f32x4.add does four lanes per instruction,
 * 3.2 ms per 64 MiB measured side by side (both operands in the module's memory).
 *
 * The module is two loops of a dozen instructions, so it is written out here in the
 * binary format (WebAssembly core spec, "Binary Format") rather than built from a text
 * file by a tool the workspace would otherwise not need. It imports its memory ("e", "m")
 * and exports
 *
 *   add32(dst, src, end): for (; dst < end; dst += 32, src += 32) dst[0..32) += src[0..32)
 *   add64(dst, src, end): the same over float64 (f64x2.add)
 *
 * on byte addresses, two v128 per iteration (eight float32 or four float64), so
 * `end - dst` must be a multiple of 32; the caller adds the last few elements itself.
 *
 * Same bits as the JavaScript add: each lane is one IEEE 754 addition rounded to nearest
 * even, as `Math.fround(a + b)` is for float32 (float64 holds the exact sum of two
 * float32 values before its one rounding) and `a + b` for float64. Only a NaN's payload
 * may differ (WebAssembly leaves it to the engine); the all-gather hands every rank the
 * owner's bytes either way.
 */

const I32 = 0x7f;
/** memarg: alignment hint 2^2 (the payload after the ring's 40-byte header is 8-aligned), then offset. */
const memarg = (offset: number): number[] => [2, offset];
const LOCAL_GET = 0x20;
const LOCAL_SET = 0x21;
const V128_LOAD = [0xfd, 0x00];
const V128_STORE = [0xfd, 0x0b];
const F32X4_ADD = [0xfd, 0xe4, 0x01];
const F64X2_ADD = [0xfd, 0xf0, 0x01];
const I32_CONST = 0x41;
const I32_ADD = 0x6a;
const I32_GE_U = 0x4f;
const BLOCK = [0x02, 0x40];
const LOOP = [0x03, 0x40];
const BR = 0x0c;
const BR_IF = 0x0d;
const END = 0x0b;
const [DST, SRC, LIMIT] = [0, 1, 2];

/** dst[offset..offset+16) += src[offset..offset+16), lane by lane with `add`. */
const addLanes = (add: number[], offset: number): number[] => [
  LOCAL_GET, DST,
  LOCAL_GET, DST, ...V128_LOAD, ...memarg(offset),
  LOCAL_GET, SRC, ...V128_LOAD, ...memarg(offset),
  ...add,
  ...V128_STORE, ...memarg(offset),
];

const body = (add: number[]): number[] => [
  0, // no locals beyond the three parameters
  ...BLOCK,
  ...LOOP,
  LOCAL_GET, DST, LOCAL_GET, LIMIT, I32_GE_U, BR_IF, 1, // dst >= end: leave the block
  ...addLanes(add, 0),
  ...addLanes(add, 16),
  LOCAL_GET, DST, I32_CONST, 32, I32_ADD, LOCAL_SET, DST,
  LOCAL_GET, SRC, I32_CONST, 32, I32_ADD, LOCAL_SET, SRC,
  BR, 0, // next iteration
  END,
  END,
  END,
];
const BODY32 = body(F32X4_ADD);
const BODY64 = body(F64X2_ADD);

function leb128(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

const section = (id: number, bytes: number[]): number[] => [id, ...leb128(bytes.length), ...bytes];
const name = (s: string): number[] => [s.length, ...Buffer.from(s, 'ascii')];

/** The module's bytes. */
const WASM_ADD_BYTES = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
  ...section(1, [1, 0x60, 3, I32, I32, I32, 0]), // types: (i32, i32, i32) -> ()
  ...section(2, [1, ...name('e'), ...name('m'), 0x02, 0x00, 1]), // import memory e.m, at least 1 page
  ...section(3, [2, 0, 0]), // two functions, of type 0
  ...section(7, [2, ...name('add32'), 0x00, 0, ...name('add64'), 0x00, 1]), // exported as add32 and add64
  ...section(10, [2, ...leb128(BODY32.length), ...BODY32, ...leb128(BODY64.length), ...BODY64]),
]);

export const ADD_STEP_BYTES = 32;

/** The add over a memory: byte addresses, `end - dst` a multiple of ADD_STEP_BYTES. */
export type AddFn = (dst: number, src: number, end: number) => void;

/**
 * The part of the WebAssembly API used here, typed locally: the workspace compiles
 * without the DOM library, which is where TypeScript declares it.
 */
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Memory: new (descriptor: { initial: number; maximum: number }) => { readonly buffer: ArrayBuffer };
  Instance: new (module: object, imports: object) => { readonly exports: Record<string, unknown> };
}

const PAGE = 65536;
const wasm = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
let compiled: object | null | undefined;

/** The compiled module, or null where this engine has no WebAssembly SIMD. */
function addModule(): object | null {
  if (compiled === undefined) compiled = wasm?.validate(WASM_ADD_BYTES) ? new wasm.Module(WASM_ADD_BYTES) : null;
  return compiled;
}

/** Whether this engine runs the module (WebAssembly with SIMD). */
export function simdAvailable(): boolean {
  return addModule() !== null;
}

/**
 * A fixed memory of at least `bytes` bytes (it never grows: growing would detach its
 * ArrayBuffer) and the adds over it; null where there is no WebAssembly SIMD or the
 * memory is refused (the ring then adds in JavaScript, with the same results).
 */
export function addMemory(bytes: number): { buffer: ArrayBuffer; add32: AddFn; add64: AddFn } | null {
  const module = addModule();
  if (!wasm || !module) return null;
  const pages = Math.ceil(bytes / PAGE);
  try {
    const memory = new wasm.Memory({ initial: pages, maximum: pages });
    const instance = new wasm.Instance(module, { e: { m: memory } });
    return { buffer: memory.buffer, add32: instance.exports['add32'] as AddFn, add64: instance.exports['add64'] as AddFn };
  } catch {
    return null; // address space or memory refused: plain buffers are as correct
  }
}
