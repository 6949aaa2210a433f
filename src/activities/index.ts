export {
  createActivities,
  type Activities,
  type ActivityDeps,
  type DatabasePlan,
  type BackupPlan,
  type PendingMigration,
  type PlanInput,
  type ApplyInput,
  type ApplyGroupInput,
  type RunRisk,
  type RunApproval,
  type ChangeLedgerInput,
  type LeaseInput,
  type BackupInput,
  type RunStart,
  type BackupResult,
  type HeldLeaseInput,
} from './create-activities';
export type { HistoryRow } from '../db/ledger';
export type { ApplyResult } from '../db/execute';
export type { LedgerChange, LedgerChangeResult, LedgerSource } from '../db/ledger-admin';
export type { Lease } from '../db/lease';
