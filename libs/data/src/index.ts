export * from './types.js';
export * from './random.js';
