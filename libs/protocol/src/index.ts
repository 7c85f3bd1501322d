export * from './messages.js';
export * from './job-limits.js';
export * from './codec.js';
export * from './transfer.js';
export * from './exit-codes.js';
