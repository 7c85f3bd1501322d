/**
 * The control channel between the coordinator and a worker: one WebSocket per worker,
 * each binary message one msgpack map with a `type`. It carries membership (register,
 * generation, stop), data (fetch, rows), asynchronous reports (heartbeat with metrics),
 * and state (checkpoint, state, done). Nothing on it is per step: a step needs only the
 * ring (invariant 3 of DESIGN.md). Bulk numbers travel as raw little-endian bytes.
 *
 * The schemas are the validation: decode() checks every field of every message. Every
 * number has the bounds its use needs: generations are u32 (the ring's handshake and
 * frames carry them so), ids and counts too, times and rates are non-negative, and zod
 * refuses NaN and the infinities for every number. Bounds that depend on the job (how
 * many steps, epochs and rows it has, how large its model is) are a refinement built from
 * the job: `workerMessageFor(limits)` (job-limits.ts), which the coordinator decodes with.
 */
import { z } from 'zod';

/** The largest generation number: the ring's handshake and frame headers carry it as a u32. */
export const MAX_GENERATION = 0xffffffff;

/**
 * The control channel's version, carried by `register` and `job` and checked at both
 * (codec.ts: PROTOCOL_VERSION, a refusal naming both versions). 1 is the channel before
 * it carried one; 2 added it, a code to `stopped` and a schema to `arch`; 3 the
 * confusion matrix to `done` (a worker of 2 would have trained a whole job only to have
 * its `done` refused); 4 turned the ring's connections round (a rank dials its
 * predecessor and says `ready`, libs/allreduce), so workers of 3 and 4 could not form a
 * ring together: the coordinator refuses the older at its `register` instead.
 */
export const PROTOCOL_VERSION = 4;

const u32 = z.number().int().min(0).max(0xffffffff);
const count = u32;
const bytes = z.custom<Uint8Array>((v) => v instanceof Uint8Array, 'expected bytes');
const generation = u32;
const nonNegative = z.number().nonnegative();

/** The longest transfer announced: 1 TiB, far past any state a worker could hold, and exact in a double. */
export const MAX_TRANSFER_BYTES = 2 ** 40;
/** The most bytes of one `chunk`'s data: a transfer's unit of flow control and of memory on both sides. */
export const TRANSFER_CHUNK_BYTES = 4 * 1024 * 1024;

/**
 * A transfer's announcement (transfer.ts): its id on this connection and its length.
 * `chunk` messages of that id follow, each acknowledged by an `ack`; the last carries the
 * SHA-256 of the whole. States, checkpoints and final weights travel so, never as one
 * message, so no state is limited by a message's size.
 */
export const TransferHead = z.object({ id: u32, bytes: z.number().int().min(0).max(MAX_TRANSFER_BYTES) });
export type TransferHead = z.infer<typeof TransferHead>;

/** One piece of a transfer, at `offset`; `sha256` (hex) on the last piece only. Both directions. */
const Chunk = z.object({
  type: z.literal('chunk'),
  id: u32,
  offset: z.number().int().min(0).max(MAX_TRANSFER_BYTES),
  data: bytes.refine((b) => b.byteLength <= TRANSFER_CHUNK_BYTES, `a chunk carries at most ${TRANSFER_CHUNK_BYTES} bytes`),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'a SHA-256 in lowercase hex').optional(),
});
/** The receiver of transfer `id` has taken every byte before `offset`. Both directions. */
const Ack = z.object({ type: z.literal('ack'), id: u32, offset: z.number().int().min(0).max(MAX_TRANSFER_BYTES) });
export type ChunkMessage = z.infer<typeof Chunk>;
export type AckMessage = z.infer<typeof Ack>;

export const Address = z.object({ host: z.string().min(1).max(253), port: z.number().int().min(1).max(65535) });
export type Address = z.infer<typeof Address>;

/** How far a held state has got: committed steps, then epochs recorded (validation done). */
export const Progress = z.object({ step: count, epochs: count });
export type Progress = z.infer<typeof Progress>;

/** A stable error code (`RING_TIMEOUT`, `ROWS_TIMEOUT`, ...): docs/errors.md lists them. */
export const Code = z.string().regex(/^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$/, 'an error code such as RING_TIMEOUT').max(64);

/** libs/model's Architecture: the layer sizes and activations of the job's MLP. */
export const ArchitectureInfo = z.object({
  inputs: z.number().int().min(1).max(0xffffffff),
  hidden: z
    .array(z.object({ units: z.number().int().min(1).max(0xffffffff), activation: z.enum(['relu', 'tanh', 'sigmoid', 'linear']), dropout: z.number().min(0).lt(1) }))
    .max(1000),
  outputs: z.number().int().min(1).max(0xffffffff),
  output: z.enum(['softmax', 'linear']),
});

export const Split = z.enum(['train', 'validation', 'test']);
export type Split = z.infer<typeof Split>;

/** One committed step: its global index (0-based), its epoch (1-based), the mean loss over the global batch, and the batch's size. */
export const StepReport = z.object({ step: count, epoch: count, loss: z.number(), samples: count });
export type StepReport = z.infer<typeof StepReport>;

/** Mean per-step times since the last heartbeat, in milliseconds. */
export const Timing = z.object({ steps: count, computeMs: nonNegative, commMs: nonNegative, waitMs: nonNegative });
export type Timing = z.infer<typeof Timing>;

const MetricsShape = z.object({ loss: z.number(), accuracy: z.number().min(0).max(1).nullable() });
export const EpochReport = z.object({
  /** 1-based. */
  epoch: count,
  train: MetricsShape,
  validation: MetricsShape.nullable(),
  learningRate: nonNegative,
  seconds: nonNegative,
  samplesPerSecond: nonNegative,
});
export type EpochReport = z.infer<typeof EpochReport>;

/**
 * The final model's confusion matrix, for report.html: the workers count it during their
 * final evaluation and all-reduce it, so the coordinator never needs the model. `split`
 * and `rows` are what libs/train's confusion.ts plans for the job (the test split, or
 * validation without test rows; all its rows up to 10,000, else 10,000 evenly spaced);
 * `counts` is classes x classes u32 little-endian, row = true class, column = predicted.
 * The job's bounds check all three (job-limits.ts).
 */
export const ConfusionCounts = z.object({ split: z.enum(['test', 'validation']), rows: count, counts: bytes });
export type ConfusionCounts = z.infer<typeof ConfusionCounts>;

export const WorkerMessage = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('register'),
    /** PROTOCOL_VERSION of the worker; checked first (codec.ts). */
    protocol: u32,
    id: z.string().min(1).max(200),
    address: Address,
    backend: z.string().max(100),
    /** The job whose state this worker holds, if any, and how far it got. */
    held: z.object({ jobId: z.string().max(100), progress: Progress }).nullable(),
    /** The newest generation this worker's ring endpoint has seen (-1: none). */
    generation: z.number().int().min(-1).max(MAX_GENERATION),
  }),
  z.object({
    type: z.literal('heartbeat'),
    generation: z.number().int().min(-1).max(MAX_GENERATION),
    /** The backend in use, once the job's first message chose it. */
    backend: z.string().max(100).optional(),
    progress: Progress.nullable(),
    timing: Timing,
    /** Bytes: the process's resident set now and its peak, the job's memory plan, the memory limit it was checked against (null: none). Absent before a job, and from older workers. */
    memory: z.object({ rss: nonNegative, peak: nonNegative.optional(), planned: nonNegative, limit: nonNegative.nullable() }).optional(),
    /** Rank 0 only: the steps and epochs committed since its last heartbeat. */
    steps: z.array(StepReport).max(100_000),
    epochs: z.array(EpochReport).max(10_000),
  }),
  /** Rows of a split, by index (u32 each); answered by `rows` messages. At most one per split at a time. */
  z.object({ type: z.literal('fetch'), id: count, split: Split, indices: bytes }),
  /**
   * This worker's training loop for `generation` has ended; it holds the state at
   * `progress`. `code` says why (RING_ABORTED when it was told to stop, RING_TIMEOUT,
   * RING_PEER_LOST, ROWS_TIMEOUT, GENERATION_CANCELLED, ...), `reason` in words.
   * `unreachable`: the ring never formed because this worker could not
   * connect to that rank's advertised address at all. `invalidSource`: the state the
   * source rank broadcast did not verify here (not this job's shape, a number not
   * finite, or not at the progress the coordinator chose it for).
   */
  z.object({
    type: z.literal('stopped'),
    generation,
    progress: Progress.nullable(),
    code: Code,
    reason: z.string().max(2000),
    unreachable: count.optional(),
    invalidSource: count.optional(),
  }),
  /** Rank 0's checkpoint hook: its state (libs/train's state stream) follows as transfer `state`. */
  z.object({ type: z.literal('checkpoint'), generation, reason: z.enum(['steps', 'epoch', 'end', 'stop']), state: TransferHead }),
  /** Answer to `upload`: the state follows as transfer `state`. */
  z.object({ type: z.literal('state'), generation, state: TransferHead }),
  /** Every rank, after the final evaluation: the summary and the final (best) weights; the coordinator takes rank 0's. */
  z.object({
    type: z.literal('done'),
    generation,
    result: z.object({
      history: z.array(EpochReport).max(100_000),
      bestEpoch: count,
      stoppedEarly: z.boolean(),
      steps: count,
      final: z.object({ train: MetricsShape, validation: MetricsShape.nullable(), test: MetricsShape.nullable() }),
      /** Every rank's (the all-reduced sums); null for a job without one (regression, no test or validation rows). */
      confusion: ConfusionCounts.nullable(),
    }),
    /** Rank 0 only: the final weights (float32 little-endian, the model's layout) follow as this transfer (the others' would be the same bits). */
    params: TransferHead.optional(),
  }),
  /** A graceful exit (SIGTERM): the worker finished its step and holds `progress`. */
  z.object({ type: z.literal('leave'), progress: Progress.nullable() }),
  Chunk,
  Ack,
]);
export type WorkerMessage = z.infer<typeof WorkerMessage>;

export const DatasetInfo = z.object({
  source: z.string(),
  cols: count,
  featureNames: z.array(z.string()),
  imageShape: z.object({ height: count, width: count }).optional(),
  task: z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('classification'), classes: z.array(z.string()) }),
    z.object({ kind: z.literal('regression'), target: z.string() }),
  ]),
  rows: z.object({ train: count, validation: count, test: count }),
});
export type DatasetInfo = z.infer<typeof DatasetInfo>;

export const PeerInfo = z.object({ rank: count, host: z.string().min(1).max(253), port: z.number().int().min(1).max(65535) });

const GenerationMessage = z
  .object({
    type: z.literal('generation'),
    generation,
    rank: count,
    world: z.number().int().min(1).max(0xffffffff),
    peers: z.array(PeerInfo).min(1),
    /** The rank whose state every member takes. */
    source: count,
    /** How far the source's state has got: what the coordinator chose it for. Every member checks the state it receives against it. */
    progress: Progress,
    /** When the coordinator holds the most advanced state (a fresh job, a resumed checkpoint): it follows as this transfer, to the source rank. */
    state: TransferHead.optional(),
  })
  .superRefine((m, ctx) => {
    if (m.rank >= m.world) ctx.addIssue({ code: 'custom', path: ['rank'], message: `rank ${m.rank} is not below the world ${m.world}` });
    if (m.source >= m.world) ctx.addIssue({ code: 'custom', path: ['source'], message: `source ${m.source} is not below the world ${m.world}` });
    if (m.peers.length !== m.world) ctx.addIssue({ code: 'custom', path: ['peers'], message: `${m.peers.length} peers for a world of ${m.world}` });
    const misplaced = m.peers.findIndex((p, i) => p.rank !== i);
    if (misplaced >= 0) ctx.addIssue({ code: 'custom', path: ['peers', misplaced, 'rank'], message: `peer ${misplaced} has rank ${m.peers[misplaced]!.rank}` });
  });

export const CoordinatorMessage = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('job'),
    /** PROTOCOL_VERSION of the coordinator; checked first (codec.ts). */
    protocol: u32,
    jobId: z.string().max(100),
    /** The resolved job spec; the worker validates it with libs/train's schema. */
    spec: z.record(z.string(), z.unknown()),
    dataset: DatasetInfo,
    /** The model's layer sizes and activations (libs/model's Architecture; the worker also validates it there). */
    arch: ArchitectureInfo,
    frozenLayers: z.array(count),
    loss: z.enum(['cross-entropy', 'mse']),
    heartbeatMs: z.number().int().positive(),
    /** Ring deadlines for this job. */
    ring: z.object({ opTimeoutMs: z.number().int().positive(), heartbeatTimeoutMs: z.number().int().positive(), connectTimeoutMs: z.number().int().positive() }),
  }),
  z.object({ type: z.literal('reject'), code: z.string().max(100), reason: z.string().max(2000) }),
  GenerationMessage,
  /** End the generation at the next step boundary. */
  z.object({ type: z.literal('stop'), generation, reason: z.string().max(2000) }),
  /**
   * One chunk of the answer to fetch `id`: the rows at positions offset.. of the
   * request, in its order. A request is answered in chunks of at most ROWS_CHUNK_BYTES
   * (rowsPerChunk), so that neither side holds a large answer at once; the last chunk is
   * the one that reaches the request's end.
   */
  z.object({ type: z.literal('rows'), id: count, split: Split, offset: count, indices: bytes, features: bytes, labels: bytes }),
  /** Send the state you hold (answered with `state`). */
  z.object({ type: z.literal('upload'), generation }),
  /** The job is over: exit. */
  z.object({ type: z.literal('finished'), reason: z.string().max(2000) }),
  Chunk,
  Ack,
]);
export type CoordinatorMessage = z.infer<typeof CoordinatorMessage>;

/** The most bytes of one `rows` message's payload (indices, features and labels together). */
export const ROWS_CHUNK_BYTES = 4 * 1024 * 1024;

/** Rows per `rows` chunk for a table of `cols` features: each row is its index, its features and its label, 4 bytes each. */
export function rowsPerChunk(cols: number): number {
  return Math.max(1, Math.floor(ROWS_CHUNK_BYTES / (4 * (cols + 2))));
}
