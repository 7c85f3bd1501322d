/**
 * The WebGPU backend in Node: Google's Dawn from the `webgpu` npm package (prebuilt, no
 * download at install) under @tensorflow/tfjs-backend-webgpu. On a GPU node the driver's
 * Vulkan ICD gives Dawn an adapter; without a GPU, Mesa's software Vulkan (lavapipe)
 * gives a fallback adapter, for correctness only (../docs: about a sixth of wasm's speed).
 *
 * The backend registers itself only if `navigator.gpu` exists when it is imported, so
 * Dawn's globals go in first. It reads tensors back asynchronously (`await data()`):
 * its dataSync needs an OffscreenCanvas, which Node lacks (read-back.ts).
 */
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
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
    dawn = createRequire(import.meta.url)('webgpu') as typeof dawn;
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
    adapter = await gpu.requestAdapter();
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
 * straight to stderr, into the JSON log of every run.
 */
export function gpuDevicePresent(dev = '/dev'): boolean {
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
