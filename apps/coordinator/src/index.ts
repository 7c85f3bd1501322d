export * from './membership.js';
