/** The job bench/scaling trains: examples/fashion-mnist.yaml's MLP with the bench's batch size and epochs, no early stopping or per-epoch checkpoints. */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

export function fashionMnistDir(): string {
  const dir = [resolve(repoRoot, '../shared/data/fashion-mnist'), '/usr/share/datasets/fashion-mnist'].find((d) => existsSync(d));
  if (!dir) throw new Error('Fashion-MNIST not found in ../shared/data/fashion-mnist or /usr/share/datasets/fashion-mnist');
  return dir;
}

export interface BenchJob {
  readonly batchSize: number;
  readonly epochs: number;
  readonly dataDir: string;
  readonly backend?: string | undefined;
  /** training.reduction (default the spec's own, fast). */
  readonly reduction?: 'fast' | 'exact';
}

export function jobSpec(job: BenchJob): object {
  return {
    name: 'fashion-mnist-scaling',
    data: { source: `idx:${job.dataDir}`, split: { validation: 0.1, seed: 1 }, normalize: 'minmax' },
    model: {
      hidden: [
        { units: 512, activation: 'relu', dropout: 0.2 },
        { units: 256, activation: 'relu', dropout: 0.2 },
      ],
      l2: 0,
    },
    training: {
      loss: 'cross-entropy',
      optimizer: { name: 'adam', learningRate: 0.001, schedule: { kind: 'cosine', minLearningRate: 0.00002 } },
      batchSize: job.batchSize,
      epochs: job.epochs,
      seed: 1,
      ...(job.backend ? { backend: job.backend } : {}),
      ...(job.reduction ? { reduction: job.reduction } : {}),
    },
    checkpoint: { everyEpoch: false },
  };
}
