/**
 * Received frames in WebAssembly memory, so that the reduce-scatter's add runs in SIMD.
 *
 * A WebAssembly function reads only its own memory. The arena is one fixed-size memory
 * cut into `slots` frame slots and one stage slot: fast-receive.ts reads a data frame's
 * payload straight into a free slot, and AllReduceOp adds the caller's values into it by
 * first copying them into the stage (a memcpy, 1.4 ms per 64 MiB here) and then running
 * wasm-add.ts over the two. Copy and SIMD add together took 4.6 ms per 64 MiB against
 * 9.8 ms for the JavaScript add, measured side by side.
 *
 * The memory never grows: growing would detach its ArrayBuffer and with it every frame
 * handed out. Pages are committed only when first touched, and slots are handed out
 * last-freed first, so a ring that holds few frames at once touches few slots. A frame
 * larger than a slot, or one more than the arena holds, is not the arena's (take
 * returns null) and is then added in JavaScript: only the speed differs.
 */
import { ADD_STEP_BYTES, addMemory, type AddFn } from './wasm-add.js';

/** Slots start on cache lines. */
const ALIGN = 64;
/** Largest memory an arena asks for: a wasm32 memory holds at most 4 GiB, and large reservations fail first. */
const MAX_ARENA_BYTES = 2 ** 31;

const arenas = new WeakMap<ArrayBufferLike, FrameArena>();

/** The arena whose memory `buffer` is, if any. */
export function arenaOf(buffer: ArrayBufferLike): FrameArena | undefined {
  return arenas.get(buffer);
}

export class FrameArena {
  /** Bytes a slot holds: a frame of up to this length fits. */
  readonly slotBytes: number;
  private readonly memory: Buffer;
  private readonly add32: AddFn;
  private readonly add64: AddFn;
  private readonly stageAt: number;
  /** Free slot indices; the last one freed is handed out first. */
  private readonly free: number[] = [];

  private constructor(buffer: ArrayBuffer, add32: AddFn, add64: AddFn, slotBytes: number, slots: number) {
    this.memory = Buffer.from(buffer);
    this.add32 = add32;
    this.add64 = add64;
    this.slotBytes = slotBytes;
    this.stageAt = slots * slotBytes;
    for (let i = slots - 1; i >= 0; i--) this.free.push(i);
    arenas.set(buffer, this);
  }

  /**
   * An arena of `slots` slots for frames of up to `frameBytes`, or null where there is no
   * WebAssembly SIMD or the memory cannot be had (the caller then uses plain buffers).
   */
  static create(frameBytes: number, slots: number): FrameArena | null {
    if (frameBytes <= 0 || slots <= 0) return null;
    const slotBytes = Math.ceil(frameBytes / ALIGN) * ALIGN;
    const bytes = FrameArena.bytesFor(frameBytes, slots);
    if (bytes > MAX_ARENA_BYTES) return null;
    const memory = addMemory(bytes);
    return memory && new FrameArena(memory.buffer, memory.add32, memory.add64, slotBytes, slots);
  }

  /** The memory of an arena of `slots` slots for frames of up to `frameBytes`: the slots and the stage. */
  static bytesFor(frameBytes: number, slots: number): number {
    return (slots + 1) * Math.ceil(frameBytes / ALIGN) * ALIGN;
  }

  /** A slot holding `n` bytes (a view of exactly n), or null when none is free or n does not fit. */
  take(n: number): Buffer | null {
    if (n > this.slotBytes) return null;
    const slot = this.free.pop();
    if (slot === undefined) return null;
    const at = slot * this.slotBytes;
    return this.memory.subarray(at, at + n);
  }

  /** Hands back a view `take` returned; it must not be used afterwards. */
  give(frame: Buffer): void {
    this.free.push(Math.floor(frame.byteOffset / this.slotBytes));
  }

  /**
   * memory[at ..] += d elementwise, as float32 or float64 as d is, where `at` is a byte
   * offset into the arena's memory (a frame's payload, aligned to the element); with
   * `keep`, d then holds the sums too. The same bits as one JavaScript add per element
   * (wasm-add.ts).
   */
  add(at: number, d: Float32Array | Float64Array, keep: boolean): void {
    const n = d.length;
    const size = d.BYTES_PER_ELEMENT;
    if (n * size > this.slotBytes) throw new RangeError(`${n * size} bytes do not fit the arena's stage of ${this.slotBytes} bytes`);
    const view = (offset: number): Float32Array | Float64Array => (size === 8 ? new Float64Array(this.memory.buffer, offset, n) : new Float32Array(this.memory.buffer, offset, n));
    const stage = view(this.stageAt);
    stage.set(d);
    const simd = n * size - ((n * size) % ADD_STEP_BYTES);
    (size === 8 ? this.add64 : this.add32)(at, this.stageAt, at + simd);
    const sums = view(at);
    for (let i = simd / size; i < n; i++) sums[i] = sums[i]! + stage[i]!;
    if (keep) d.set(sums);
  }
}
