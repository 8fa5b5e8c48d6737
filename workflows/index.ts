export { investigation } from './investigation';
export { task } from './task';
export { compliance } from './compliance';
