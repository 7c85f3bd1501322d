/**
 * The WebGPU backend in Node: Google's Dawn from the `webgpu` npm package (prebuilt, no
 * download at install) under @tensorflow/tfjs-backend-webgpu. On a GPU node the driver's
 * Vulkan ICD gives Dawn an adapter; without a GPU, Mesa's software Vulkan (lavapipe)
 * gives a fallback adapter, for correctness only (a seventh of wasm's matMul GFLOP/s
 * here: `npm run gpu -w bench`).
 *
 * The backend registers itself only if `navigator.gpu` exists when it is imported, so
 * Dawn's globals go in first. It reads tensors back asynchronously (`await data()`):
 * its dataSync needs an OffscreenCanvas, which Node lacks (read-back.ts).
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

export interface Adapter {
  /** What the log says: vendor, description, and whether it is a software (fallback) adapter. */
  readonly vendor: string;
  readonly description: string;
  readonly fallback: boolean;
}

export type WebgpuProbe = { readonly ok: true; readonly adapter: Adapter } | { readonly ok: false; readonly why: string };

interface GpuAdapterLike {
  readonly info?: { vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean };
  readonly isFallbackAdapter?: boolean;
}
interface GpuLike {
  requestAdapter(options?: unknown): Promise<GpuAdapterLike | null>;
}

/** What tfjs-backend-webgpu asks for (its base.js): the adapter logged and judged here is the one it gets. */
export const ADAPTER_OPTIONS = { powerPreference: 'high-performance' } as const;

/**
 * tfjs-backend-webgpu's WEBGPU_MATMUL_PROGRAM_TYPE: MatMulPackedProgram for every matMul.
 * Left to choose, it splits a long inner dimension across workgroups that add into the
 * output with atomicAdd (MatMulSplitKProgram: a weight gradient once a worker's batch
 * reaches 2,000 rows), and float sums in a racing order are not the same bits twice:
 * a run, a resume and the exact reduction need them to be.
 */
export const DETERMINISTIC_MATMUL = 3;

let probed: Promise<WebgpuProbe> | null = null;

/**
 * Loads Dawn, installs `navigator.gpu` and asks for an adapter, once per process. Never
 * throws: what failed is in `why` (the package missing or its binary not loading, no
 * Vulkan driver, no adapter).
 */
export function probeWebgpu(): Promise<WebgpuProbe> {
  probed ??= probe();
  return probed;
}

async function probe(): Promise<WebgpuProbe> {
  let dawn: { create(flags: string[]): GpuLike; globals: Record<string, unknown> };
  try {
    dawn = (await import('webgpu')) as unknown as typeof dawn;
  } catch (err) {
    return { ok: false, why: `the webgpu package did not load (${(err as Error).message.split('\n')[0]})` };
  }
  const g = globalThis as unknown as { navigator?: { gpu?: GpuLike } };
  let gpu = g.navigator?.gpu;
  if (!gpu) {
    Object.assign(globalThis, dawn.globals);
    gpu = dawn.create([]);
    // Node 20 has no navigator; Node 21+ has one without gpu.
    if (g.navigator) Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true });
    else g.navigator = { gpu };
  }
  let adapter: GpuAdapterLike | null;
  try {
    adapter = await gpu.requestAdapter(ADAPTER_OPTIONS);
  } catch (err) {
    return { ok: false, why: `requestAdapter failed: ${(err as Error).message}` };
  }
  if (!adapter) return { ok: false, why: 'no WebGPU adapter: no Vulkan driver found (a GPU node needs the NVIDIA container toolkit with the graphics capability and libvulkan1; without a GPU, Mesa lavapipe)' };
  const info = adapter.info ?? {};
  return {
    ok: true,
    adapter: {
      vendor: info.vendor || 'unknown',
      description: info.description || [info.architecture, info.device].filter(Boolean).join(' ') || 'unknown',
      fallback: info.isFallbackAdapter ?? adapter.isFallbackAdapter ?? false,
    },
  };
}

/**
 * Whether this machine shows a GPU to a Vulkan driver: NVIDIA's device files
 * (/dev/nvidia0, ...: what the device plugin gives a pod) or a DRM render node (AMD,
 * Intel). `auto` asks Dawn for an adapter only then: without a GPU there is at best
 * lavapipe, which auto would pass over anyway, and Dawn prints warnings about its limits
 * straight to stderr, into the JSON log of every run. RINGTRAIN_DEV_DIR stands in for
 * /dev in tests.
 */
export function gpuDevicePresent(dev = process.env.RINGTRAIN_DEV_DIR ?? '/dev'): boolean {
  const has = (dir: string, pattern: RegExp): boolean => {
    try {
      return readdirSync(dir).some((name) => pattern.test(name));
    } catch {
      return false;
    }
  };
  return has(dev, /^nvidia\d+$/) || has(join(dev, 'dri'), /^renderD\d+$/);
}

/** The adapter as one line: "nvidia: NVIDIA H200 (Vulkan)", "mesa: llvmpipe ... (software)". */
export function adapterName(a: Adapter): string {
  return `${a.vendor}: ${a.description}${a.fallback ? ' (software)' : ''}`;
}
