/** Errors raised by libs/model. Each carries a stable code that tests and docs use. */
export type ModelErrorCode =
  | 'MODEL_BACKEND_UNAVAILABLE'
  | 'MODEL_SPEC_INVALID'
  | 'MODEL_SHAPE_MISMATCH'
  | 'MODEL_FILE_MISSING'
  | 'MODEL_FILE_INVALID'
  | 'MODEL_STATE_INVALID';

export class ModelError extends Error {
  override readonly name = 'ModelError';
  constructor(
    readonly code: ModelErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
