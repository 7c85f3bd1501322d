/**
 * The job spec: the YAML a user writes, validated in full before anything runs. Every
 * problem is reported at once, each naming its field path and what was expected.
 * Unknown keys are errors, so a typo ("epoch:" for "epochs:") cannot be silently
 * ignored. Defaults are filled in here, so the resolved spec written next to a model
 * says exactly what ran.
 */
import { readFile } from 'node:fs/promises';
import { parseDocument, stringify } from 'yaml';
import { z } from 'zod';
import { BACKEND_NAMES } from '@ringtrain/model';
import { TrainError } from './errors.js';

const fraction = z.number().min(0).lt(1);
const positiveInt = z.number().int().positive();
const nonNegativeInt = z.number().int().nonnegative();
const seed = z.number().int().min(0).max(0xffffffff);

const warmup = { warmupSteps: nonNegativeInt.optional() };
const scheduleSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('constant'), ...warmup }),
  z.strictObject({ kind: z.literal('step'), everyEpochs: positiveInt, factor: z.number().positive(), ...warmup }),
  z.strictObject({ kind: z.literal('cosine'), minLearningRate: z.number().nonnegative().optional(), ...warmup }),
]);

const learning = {
  learningRate: z.number().positive().default(0.001),
  schedule: scheduleSchema.default({ kind: 'constant' }),
};
const optimizerUnion = z.discriminatedUnion('name', [
  z.strictObject({
    name: z.literal('sgd'),
    ...learning,
    momentum: z.number().min(0).lt(1).default(0),
    nesterov: z.boolean().default(false),
  }),
  z.strictObject({
    name: z.literal('adam'),
    ...learning,
    beta1: fraction.default(0.9),
    beta2: fraction.default(0.999),
    epsilon: z.number().positive().default(1e-7),
  }),
]);
/** An optimizer without a name is Adam. */
const optimizerSchema = z.preprocess(
  (v) => (typeof v === 'object' && v !== null && !('name' in v) ? { name: 'adam', ...v } : v),
  optimizerUnion,
);

const hiddenSchema = z.strictObject({
  units: positiveInt,
  activation: z.enum(['relu', 'tanh', 'sigmoid', 'linear']).default('relu'),
  dropout: fraction.default(0),
});

export const jobSpecSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'lowercase letters, digits and "-", at most 63 (a Kubernetes name)'),
  data: z.strictObject({
    source: z.string().min(1),
    label: z.string().min(1).optional(),
    /**
     * csv: sources only. false: no header, the columns are c0, c1, ...; true: the first row
     * names the columns even if they are numbers; left out: a header, unless it is numbers.
     */
    header: z.boolean().optional(),
    task: z.enum(['classification', 'regression']).optional(),
    /** Keep only these classes, in this order (e.g. ["0", "1"] of an IDX source). */
    classes: z.array(z.string().min(1)).min(2).optional(),
    split: z
      .strictObject({ validation: fraction.default(0.1), test: fraction.default(0.1), seed: seed.default(0) })
      .default({ validation: 0.1, test: 0.1, seed: 0 }),
    normalize: z.enum(['standardize', 'minmax', 'none']).default('standardize'),
    augment: z
      .strictObject({ noise: z.number().nonnegative().default(0), shift: nonNegativeInt.default(0) })
      .default({ noise: 0, shift: 0 }),
  }),
  model: z
    .strictObject({
      hidden: z.array(hiddenSchema).default([]),
      l2: z.number().nonnegative().default(0),
    })
    .prefault({}),
  training: z
    .strictObject({
    /** Default: cross-entropy for classification, mse for regression. */
    loss: z.enum(['cross-entropy', 'mse']).optional(),
    optimizer: optimizerSchema.prefault({}),
    batchSize: positiveInt.default(32),
    /**
     * How a step's gradients are summed across workers: `exact`, as integers, the same
     * bits for any number of workers (exact-sum.ts); `fast`, in float32 in the ring's order.
     */
    reduction: z.enum(['exact', 'fast']).default('fast'),
    /** Rows per micro-batch of the exact reduction (a step's unit of work); default: the batch cut into 16. */
    microBatch: positiveInt.optional(),
    epochs: positiveInt.default(10),
    seed: seed.default(0),
    earlyStopping: z
      .strictObject({ patience: positiveInt, minDelta: z.number().nonnegative().default(0) })
      .optional(),
    backend: z.enum(BACKEND_NAMES as ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu']).default('auto'),
  })
    .prefault({}),
  checkpoint: z
    .strictObject({
      everySteps: nonNegativeInt.default(0),
      everyEpoch: z.boolean().default(true),
      keep: positiveInt.default(3),
      keepBest: z.boolean().default(true),
    })
    .default({ everySteps: 0, everyEpoch: true, keep: 3, keepBest: true }),
  /** How a cluster runs this job (`ringtrain coordinator`, `ringtrain local`); `ringtrain train` ignores it. */
  cluster: z
    .strictObject({
      /** Training starts, and goes on, only with at least this many workers. */
      minWorkers: positiveInt.default(1),
      /** The first generation waits for this many workers (later ones need minWorkers); default minWorkers. */
      startWorkers: positiveInt.optional(),
      /** More workers than this are refused (WORKER_LIMIT). */
      maxWorkers: positiveInt.default(64),
      /** How often workers report to the coordinator. */
      heartbeatMs: positiveInt.default(1000),
      /** A worker silent this long is lost; must exceed the longest step. */
      heartbeatTimeoutMs: positiveInt.default(10_000),
      /** How long a stopping generation's members have to report their state. */
      stopTimeoutMs: positiveInt.default(15_000),
      /** Deadline of one ring operation (a step's all-reduce, a state broadcast). */
      ringOpTimeoutMs: positiveInt.default(60_000),
      /** A ring neighbour silent this long is lost (kill -9 closes its socket at once; this catches a stall or a partition). */
      ringHeartbeatTimeoutMs: positiveInt.default(5_000),
      /** Generations failed for one reason with no checkpoint between them that stop the job (GENERATION_LIVELOCK); 0: never. */
      maxFailedGenerations: nonNegativeInt.default(5),
    })
    .prefault({}),
  init: z
    .strictObject({
      /** A run directory, a checkpoint directory, a model directory or a model.json. */
      from: z.string().min(1),
      /** Layers to keep fixed: indices of the dense layers (0 = first) or their names. */
      freeze: z.array(z.union([nonNegativeInt, z.string().min(1)])).default([]),
      /** A new output layer for this job's classes or target, instead of the source model's. */
      replaceHead: z.boolean().default(false),
    })
    .optional(),
});

export type JobSpec = z.infer<typeof jobSpecSchema>;

function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  return s && s.length > 40 ? `${s.slice(0, 37)}...` : String(s);
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v = root;
  for (const key of path) v = v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[key] : undefined;
  return v;
}

/** Validates a parsed document; `where` names it in messages (usually the file path). */
export function validateJobSpec(raw: unknown, where = 'job spec'): JobSpec {
  const result = jobSpecSchema.safeParse(raw);
  if (!result.success) {
    const issues = result.error.issues.map((issue) => {
      const path = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '');
      const got = issue.code === 'unrecognized_keys' ? '' : ` (got ${describeValue(valueAt(raw, issue.path))})`;
      return `${path || '(top level)'}: ${issue.message}${got}`;
    });
    throw new TrainError('SPEC_INVALID', `${where} is invalid:\n  ${issues.join('\n  ')}`, issues);
  }
  const spec = result.data;
  if (spec.training.earlyStopping && spec.data.split.validation === 0) {
    const issue = 'training.earlyStopping: needs a validation split (data.split.validation > 0)';
    throw new TrainError('SPEC_INVALID', `${where} is invalid:\n  ${issue}`, [issue]);
  }
  if (spec.init && spec.model.hidden.length > 0) {
    const issue = 'model.hidden: must be left out with init (the layers come from init.from)';
    throw new TrainError('SPEC_INVALID', `${where} is invalid:\n  ${issue}`, [issue]);
  }
  if (spec.data.header !== undefined && !spec.data.source.startsWith('csv:')) {
    const issue = `data.header: only a csv: source has a header setting; drop it for ${spec.data.source} (got ${spec.data.header})`;
    throw new TrainError('SPEC_INVALID', `${where} is invalid:\n  ${issue}`, [issue]);
  }
  if (spec.training.microBatch !== undefined && spec.training.reduction !== 'exact') {
    const issue = `training.microBatch: micro-batches belong to the exact reduction; add training.reduction: exact, or drop it (got ${spec.training.microBatch})`;
    throw new TrainError('SPEC_INVALID', `${where} is invalid:\n  ${issue}`, [issue]);
  }
  if (spec.data.split.validation + spec.data.split.test >= 1) {
    const issue = `data.split: validation + test must leave rows for training (got ${spec.data.split.validation} + ${spec.data.split.test})`;
    throw new TrainError('SPEC_INVALID', `${where} is invalid:\n  ${issue}`, [issue]);
  }
  return spec;
}

export function parseJobSpec(text: string, where = 'job spec'): JobSpec {
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    const issues = doc.errors.map((e) => e.message);
    throw new TrainError('SPEC_YAML_INVALID', `${where} is not valid YAML:\n  ${issues.join('\n  ')}`, issues);
  }
  return validateJobSpec(doc.toJS(), where);
}

export async function loadJobSpec(path: string): Promise<JobSpec> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new TrainError('SPEC_FILE_MISSING', `${path}: cannot read the job spec (${(err as NodeJS.ErrnoException).code ?? String(err)})`, [], {
      cause: err,
    });
  }
  return parseJobSpec(text, path);
}

export function jobSpecToYaml(spec: JobSpec): string {
  return stringify(spec);
}
