/**
 * Every failure in libs/data is a DataError with a stable `code` that tests, the CLI
 * and docs/data.md agree on. The message says where (file, 1-based line, column) and
 * what was expected, so an operator can fix the input without reading this code.
 */

export type DataErrorCode =
  /** The file or directory named by a source does not exist. */
  | 'DATA_FILE_MISSING'
  /** The file exists but cannot be read (a directory where a file was expected, permissions). */
  | 'DATA_FILE_UNREADABLE'
  /** The file has no bytes, only whitespace, or a header and no data rows. */
  | 'DATA_FILE_EMPTY'
  /** A CSV header is unusable: duplicate or empty column names, no feature column. */
  | 'DATA_HEADER_INVALID'
  /** A CSV row has a different number of fields than the header. */
  | 'DATA_RAGGED_ROW'
  /** A feature (or regression target) field is not a finite decimal number. */
  | 'DATA_NOT_NUMERIC'
  /** A field is empty where a value is required. */
  | 'DATA_MISSING_VALUE'
  /** The label column named in the options is not in the header. */
  | 'DATA_UNKNOWN_LABEL'
  /** An IDX file does not start with the expected magic number. */
  | 'DATA_IDX_MAGIC'
  /** An IDX file's dimensions disagree with its length, or train and test images differ in shape. */
  | 'DATA_IDX_SHAPE'
  /** A file starts with the gzip magic but does not decompress. */
  | 'DATA_GZIP_INVALID'
  /** Image and label files hold different numbers of items. */
  | 'DATA_COUNT_MISMATCH'
  /** A class named in the `classes` option does not occur in the data, or the data is not classification. */
  | 'DATA_CLASS_UNKNOWN'
  /** The source string or its options cannot be understood. */
  | 'DATA_SOURCE_INVALID'
  /** Split fractions are out of range or leave no training rows. */
  | 'DATA_SPLIT_INVALID'
  /** Normalization statistics are malformed or do not fit the table. */
  | 'DATA_NORMALIZE_INVALID'
  /** An augmentation spec is out of range, or asks for shift without image data. */
  | 'DATA_AUGMENT_INVALID'
  /** A pure function got an argument outside its domain (batch size, rank, index, label). */
  | 'DATA_ARGUMENT_INVALID';

export interface DataErrorDetails {
  /** The file (absolute path) the problem is in. */
  readonly file?: string;
  /** 1-based line number in a CSV file. */
  readonly row?: number;
  /** The column's name from the header. */
  readonly column?: string;
  readonly cause?: unknown;
}

export class DataError extends Error {
  override readonly name = 'DataError';
  readonly code: DataErrorCode;
  readonly file?: string;
  readonly row?: number;
  readonly column?: string;

  constructor(code: DataErrorCode, message: string, details: DataErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    // Assign only what is known, so that `'row' in err` and deepEqual stay meaningful.
    if (details.file !== undefined) this.file = details.file;
    if (details.row !== undefined) this.row = details.row;
    if (details.column !== undefined) this.column = details.column;
  }
}

/** Throws DATA_ARGUMENT_INVALID unless `value` is an integer in [min, max]. */
export function checkInt(name: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`;
    throw new DataError('DATA_ARGUMENT_INVALID', `${name} must be an integer ${range}, got ${value}`);
  }
}
