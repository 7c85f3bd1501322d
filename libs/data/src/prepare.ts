/**
 * The one call a training job makes for its data: load the source, split it, fit the
 * normalizer on the training rows only, and normalize all three splits with it.
 */
import { selectClasses } from './classes.js';
import { applyNormalizer, fitNormalizer } from './normalize.js';
import { type LoadOptions, loadSource } from './source.js';
import { splitTables } from './split.js';
import type { NormalizeMethod, NormStats, PreparedDataset, SplitSpec } from './types.js';

export interface PrepareOptions extends LoadOptions {
  readonly source: string;
  readonly split: SplitSpec;
  readonly normalize: NormalizeMethod;
  /**
   * Statistics to use instead of fitting them: a fine-tuned model whose early layers
   * stay frozen must see its inputs scaled as when those layers were trained.
   */
  readonly normalizer?: NormStats;
  /** Keep only these classes (classification), relabelled in this order. */
  readonly classes?: readonly string[];
}

export async function prepareDataset(options: PrepareOptions): Promise<PreparedDataset> {
  const { source, split, normalize, label, task, baseDir, integerClasses, header } = options;
  const loaded = await loadSource(source, { label, task, baseDir, integerClasses, header });
  const chosen = options.classes;
  const selected = chosen
    ? { train: selectClasses(loaded.train, chosen, source), ...(loaded.test ? { test: selectClasses(loaded.test, chosen, source) } : {}) }
    : loaded;
  const parts = splitTables(selected, split);
  const normalizer = options.normalizer ?? fitNormalizer(parts.train, normalize);
  return {
    train: applyNormalizer(normalizer, parts.train),
    validation: applyNormalizer(normalizer, parts.validation),
    test: applyNormalizer(normalizer, parts.test),
    normalizer,
    task: parts.train.task,
    source,
    ...(loaded.labelColumn ? { labelColumn: loaded.labelColumn } : {}),
  };
}
