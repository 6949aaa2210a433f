export { migrateDatabase } from './migrate-database';
export { inspectDatabase } from './inspect-database';
