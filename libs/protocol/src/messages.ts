/**
 * The control channel between the coordinator and a worker: one WebSocket per worker,
 * each binary message one msgpack map with a `type`. It carries membership (register,
 * generation, stop), data (fetch, rows), asynchronous reports (heartbeat with metrics),
 * and state (checkpoint, state, done). Nothing on it is per step: a step needs only the
 * ring (invariant 3 of DESIGN.md). Bulk numbers travel as raw little-endian bytes.
 *
 * The schemas are the validation: decode() checks every field of every message.
 */
import { z } from 'zod';

const count = z.number().int().nonnegative();
const bytes = z.custom<Uint8Array>((v) => v instanceof Uint8Array, 'expected bytes');
const finite = z.number().finite();

export const Address = z.object({ host: z.string().min(1).max(253), port: z.number().int().min(1).max(65535) });
export type Address = z.infer<typeof Address>;

/** How far a held state has got: committed steps, then epochs recorded (validation done). */
export const Progress = z.object({ step: count, epochs: count });
export type Progress = z.infer<typeof Progress>;

export const Split = z.enum(['train', 'validation', 'test']);
export type Split = z.infer<typeof Split>;

export const StepReport = z.object({ step: count, epoch: count, loss: z.number(), samples: count });
export type StepReport = z.infer<typeof StepReport>;

/** Mean per-step times since the last heartbeat, in milliseconds. */
export const Timing = z.object({ steps: count, computeMs: finite, commMs: finite, waitMs: finite });
export type Timing = z.infer<typeof Timing>;

const MetricsShape = z.object({ loss: z.number(), accuracy: z.number().nullable() });
export const EpochReport = z.object({
  epoch: count,
  train: MetricsShape,
  validation: MetricsShape.nullable(),
  learningRate: z.number(),
  seconds: z.number(),
  samplesPerSecond: z.number(),
});
export type EpochReport = z.infer<typeof EpochReport>;

export const WorkerMessage = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('register'),
    id: z.string().min(1).max(200),
    address: Address,
    backend: z.string().max(100),
    /** The job whose state this worker holds, if any, and how far it got. */
    held: z.object({ jobId: z.string().max(100), progress: Progress }).nullable(),
    /** The newest generation this worker's ring endpoint has seen (-1: none). */
    generation: z.number().int().min(-1),
  }),
  z.object({
    type: z.literal('heartbeat'),
    generation: z.number().int().min(-1),
    /** The backend in use, once the job's first message chose it. */
    backend: z.string().max(100).optional(),
    progress: Progress.nullable(),
    timing: Timing,
    /** Rank 0 only: the steps and epochs committed since its last heartbeat. */
    steps: z.array(StepReport).max(100_000),
    epochs: z.array(EpochReport).max(10_000),
  }),
  z.object({ type: z.literal('fetch'), id: count, split: Split, indices: bytes }),
  /**
   * This worker's training loop for `generation` has ended; it holds the state at
   * `progress`. `unreachable`: the ring never formed because this worker could not
   * connect to that rank's advertised address at all.
   */
  z.object({ type: z.literal('stopped'), generation: count, progress: Progress.nullable(), reason: z.string().max(2000), unreachable: count.optional() }),
  /** Rank 0's checkpoint hook: an encoded snapshot (libs/train's codec). */
  z.object({ type: z.literal('checkpoint'), generation: count, reason: z.enum(['steps', 'epoch', 'end', 'stop']), snapshot: bytes }),
  /** Answer to `upload`. */
  z.object({ type: z.literal('state'), generation: count, snapshot: bytes }),
  /** Rank 0, after the final evaluation: the summary and the final (best) weights. */
  z.object({
    type: z.literal('done'),
    generation: count,
    result: z.object({
      history: z.array(EpochReport),
      bestEpoch: count,
      stoppedEarly: z.boolean(),
      steps: count,
      final: z.object({ train: MetricsShape, validation: MetricsShape.nullable(), test: MetricsShape.nullable() }),
    }),
    params: bytes,
  }),
  /** A graceful exit (SIGTERM): the worker finished its step and holds `progress`. */
  z.object({ type: z.literal('leave'), progress: Progress.nullable() }),
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

export const PeerInfo = z.object({ rank: count, host: z.string().min(1), port: z.number().int().min(1).max(65535) });

export const CoordinatorMessage = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('job'),
    jobId: z.string().max(100),
    /** The resolved job spec; the worker validates it with libs/train's schema. */
    spec: z.record(z.string(), z.unknown()),
    dataset: DatasetInfo,
    /** The model's layer sizes and activations (libs/model's Architecture). */
    arch: z.record(z.string(), z.unknown()),
    frozenLayers: z.array(count),
    loss: z.enum(['cross-entropy', 'mse']),
    heartbeatMs: z.number().int().positive(),
    /** Ring deadlines for this job. */
    ring: z.object({ opTimeoutMs: z.number().int().positive(), heartbeatTimeoutMs: z.number().int().positive(), connectTimeoutMs: z.number().int().positive() }),
  }),
  z.object({ type: z.literal('reject'), code: z.string().max(100), reason: z.string().max(2000) }),
  z.object({
    type: z.literal('generation'),
    generation: count,
    rank: count,
    world: z.number().int().positive(),
    peers: z.array(PeerInfo).min(1),
    /** The rank whose state every member takes. */
    source: count,
    /** When the coordinator holds the most advanced state (a fresh job, a resumed checkpoint): it, for the source rank. */
    state: bytes.optional(),
  }),
  /** End the generation at the next step boundary. */
  z.object({ type: z.literal('stop'), generation: count, reason: z.string().max(2000) }),
  z.object({ type: z.literal('rows'), id: count, split: Split, indices: bytes, features: bytes, labels: bytes }),
  /** Send the state you hold (answered with `state`). */
  z.object({ type: z.literal('upload'), generation: count }),
  /** The job is over: exit. */
  z.object({ type: z.literal('finished'), reason: z.string().max(2000) }),
]);
export type CoordinatorMessage = z.infer<typeof CoordinatorMessage>;
