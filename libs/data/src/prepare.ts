/**
 * The one call a training job makes for its data: load the source, split it, fit the
 * normalizer on the training rows only, and normalize all three splits with it.
 */
import { applyNormalizer, fitNormalizer } from './normalize.js';
import { type LoadOptions, loadSource } from './source.js';
import { splitTables } from './split.js';
import type { NormalizeMethod, PreparedDataset, SplitSpec } from './types.js';

export interface PrepareOptions extends LoadOptions {
  readonly source: string;
  readonly split: SplitSpec;
  readonly normalize: NormalizeMethod;
}

export async function prepareDataset(options: PrepareOptions): Promise<PreparedDataset> {
  const { source, split, normalize, label, task, baseDir } = options;
  const loaded = await loadSource(source, { label, task, baseDir });
  const parts = splitTables(loaded, split);
  const normalizer = fitNormalizer(parts.train, normalize);
  return {
    train: applyNormalizer(normalizer, parts.train),
    validation: applyNormalizer(normalizer, parts.validation),
    test: applyNormalizer(normalizer, parts.test),
    normalizer,
    task: parts.train.task,
    source,
  };
}
