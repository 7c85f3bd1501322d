/**
 * What a worker may send, beyond what its message's schema checks: pure functions that
 * the coordinator applies right after decoding (handlers.ts), each answering
 * with the refusal's text or its verdict. The job's fixed bounds are in the schema
 * itself (libs/protocol's job-limits.ts, built here by `jobLimits`); what depends on the
 * membership is here:
 *
 * - Roles. A final result (`done`) and checkpoints come from rank 0 of the current
 *   generation only; the other members' `done` is counted, never used; a message of an
 *   older generation is late and dropped (as the ring drops an older generation's
 *   frames); anything else is refused (PROTOCOL_ROLE). Rows go to members of the newest
 *   ring only.
 * - Generations. A worker names the newest generation its ring endpoint has seen, and
 *   the coordinator numbers the next ring above it (endpoints refuse older ones). One far
 *   above the coordinator's own is a lie or a bug, not a restart: refused, not adopted.
 * - Fetches. A worker needs, per split, the rows of its shard: for training, its part of
 *   every batch of an epoch (at most P * ceil(B / W) rows, P steps an epoch, W the
 *   world), for evaluation its slice of the split (ceil(rows / W)). It asks epoch by
 *   epoch, one request per split at a time, the next epoch's once this one's is in. A
 *   request for more than its shard, or a second one for a split while one is served,
 *   is refused; the answer is streamed in chunks (rows.ts), so what a request costs
 *   the coordinator is bounded by the shard, not by the request.
 */
import type { JobLimits, Split } from '@ringtrain/protocol';
import { stepsPerEpoch } from '@ringtrain/data';
import { EVALUATION_BATCH, paramLayout } from '@ringtrain/model';
import { confusionPlan, microBatchRows, type OpenedJob } from '@ringtrain/train';
import type { Progress, RankAssignment } from './membership.js';

/** How far above the coordinator's newest generation a worker's may be: a restart's lag, with room to spare. */
export const MAX_GENERATION_LEAP = 1000;

/** The newest ring this coordinator formed. */
export interface Formed {
  readonly generation: number;
  readonly ranks: readonly RankAssignment[];
  /** The member whose state the ring took; null when it took the coordinator's. */
  readonly source: string | null;
}

/** The job's bounds for decoding worker messages; `start` is the coordinator's own state (a resumed checkpoint may be past a lowered `epochs`). */
export function jobLimits(job: OpenedJob, jobId: string, start: Progress): JobLimits {
  const { spec, data, arch } = job;
  const per = stepsPerEpoch(data.train.rows, spec.training.batchSize);
  const plan = confusionPlan(data);
  return {
    jobId,
    stepsPerEpoch: per,
    epochs: spec.training.epochs,
    maxSteps: Math.max(per * spec.training.epochs, start.step),
    maxEpochs: Math.max(spec.training.epochs, start.epochs),
    batchSize: spec.training.batchSize,
    rows: { train: data.train.rows, validation: data.validation.rows, test: data.test.rows },
    params: paramLayout(arch).size,
    confusion: plan && { split: plan.split, classes: plan.classes, rows: plan.rows },
    ...(spec.training.reduction === 'exact' ? { exactShards: { microBatch: microBatchRows(spec), evaluationBatch: EVALUATION_BATCH } } : {}),
  };
}

/**
 * Who `id` is for a message of `generation`: rank 0 or another member of the current
 * generation (`current`, the newest the coordinator numbered, and formed by it), `late`
 * for an older generation, an `outsider` otherwise (not in the ring, or a generation
 * never formed here).
 */
export type Role = 'rank0' | 'member' | 'late' | 'outsider';

export function roleOf(formed: Formed | null, current: number, id: string, generation: number): Role {
  if (generation < current) return 'late';
  if (generation > current || formed === null || formed.generation !== current) return 'outsider';
  const rank = formed.ranks.find((r) => r.id === id)?.rank;
  return rank === 0 ? 'rank0' : rank === undefined ? 'outsider' : 'member';
}

/** The worker id at `rank` of the newest generation formed, if a report of `generation` names it (a `stopped` report's `unreachable`). */
export function memberAt(formed: Formed | null, generation: number, rank: number | undefined): string | undefined {
  if (rank === undefined || formed === null || formed.generation !== generation) return undefined;
  return formed.ranks.find((r) => r.rank === rank)?.id;
}

/**
 * The worker id at `rank`, if it was the source of that generation's state (a `stopped`
 * report's `invalidSource`): a member can name only the member whose state it was sent
 * (the coordinator's own state is verified before it is sent).
 */
export function sourceAt(formed: Formed | null, generation: number, rank: number | undefined): string | undefined {
  const id = memberAt(formed, generation, rank);
  return id !== undefined && id === formed?.source ? id : undefined;
}

/** Why a worker's seen generation is refused, or null: it must leave the next ring a u32 and be no lie. */
export function generationIssue(seen: number, current: number): string | null {
  if (seen > current + MAX_GENERATION_LEAP) return `generation ${seen} is more than ${MAX_GENERATION_LEAP} above this job's newest, ${current}`;
  return null;
}

/** The most rows of `split` one request of a rank in a world of `world` may ask for: its shard of an epoch (module comment). */
export function shardRows(split: Split, limits: JobLimits, world: number): number {
  const rows = limits.rows[split];
  // Whole units shared out by rank: ceil(units / world) of them, each `unit` rows.
  const whole = (n: number, unit: number): number => Math.min(n, Math.ceil(Math.ceil(n / unit) / world) * unit);
  const exact = limits.exactShards;
  if (split !== 'train') return exact ? whole(rows, exact.evaluationBatch) : Math.ceil(rows / world);
  const perStep = exact ? whole(limits.batchSize, exact.microBatch) : Math.ceil(limits.batchSize / world);
  // The final evaluation of the training split is sharded by evaluation batches (rows / world fits in the above).
  return Math.min(rows, Math.max(limits.stepsPerEpoch * perStep, exact ? whole(rows, exact.evaluationBatch) : 0));
}

/** Why a fetch of `count` rows of `split` by `id` is refused, or null. `busy`: a request of this split is being answered on its connection. */
export function fetchIssue(formed: Formed | null, id: string, split: Split, count: number, limits: JobLimits, busy: boolean): { code: 'PROTOCOL_ROLE' | 'PROTOCOL_BAD_MESSAGE'; reason: string } | null {
  const member = formed?.ranks.some((r) => r.id === id) === true;
  if (!member || formed === null) return { code: 'PROTOCOL_ROLE', reason: `fetch: ${id} is not a member of the newest ring` };
  const most = shardRows(split, limits, formed.ranks.length);
  if (count > most) return { code: 'PROTOCOL_BAD_MESSAGE', reason: `fetch: ${count} ${split} rows asked for; a shard of a world of ${formed.ranks.length} has at most ${most}` };
  if (busy) return { code: 'PROTOCOL_BAD_MESSAGE', reason: `fetch: a ${split} request is still being answered (one per split at a time)` };
  return null;
}
