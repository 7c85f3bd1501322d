export * from './errors.js';
export * from './spec.js';
export * from './tensors.js';
export * from './trainer.js';
export * from './output.js';
export * from './checkpoint.js';
export * from './resume.js';
export * from './init.js';
