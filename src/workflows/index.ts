export { migrateDatabase } from './migrate-database';
export { inspectDatabase } from './inspect-database';
export { changeLedger } from './change-ledger';
export { backupDatabase } from './backup-database';
export { revertDatabase } from './revert-database';
export { rollout } from './rollout/rollout';
export { deliverNotification } from './run-notify';
