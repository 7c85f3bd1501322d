/**
 * Where a rank's CPU time goes, from a V8 CPU profile (node --cpu-prof): each sample's
 * self time is put in one category by the function it fell in, so the shares say what
 * to make faster. Reduction: the add loop; copies: payload copies in JavaScript
 * (Buffer.copy, the send slots' fill, the all-gather's copy); syscalls: the socket
 * writes and reads; framing: parsing and writing WebSocket and ring frames (ws, fast-
 * receive.ts, frame.ts) and the ring's dispatch; gc: the garbage collector; native: V8
 * and Node's C++ with no JavaScript on the stack (socket read callbacks, allocation);
 * other: the rest (timers, IPC with the driver). Idle time, module loading and the
 * bench's own work are left out.
 */
import { readFileSync } from 'node:fs';

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string } }[];
  samples: number[];
  timeDeltas: number[];
}

export type Category = 'reduction' | 'copies' | 'syscalls' | 'framing' | 'gc' | 'native' | 'other';

function categoryOf(fn: string, url: string): Category | 'idle' | 'startup' {
  if (fn === '(idle)') return 'idle';
  // Loading and compiling modules (tsx's hooks among them), and the bench rank's own work (filling its buffer).
  if (/^node:internal\/modules|\/(tsx|esbuild|get-tsconfig)\/|\/bench\/allreduce\/rank\.ts$/.test(url) || /^(compile|parse|wrapSafe|makeSyncRequest|waitForWorker)/.test(fn)) return 'startup';
  // Time in V8 and Node's C++ that no JavaScript function was on the stack for: mostly
  // the socket reads' callbacks and buffer allocation.
  if (fn === '(program)') return 'native';
  if (fn === '(garbage collector)') return 'gc';
  if (fn === 'addInto') return 'reduction';
  if (['_copyActual', 'copy', 'copyPayload', 'fill', 'set'].includes(fn)) return 'copies';
  if (['writev', 'writeBuffer', 'writeGeneric', 'onStreamRead', 'afterWriteDispatched', 'handleWriteReq', 'writevGeneric'].includes(fn)) return 'syscalls';
  if (/(ws\/lib\/(sender|receiver|websocket)\.js|fast-receive\.ts|frame\.ts|allreduce-ring\.ts|ring\.ts|link\.ts|send-window\.ts)$/.test(url)) return 'framing';
  return 'other';
}

/** Milliseconds of self time per category (idle left out), summed over `files`. */
export function profileShares(files: readonly string[]): Record<Category, number> {
  const ms: Record<Category, number> = { reduction: 0, copies: 0, syscalls: 0, framing: 0, gc: 0, native: 0, other: 0 };
  for (const file of files) {
    const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
    const byId = new Map(p.nodes.map((n) => [n.id, n.callFrame]));
    p.samples.forEach((id, i) => {
      const frame = byId.get(id)!;
      const c = categoryOf(frame.functionName, frame.url);
      if (c !== 'idle' && c !== 'startup') ms[c] += (p.timeDeltas[i] ?? 0) / 1000;
    });
  }
  return ms;
}
