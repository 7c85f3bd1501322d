export * from './membership.js';
export * from './status.js';
export { JobRuntime, type Outcome, type RuntimeOptions } from './runtime.js';
export { startServer, bearerMatches, type CoordinatorServer, type ServerOptions } from './server.js';
export { prometheusText } from './prometheus.js';
