export { investigation } from './investigation';
export { task } from './task';
