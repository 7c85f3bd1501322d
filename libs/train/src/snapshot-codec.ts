/**
 * A TrainSnapshot as one byte buffer, for handing a member's state to the others when a
 * generation forms (ring.broadcast) — the in-memory sibling of a checkpoint directory.
 *
 *   bytes 0..3   "RTS1"
 *   bytes 4..7   header length H, uint32 little-endian
 *   8..8+H       header: UTF-8 JSON { loop, optimizer: { name, iterations }, trainRows,
 *                params, slots, best } (the last three are float counts)
 *   then zero padding to a multiple of 4, and the float32 little-endian arrays params,
 *   optimizer slots and (if best > 0) early stopping's best weights, back to back.
 *
 * decodeSnapshot checks every field against what the receiver expects (its own model
 * and optimizer sizes), so a malformed or foreign buffer is SNAPSHOT_INVALID, never
 * half-applied. verifySnapshot then checks what the numbers say against the job: every
 * weight finite, and a loop state that the training loop could have reached.
 */
import { stepsPerEpoch } from '@ringtrain/data';
import { optimizerSlotCount, type OptimizerState } from '@ringtrain/model';
import { TrainError } from './errors.js';
import type { JobSpec } from './spec.js';
import type { LoopState } from './loop.js';
import { optimizerSpec, type TrainSnapshot } from './trainer.js';

const MAGIC = 0x31535452; // "RTS1" read as little-endian uint32

interface Header {
  readonly loop: LoopState;
  readonly optimizer: { readonly name: OptimizerState['name']; readonly iterations: number };
  readonly trainRows: number;
  readonly params: number;
  readonly slots: number;
  readonly best: number;
}

function invalid(what: string): TrainError {
  return new TrainError('SNAPSHOT_INVALID', `state snapshot: ${what}`, [what]);
}

export function encodeSnapshot(snap: TrainSnapshot): Uint8Array {
  const header: Header = {
    loop: snap.loop,
    optimizer: { name: snap.optimizer.name, iterations: snap.optimizer.iterations },
    trainRows: snap.trainRows,
    params: snap.params.length,
    slots: snap.optimizer.slots.length,
    best: snap.bestParams?.length ?? 0,
  };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const start = (8 + json.length + 3) & ~3;
  const floats = header.params + header.slots + header.best;
  const out = new Uint8Array(start + 4 * floats);
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, json.length, true);
  out.set(json, 8);
  const body = new Float32Array(out.buffer, start, floats);
  body.set(snap.params, 0);
  body.set(snap.optimizer.slots, header.params);
  if (snap.bestParams) body.set(snap.bestParams, header.params + header.slots);
  return out;
}

export interface SnapshotShape {
  readonly params: number;
  readonly slots: number;
  readonly optimizer: OptimizerState['name'];
}

/** What a snapshot of `spec`'s job holds for a model of `paramCount` parameters. */
export function snapshotShape(spec: JobSpec, paramCount: number): SnapshotShape {
  return { params: paramCount, slots: optimizerSlotCount(optimizerSpec(spec), paramCount), optimizer: spec.training.optimizer.name };
}

/** How far a snapshot has got: steps committed, then epochs recorded; membership compares states by it. */
export function snapshotProgress(s: TrainSnapshot): { readonly step: number; readonly epochs: number } {
  return { step: s.loop.globalStep, epochs: s.loop.history.length };
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

export function decodeSnapshot(bytes: Uint8Array, expected: SnapshotShape): TrainSnapshot {
  if (bytes.length < 8) throw invalid(`${bytes.length} bytes is too short`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC) throw invalid('wrong magic (not a ringtrain state snapshot)');
  const length = view.getUint32(4, true);
  if (8 + length > bytes.length) throw invalid(`header of ${length} bytes overruns the ${bytes.length}-byte buffer`);
  let h: Header;
  try {
    h = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + length))) as Header;
  } catch (err) {
    throw invalid(`header is not JSON (${(err as Error).message})`);
  }
  if (typeof h !== 'object' || h === null || typeof h.loop !== 'object' || h.loop === null) throw invalid('header has no loop state');
  const l = h.loop;
  for (const key of ['epoch', 'stepInEpoch', 'globalStep'] as const) if (!isCount(l[key])) throw invalid(`loop.${key} is not a count`);
  if (!Array.isArray(l.history) || typeof l.partial !== 'object' || l.partial === null) throw invalid('loop has no history or partial sums');
  if (typeof l.stoppedEarly !== 'boolean') throw invalid('loop.stoppedEarly is not a boolean');
  if (h.optimizer?.name !== expected.optimizer || !isCount(h.optimizer.iterations)) {
    throw invalid(`optimizer ${JSON.stringify(h.optimizer?.name)} does not match this job's ${expected.optimizer}`);
  }
  if (!isCount(h.trainRows)) throw invalid('trainRows is not a count');
  if (h.params !== expected.params) throw invalid(`${String(h.params)} parameters; this model has ${expected.params}`);
  if (h.slots !== expected.slots) throw invalid(`${String(h.slots)} optimizer slot values; this optimizer has ${expected.slots}`);
  if (h.best !== 0 && h.best !== expected.params) throw invalid(`best weights of ${String(h.best)} values`);
  const start = (8 + length + 3) & ~3;
  const floats = h.params + h.slots + h.best;
  if (bytes.length !== start + 4 * floats) throw invalid(`${bytes.length} bytes; the header describes ${start + 4 * floats}`);
  // Copy out: the caller's buffer may be reused, may sit at an unaligned offset, and may
  // be a Node Buffer, whose slice() is a view into a larger pool rather than a copy.
  const copy = new Uint8Array(4 * floats);
  copy.set(bytes.subarray(start, start + 4 * floats));
  const body = new Float32Array(copy.buffer);
  return {
    loop: l,
    params: body.slice(0, h.params),
    optimizer: { name: h.optimizer.name, iterations: h.optimizer.iterations, slots: body.slice(h.params, h.params + h.slots) },
    bestParams: h.best > 0 ? body.slice(h.params + h.slots) : null,
    trainRows: h.trainRows,
  };
}

function finiteIssue(values: Float32Array, what: string): string | null {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i]!)) return `${what}[${i}] is ${values[i]}`;
  return null;
}

/**
 * Checks a decoded snapshot against the job whose state it claims to be (`spec` and its
 * `trainRows`): every parameter, optimizer slot and best weight finite, and a loop state
 * the training loop could have reached. The loop keeps globalStep = epoch * P +
 * stepInEpoch (P steps an epoch; stepInEpoch = P after an epoch's last step, before its
 * validation) and one history record per completed epoch, numbered from 1. Throws
 * SNAPSHOT_INVALID naming the first problem.
 */
export function verifySnapshot(s: TrainSnapshot, spec: JobSpec, trainRows: number): void {
  const fail = (what: string): never => {
    throw invalid(what);
  };
  if (s.trainRows !== trainRows) fail(`${s.trainRows} training rows; this job has ${trainRows}`);
  const per = stepsPerEpoch(trainRows, spec.training.batchSize);
  const l = s.loop;
  if (l.stepInEpoch > per) fail(`loop.stepInEpoch ${l.stepInEpoch} is past the ${per} steps of an epoch`);
  if (l.globalStep !== l.epoch * per + l.stepInEpoch) fail(`loop.globalStep ${l.globalStep} is not epoch ${l.epoch} x ${per} + ${l.stepInEpoch}`);
  if (l.history.length !== l.epoch) fail(`${l.history.length} epochs recorded at epoch ${l.epoch}`);
  l.history.forEach((r, i) => {
    if (typeof r !== 'object' || r === null || r.epoch !== i + 1) fail(`loop.history[${i}] is not epoch ${i + 1}`);
  });
  const p = l.partial;
  for (const key of ['lossSum', 'count', 'correct', 'seconds'] as const) if (!Number.isFinite(p[key]) || p[key] < 0) fail(`loop.partial.${key} is not a finite count or sum`);
  if (l.best !== null && (typeof l.best !== 'object' || !Number.isFinite(l.best.loss) || !isCount(l.best.epoch) || l.best.epoch < 1 || l.best.epoch > l.history.length)) {
    fail('loop.best is not a finite loss of a recorded epoch');
  }
  const bad = finiteIssue(s.params, 'params') ?? finiteIssue(s.optimizer.slots, 'optimizer slots') ?? (s.bestParams ? finiteIssue(s.bestParams, 'best weights') : null);
  if (bad) fail(bad);
}
