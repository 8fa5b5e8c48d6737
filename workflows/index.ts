export { investigation } from './investigation';
