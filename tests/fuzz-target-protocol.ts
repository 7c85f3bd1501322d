/** What tests/fuzz.spec.ts and its target processes (fuzz-targets.ts) say to each other over IPC, and the ring target's settings. */

export type TargetMessage =
  | { type: 'ready'; port: number; pid: number; generation?: number }
  | { type: 'memory'; heapUsed: number; external: number; arrayBuffers: number; rss: number }
  | { type: 'linked'; generation: number };

/** The segment size of the ring target's rings: a hello must announce it. */
export const RING_SEGMENT_BYTES = 64 * 1024;
/** How long a connection may take to authenticate and find its ring at the ring target. */
export const RING_HANDSHAKE_MS = 800;
