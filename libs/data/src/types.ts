/**
 * The data contract shared by every part of ringtrain. A dataset lives in memory as
 * one row-major Float32Array of features plus one label array; splits and batches
 * are index lists into it, so nothing is copied until a batch is gathered.
 */

/** What the labels mean. Classification labels are class indices into `classes`. */
export type Task =
  | { readonly kind: 'classification'; readonly classes: readonly string[] }
  | { readonly kind: 'regression'; readonly target: string };

export interface Table {
  /** rows x cols, row-major. */
  readonly features: Float32Array;
  readonly rows: number;
  readonly cols: number;
  readonly featureNames: readonly string[];
  /** Class index per row (classification) or target value per row (regression). */
  readonly labels: Int32Array | Float32Array;
  readonly task: Task;
  /** Set for image data (IDX): cols === height * width. Enables shift augmentation. */
  readonly imageShape?: { readonly height: number; readonly width: number };
}

/**
 * What a CSV source's label column holds, which is what decides its task (see csv.ts).
 * Reported so that a job can say why it trains a classifier, or why it cannot.
 */
export interface LabelColumn {
  readonly name: string;
  /** The file it was read from. */
  readonly file: string;
  readonly values:
    | { readonly kind: 'text' }
    | { readonly kind: 'integers' }
    /** Numbers, not all integers: the first that is not one, and its 1-based line. */
    | { readonly kind: 'numbers'; readonly nonInteger: string; readonly line: number };
}

export type NormalizeMethod = 'standardize' | 'minmax' | 'none';

/** Per-column statistics from the training split only; saved with the model. */
export type NormStats =
  | { readonly method: 'none'; readonly cols: number }
  | { readonly method: 'standardize'; readonly mean: readonly number[]; readonly std: readonly number[] }
  | { readonly method: 'minmax'; readonly min: readonly number[]; readonly max: readonly number[] };

export interface SplitSpec {
  /** Fraction of the rows held out for validation, 0 <= v < 1. */
  readonly validation: number;
  /** Fraction held out for test; ignored when the source has its own test split (IDX). */
  readonly test: number;
  readonly seed: number;
}

export interface AugmentSpec {
  /** Standard deviation of Gaussian noise added to every (normalized) input; 0 = off. */
  readonly noise?: number;
  /** Random shift of image inputs by up to this many pixels in x and y; 0 = off. */
  readonly shift?: number;
}

/** Everything training needs: the three splits, normalized, and the statistics used. */
export interface PreparedDataset {
  readonly train: Table;
  readonly validation: Table;
  readonly test: Table;
  readonly normalizer: NormStats;
  readonly task: Task;
  /** The source string it came from, for logs and checkpoints. */
  readonly source: string;
  /** The label column of a CSV source (csv:, builtin:), and what its values are. */
  readonly labelColumn?: LabelColumn;
}
