export { createActivities, type Activities, type ActivityDeps, type DatabasePlan, type PlanInput, type ApplyInput } from './create-activities';
export type { HistoryRow } from '../db/ledger';
export type { ApplyResult } from '../db/apply';
