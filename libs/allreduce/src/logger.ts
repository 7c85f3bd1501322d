/**
 * The logger the library accepts: any pino-compatible object. The library never
 * creates one; without it nothing is logged.
 */
export interface RingLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): RingLogger;
}

const noop = (): void => {};

export const silentLogger: RingLogger = {
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
  child: () => silentLogger,
};
