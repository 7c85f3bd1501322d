export { ringCollective } from './ring-collective.js';
