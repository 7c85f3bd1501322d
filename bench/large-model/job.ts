/**
 * The models bench/large-model trains and the job spec it writes for each: an MLP on
 * synthetic data (784 features, 10 classes), batch 256, Adam, one epoch of exactly
 * `steps` full batches, early stopping on (so the end checkpoint holds best weights) and
 * a checkpoint every 2 steps.
 */
import { paramLayout } from '@ringtrain/model';

export const FEATURES = 784;
export const CLASSES = 10;
export const BATCH = 256;
export const CHECKPOINT_EVERY = 2;
const SPLIT = { validation: 0.05, test: 0.05, seed: 1 };

export interface ModelSize {
  /** What --sizes names it by. */
  readonly key: string;
  readonly label: string;
  readonly hidden: readonly number[];
}

/** 5.8M and 107M as issue 15 gives them; 784-4096-4096-1792-10 is 27.4M (784-4096-4096-2048-10 would be 28.4M). */
export const SIZES: readonly ModelSize[] = [
  { key: '5.8', label: '5.8M', hidden: [2048, 2048] },
  { key: '27', label: '27M', hidden: [4096, 4096, 1792] },
  { key: '107', label: '107M', hidden: [8192, 8192, 4096] },
];

export function parameterCount(size: ModelSize): number {
  const hidden = size.hidden.map((units) => ({ units, activation: 'relu' as const, dropout: 0 }));
  return paramLayout({ inputs: FEATURES, hidden, outputs: CLASSES, output: 'softmax' }).size;
}

export const layers = (size: ModelSize): string => [FEATURES, ...size.hidden, CLASSES].join('-');

/** The most rows whose training split (what is left after round(5%) validation and round(5%) test) is at most `steps` full batches. */
export function rowsFor(steps: number): number {
  const trainRows = (n: number): number => n - Math.round(n * SPLIT.validation) - Math.round(n * SPLIT.test);
  let n = Math.ceil((steps * BATCH) / (1 - SPLIT.validation - SPLIT.test)) + 20;
  while (trainRows(n) > steps * BATCH) n -= 1;
  return n;
}

export function jobSpec(size: ModelSize, steps: number): object {
  return {
    name: `large-model-${size.label.toLowerCase().replace('.', '-')}`,
    data: { source: `synthetic:rows=${rowsFor(steps)},features=${FEATURES},classes=${CLASSES},seed=1`, split: SPLIT },
    model: { hidden: size.hidden.map((units) => ({ units, activation: 'relu' })) },
    training: {
      optimizer: { name: 'adam', learningRate: 0.001 },
      batchSize: BATCH,
      epochs: 1,
      seed: 1,
      earlyStopping: { patience: 3 },
      backend: 'wasm',
    },
    checkpoint: { everySteps: CHECKPOINT_EVERY, keep: 2 },
    // Deadlines far past the defaults: a 107M step on a small machine can outlast the
    // 10 s heartbeat timeout (a worker's event loop is busy for the whole step). They
    // change no cost measured here, only what counts as a lost worker.
    cluster: { heartbeatTimeoutMs: 300_000, stopTimeoutMs: 300_000, ringOpTimeoutMs: 600_000, ringHeartbeatTimeoutMs: 300_000 },
  };
}
