/**
 * The state sync of a generation: the source rank's state to every member, over the
 * ring's own links (a broadcast), never through the coordinator.
 *
 * It goes as separate broadcasts, one per part, each straight from the source's arrays
 * into arrays each receiver allocates once from the header: first the state stream's
 * header (snapshot-codec.ts) with the SHA-256 of the arrays, then the parameters, the
 * optimizer slots and the best weights (those that are not empty). Sent as one buffer,
 * the state was copied three times on the way (encoded, received, decoded: ~48 bytes a
 * parameter with Adam and early stopping); so it is copied once, into place. A receiver
 * checks the header against its own job before it allocates anything, and the arrays
 * against the digest once they are in, so a state damaged on the way is SNAPSHOT_INVALID
 * like one that was wrong from the start.
 *
 * Most generations after the first start from a state every member already holds: the
 * survivors of a lost worker committed the same steps, bit for bit. So after the header,
 * each receiver says whether it holds exactly that state (the same header, and its own
 * arrays hash to the source's digest), and the members sum those answers; when nobody
 * needs the arrays, none are sent, and each member keeps its own, with no copy
 * allocated. A 1.3 GB state that took 10 s over the ring then costs each member one
 * SHA-256 of its own arrays. When someone does need them (a joiner), every receiver takes
 * them as before: one that already matched still receives into new arrays, so that a
 * transfer broken half way, or a source that sends what its digest does not say, cannot
 * damage the state it holds.
 */
import { createHash } from 'node:crypto';
import type { Ring } from '@ringtrain/allreduce';
import { SnapshotAssembler, type SnapshotShape, StateParser, stateSource, TrainError, type TrainSnapshot } from '@ringtrain/train';

const DIGEST_BYTES = 32;

function digestOf(parts: readonly Uint8Array[]): Buffer {
  const hash = createHash('sha256');
  for (const p of parts) hash.update(p);
  return hash.digest();
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

/**
 * The source's state at every member: `mine` at the root (returned as it is); elsewhere
 * `mine` when it is the same state bit for bit and nobody needed the arrays, else a
 * verified copy. `mine` is each member's own state, if it holds one (the root must).
 */
export async function broadcastState(ring: Ring, mine: TrainSnapshot | undefined, root: number, shape: SnapshotShape): Promise<TrainSnapshot> {
  const isRoot = ring.rank === root;
  let head: Uint8Array | undefined;
  let arrays: Uint8Array[] = [];
  if (isRoot) {
    if (!mine) throw new Error('the root of a state broadcast must hold the state');
    const [prefix, ...rest] = stateSource(mine).parts;
    arrays = rest;
    head = new Uint8Array(DIGEST_BYTES + prefix!.byteLength);
    head.set(digestOf(arrays), 0);
    head.set(prefix!, DIGEST_BYTES);
  }
  const received = await ring.broadcast(head, root);
  const digest = Buffer.from(received.subarray(0, DIGEST_BYTES));
  // Whether this member holds the source's state already: the root does.
  const holds = isRoot || (received.byteLength >= DIGEST_BYTES && mine !== undefined && holdsState(mine, received.subarray(DIGEST_BYTES), digest));
  const needed = new Float32Array([holds ? 0 : 1]);
  await ring.allReduce(needed);
  if (needed[0] === 0) return mine!;
  if (isRoot) {
    for (const a of arrays) await ring.broadcast(a, root);
    return mine!;
  }
  if (received.byteLength < DIGEST_BYTES) throw new TrainError('SNAPSHOT_INVALID', `state snapshot: a header of ${received.byteLength} bytes from rank ${root}`);
  const assembler = new SnapshotAssembler();
  const parser = new StateParser(shape, assembler, null);
  parser.push(received.subarray(DIGEST_BYTES));
  const targets = assembler.targets();
  if (targets === null) throw new TrainError('SNAPSHOT_INVALID', `state snapshot: the header from rank ${root} is incomplete`);
  for (const t of targets) await ring.broadcast(t, root);
  if (!digestOf(targets).equals(digest)) throw new TrainError('SNAPSHOT_INVALID', `state snapshot: the state from rank ${root} does not match its SHA-256`);
  return assembler.snapshot();
}

/** `mine` is the state whose header is `prefix` and whose arrays hash to `digest`. */
function holdsState(mine: TrainSnapshot, prefix: Uint8Array, digest: Buffer): boolean {
  const [own, ...arrays] = stateSource(mine).parts;
  return sameBytes(own!, prefix) && digestOf(arrays).equals(digest);
}
