export { ringCollective } from './ring-collective.js';
export { TrainingWorker, type WorkerOptions } from './worker.js';
export { broadcastState } from './state-sync.js';
export { planOf } from './job.js';
