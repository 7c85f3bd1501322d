/**
 * A TrainSnapshot as a stream of bytes, for handing a state between processes (a worker's
 * checkpoint to the coordinator, the coordinator's state to a worker): the in-memory
 * sibling of a checkpoint directory.
 *
 *   bytes 0..3   "RTS1"
 *   bytes 4..7   header length H, uint32 little-endian
 *   8..8+H       header: UTF-8 JSON { loop, optimizer: { name, iterations }, trainRows,
 *                params, slots, best } (the last three are float counts)
 *   then zero padding to a multiple of 4, and the float32 little-endian arrays params,
 *   optimizer slots and (if best > 0) early stopping's best weights, back to back.
 *
 * It is written and read as a stream, so no side holds it twice: `stateSource` yields the
 * header and then views of the snapshot's own arrays (nothing is copied until a chunk is
 * sent), and a `StateParser` takes bytes as they arrive, in pieces of any size, and
 * hands each section's floats to a `StateSink` (SnapshotAssembler copies them into place;
 * the coordinator's checkpoint writer writes them to files). The parser checks the
 * header against what the receiver expects (its own model and optimizer sizes) before
 * any float, and the length to the byte, so a malformed or foreign stream is
 * SNAPSHOT_INVALID, never half-applied. verifySnapshot then checks what the numbers say
 * against the job: every weight finite, and a loop state that the training loop could
 * have reached. encodeSnapshot and decodeSnapshot are the same for one buffer.
 */
import { stepsPerEpoch } from '@ringtrain/data';
import { optimizerSlotCount, type OptimizerState } from '@ringtrain/model';
import { TrainError } from './errors.js';
import type { JobSpec } from './spec.js';
import type { LoopState } from './loop.js';
import { optimizerSpec, type TrainSnapshot } from './trainer.js';

const MAGIC = 0x31535452; // "RTS1" read as little-endian uint32

/**
 * The longest header taken: it is the loop state, whose history grows by ~250 bytes an
 * epoch, so 16 MiB is some 60,000 epochs; a length past it is a damaged or hostile stream.
 */
export const MAX_STATE_HEADER_BYTES = 16 * 1024 * 1024;

/** What precedes the floats: the loop state and the sizes of the three arrays. */
export interface StateHeader {
  readonly loop: LoopState;
  readonly optimizer: { readonly name: OptimizerState['name']; readonly iterations: number };
  readonly trainRows: number;
  readonly params: number;
  readonly slots: number;
  readonly best: number;
}

/** The float arrays, in stream order. */
export type StateSection = 'params' | 'slots' | 'best';

function invalid(what: string): TrainError {
  return new TrainError('SNAPSHOT_INVALID', `state snapshot: ${what}`, [what]);
}

function headerOf(snap: TrainSnapshot): StateHeader {
  return {
    loop: snap.loop,
    optimizer: { name: snap.optimizer.name, iterations: snap.optimizer.iterations },
    trainRows: snap.trainRows,
    params: snap.params.length,
    slots: snap.optimizer.slots.length,
    best: snap.bestParams?.length ?? 0,
  };
}

/** Magic, header length, header, padding to a multiple of 4: everything before the floats. */
export function statePrefix(header: StateHeader): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array((8 + json.length + 3) & ~3);
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, json.length, true);
  out.set(json, 8);
  return out;
}

function bytesOf(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** The stream of `snap`: its length, and its prefix followed by views of its arrays (not copies: they must not change until sent). */
export function stateSource(snap: TrainSnapshot): { readonly bytes: number; readonly parts: readonly Uint8Array[] } {
  const prefix = statePrefix(headerOf(snap));
  const parts = [prefix, bytesOf(snap.params), bytesOf(snap.optimizer.slots), ...(snap.bestParams ? [bytesOf(snap.bestParams)] : [])];
  return { bytes: parts.reduce((a, p) => a + p.byteLength, 0), parts };
}

export function encodeSnapshot(snap: TrainSnapshot): Uint8Array {
  const { bytes, parts } = stateSource(snap);
  const out = new Uint8Array(bytes);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
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
export function snapshotProgress(s: { readonly loop: LoopState }): { readonly step: number; readonly epochs: number } {
  return { step: s.loop.globalStep, epochs: s.loop.history.length };
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Parses a header's JSON and checks its fields against `expected`; throws SNAPSHOT_INVALID. */
function parseHeader(json: Uint8Array, expected: SnapshotShape): StateHeader {
  let h: StateHeader;
  try {
    h = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(json)) as StateHeader;
  } catch (err) {
    throw invalid(`header is not JSON (${(err as Error).message})`);
  }
  if (typeof h !== 'object' || h === null || typeof h.loop !== 'object' || h.loop === null) throw invalid('header has no loop state');
  const l = h.loop;
  for (const key of ['epoch', 'stepInEpoch', 'globalStep'] as const) if (!isCount(l[key])) throw invalid(`loop.${key} is not a count`);
  if (!Array.isArray(l.history) || typeof l.partial !== 'object' || l.partial === null) throw invalid('loop has no history or partial sums');
  if (typeof l.stoppedEarly !== 'boolean') throw invalid('loop.stoppedEarly is not a boolean');
  if (l.exactBound !== undefined && !(typeof l.exactBound === 'number' && l.exactBound > 0 && Number.isFinite(l.exactBound))) throw invalid('loop.exactBound is not a positive number');
  if (h.optimizer?.name !== expected.optimizer || !isCount(h.optimizer.iterations)) {
    throw invalid(`optimizer ${JSON.stringify(h.optimizer?.name)} does not match this job's ${expected.optimizer}`);
  }
  if (!isCount(h.trainRows)) throw invalid('trainRows is not a count');
  if (h.params !== expected.params) throw invalid(`${String(h.params)} parameters; this model has ${expected.params}`);
  if (h.slots !== expected.slots) throw invalid(`${String(h.slots)} optimizer slot values; this optimizer has ${expected.slots}`);
  if (h.best !== 0 && h.best !== expected.params) throw invalid(`best weights of ${String(h.best)} values`);
  return h;
}

/** Where a parsed stream's floats go; each piece is whole floats, little-endian, at float index `at` of its section. */
export interface StateSink {
  header(h: StateHeader): void;
  floats(section: StateSection, at: number, bytes: Uint8Array): void;
}

/**
 * A push parser of the stream: `push` bytes as they come, in pieces of any size, then
 * `end`. Throws SNAPSHOT_INVALID at the first byte that cannot be right: a bad magic or
 * header, a header that does not describe `expected`, more bytes than the header
 * describes (or than `total`, the length the stream was announced with), or, at `end`,
 * fewer.
 */
export class StateParser {
  private readonly prefix: number[] = [];
  private prefixBytes = 8;
  private sections: { readonly name: StateSection; readonly bytes: number }[] = [];
  private section = 0;
  /** Bytes taken of the current section. */
  private at = 0;
  /** 0-3 bytes of a float split between pieces. */
  private readonly carry = new Uint8Array(4);
  private carried = 0;
  private header: StateHeader | null = null;

  constructor(
    private readonly expected: SnapshotShape,
    private readonly sink: StateSink,
    private readonly total: number | null = null,
  ) {}

  push(bytes: Uint8Array): void {
    let i = 0;
    while (i < bytes.length && this.header === null) {
      const take = Math.min(bytes.length - i, this.prefixBytes - this.prefix.length);
      for (let k = 0; k < take; k++) this.prefix.push(bytes[i + k]!);
      i += take;
      if (this.prefix.length === this.prefixBytes) this.readPrefix();
    }
    while (i < bytes.length) {
      const s = this.sections[this.section];
      if (!s) throw invalid('more bytes than the header describes');
      const n = Math.min(bytes.length - i, s.bytes - this.at);
      this.feed(s.name, bytes.subarray(i, i + n));
      i += n;
      if (this.at === s.bytes) {
        this.section += 1;
        this.at = 0;
      }
    }
  }

  /** The stream is over: it must be complete. */
  end(): StateHeader {
    if (this.header === null || this.section < this.sections.length) throw invalid('the stream ended early');
    return this.header;
  }

  private readPrefix(): void {
    const p = Uint8Array.from(this.prefix);
    const view = new DataView(p.buffer);
    if (this.prefixBytes === 8) {
      if (view.getUint32(0, true) !== MAGIC) throw invalid('wrong magic (not a ringtrain state snapshot)');
      const length = view.getUint32(4, true);
      if (length > MAX_STATE_HEADER_BYTES) throw invalid(`a header of ${length} bytes is past the ${MAX_STATE_HEADER_BYTES} taken`);
      if (this.total !== null && 8 + length > this.total) throw invalid(`header of ${length} bytes overruns the ${this.total}-byte stream`);
      this.prefixBytes = (8 + length + 3) & ~3;
      if (this.prefixBytes > 8) return;
    }
    const length = view.getUint32(4, true);
    const h = parseHeader(p.subarray(8, 8 + length), this.expected);
    const described = this.prefixBytes + 4 * (h.params + h.slots + h.best);
    if (this.total !== null && described !== this.total) throw invalid(`${this.total} bytes; the header describes ${described}`);
    this.sections = [
      { name: 'params' as const, bytes: 4 * h.params },
      { name: 'slots' as const, bytes: 4 * h.slots },
      { name: 'best' as const, bytes: 4 * h.best },
    ].filter((s) => s.bytes > 0);
    this.header = h;
    this.prefix.length = 0;
    this.sink.header(h);
  }

  /** Hands whole floats of `piece` (with bytes carried from the last piece) to the sink. Sections are whole floats, so none is carried past one. */
  private feed(name: StateSection, piece: Uint8Array): void {
    let k = 0;
    if (this.carried > 0) {
      const floatAt = (this.at - this.carried) / 4;
      while (this.carried < 4 && k < piece.length) this.carry[this.carried++] = piece[k++]!;
      if (this.carried === 4) {
        this.sink.floats(name, floatAt, this.carry.slice());
        this.carried = 0;
      }
    }
    if (this.carried === 0) {
      const whole = (piece.length - k) & ~3;
      if (whole > 0) this.sink.floats(name, (this.at + k) / 4, piece.subarray(k, k + whole));
      for (let j = k + whole; j < piece.length; j++) this.carry[this.carried++] = piece[j]!;
    }
    this.at += piece.length;
  }
}

/** A StateSink that builds the TrainSnapshot in memory: each float copied once, into its own array. */
export class SnapshotAssembler implements StateSink {
  private h: StateHeader | null = null;
  private arrays: Record<StateSection, Float32Array> | null = null;

  header(h: StateHeader): void {
    this.h = h;
    this.arrays = { params: new Float32Array(h.params), slots: new Float32Array(h.slots), best: new Float32Array(h.best) };
  }

  floats(section: StateSection, at: number, bytes: Uint8Array): void {
    const a = this.arrays![section];
    new Uint8Array(a.buffer, a.byteOffset + 4 * at, bytes.length).set(bytes);
  }

  /**
   * Once the header is in: views of the arrays to fill, in stream order, the empty ones
   * left out, for a receiver that fills them another way (a ring broadcast in place);
   * null before the header.
   */
  targets(): Uint8Array[] | null {
    if (this.arrays === null) return null;
    return [this.arrays.params, this.arrays.slots, this.arrays.best].filter((a) => a.length > 0).map((a) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  }

  /** The snapshot, once the parser's `end` has passed (or `targets` are filled). */
  snapshot(): TrainSnapshot {
    const h = this.h!;
    const a = this.arrays!;
    return {
      loop: h.loop,
      params: a.params,
      optimizer: { name: h.optimizer.name, iterations: h.optimizer.iterations, slots: a.slots },
      bestParams: h.best > 0 ? a.best : null,
      trainRows: h.trainRows,
    };
  }
}

export function decodeSnapshot(bytes: Uint8Array, expected: SnapshotShape): TrainSnapshot {
  const assembler = new SnapshotAssembler();
  const parser = new StateParser(expected, assembler, bytes.length);
  parser.push(bytes);
  parser.end();
  return assembler.snapshot();
}

/** The first value of `values` that is not finite, named as `what`[i], or null. */
export function finiteIssue(values: Float32Array, what: string): string | null {
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
  verifyLoopState(s, spec, trainRows);
  const bad = finiteIssue(s.params, 'params') ?? finiteIssue(s.optimizer.slots, 'optimizer slots') ?? (s.bestParams ? finiteIssue(s.bestParams, 'best weights') : null);
  if (bad) throw invalid(bad);
}

/** verifySnapshot without the arrays: what a stream's header says, checked before its floats arrive. */
export function verifyLoopState(s: { readonly loop: LoopState; readonly trainRows: number }, spec: JobSpec, trainRows: number): void {
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
}
