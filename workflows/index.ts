export { investigation, statusQuery } from './investigation';
