export * from './membership.js';
export * from './status.js';
export { JobRuntime, type Outcome, type RuntimeOptions } from './runtime.js';
export { COORDINATOR_ERROR_CODES, CoordinatorError, type CoordinatorErrorCode } from './errors.js';
export { startServer, bearerMatches, type CoordinatorServer, type ServerOptions } from './server.js';
export { prometheusText } from './prometheus.js';
export type { ServerTls } from './web-server.js';
export { REPORT_FILE, reportHtml, writeReport } from './report.js';
export { type Confusion, confusionOf, type GenerationMark, type ReportData, reportData, type ReportInput } from './report-data.js';
