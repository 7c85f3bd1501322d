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

/** The source's state at every member: `mine` at the root (returned as it is), a verified copy elsewhere. */
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
  if (isRoot) {
    for (const a of arrays) await ring.broadcast(a, root);
    return mine!;
  }
  if (received.byteLength < DIGEST_BYTES) throw new TrainError('SNAPSHOT_INVALID', `state snapshot: a header of ${received.byteLength} bytes from rank ${root}`);
  const digest = Buffer.from(received.subarray(0, DIGEST_BYTES));
  const assembler = new SnapshotAssembler();
  const parser = new StateParser(shape, assembler, null);
  parser.push(received.subarray(DIGEST_BYTES));
  const targets = assembler.targets();
  if (targets === null) throw new TrainError('SNAPSHOT_INVALID', `state snapshot: the header from rank ${root} is incomplete`);
  for (const t of targets) await ring.broadcast(t, root);
  if (!digestOf(targets).equals(digest)) throw new TrainError('SNAPSHOT_INVALID', `state snapshot: the state from rank ${root} does not match its SHA-256`);
  return assembler.snapshot();
}
