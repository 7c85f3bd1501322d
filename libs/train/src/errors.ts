/** Errors raised by libs/train. */
export type TrainErrorCode =
  | 'SPEC_INVALID'
  | 'SPEC_FILE_MISSING'
  | 'SPEC_YAML_INVALID'
  | 'CHECKPOINT_CORRUPT'
  | 'CHECKPOINT_NONE'
  | 'RESUME_MISMATCH'
  | 'INIT_INVALID'
  | 'SNAPSHOT_INVALID';

export class TrainError extends Error {
  override readonly name = 'TrainError';
  constructor(
    readonly code: TrainErrorCode,
    message: string,
    /** Every problem found, e.g. for SPEC_INVALID each as "field.path: what was expected". */
    readonly issues: readonly string[] = [],
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
