export { ringCollective } from './ring-collective.js';
export { TrainingWorker, type WorkerOptions } from './worker.js';
