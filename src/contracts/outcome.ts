/**
 * How a run of one database ends, as data: every run that gets as far as
 * planning ends in exactly one of these, returned (up-to-date, dry-run,
 * applied, cancelled) or carried by the failure it fails with (halted,
 * compensated, compensation-failed, approval-timed-out), so a failed run
 * still shows as failed in the Temporal UI. `outcomeOf` reads it back from
 * either, for the CLI and for a parent workflow alike.
 */
import type { Version } from '../core/version';
import type { PendingMigration } from './activities';
import type { BackupPlan } from './records';
import type { AppliedStep, RunBackup } from './run';

/** What became of one pending migration; pre-filled `not-run`, as a migrator pre-fills its result set. */
export interface MigrationResult {
  version: Version;
  description: string;
  status: 'applied' | 'skipped' | 'failed' | 'not-run';
  durationMs?: number;
}

/** Why a run failed, parsed once: the type from src/contracts/errors.ts and, for a migration's SQL, where and what PostgreSQL said. */
export interface RunFailure {
  type: string;
  message: string;
  file?: string;
  version?: Version;
  statement?: number;
  statementsDone?: number;
  statementsTotal?: number;
  mode?: string;
  line?: number;
  column?: number;
  sqlstate?: string | null;
  detail?: string | null;
  hint?: string | null;
}

/** What the run made sure of before its first change: the backup (or the decision not to take one) and the schema's fingerprint. */
export interface Safeguard {
  backup: RunBackup;
  fingerprintBefore: string;
}

export interface OutcomeBase {
  db: string;
  workflowId: string;
  /** null: no run was started (an embedded `up` with nothing to do answers from the ledger, client/local-read.ts). */
  runId: string | null;
  /** The set the run planned with; null when it failed before planning. */
  manifestDigest: string | null;
  versionBefore: Version | null;
  /** As the ledger says after the run. */
  versionAfter: Version | null;
  migrations: MigrationResult[];
  safeguard?: Safeguard;
  /** The schema's fingerprint after a verified run. */
  fingerprintAfter?: string;
  /** Kept from earlier result shapes: the highest applied version after the run, and the steps applied. */
  version: Version | null;
  applied: AppliedStep[];
}

export type UpToDate = OutcomeBase & { status: 'up-to-date' };
export type DryRun = OutcomeBase & { status: 'dry-run'; pending: PendingMigration[]; backup?: BackupPlan };
export type Applied = OutcomeBase & { status: 'applied'; version: Version; approvedBy?: string; backup: RunBackup };
export type Cancelled = OutcomeBase & { status: 'cancelled'; cancelledBy: string; reason: string | null };
/** Stopped at a failure and left the database as the ledger says: policy `halt`, a failure before any change, or nothing of the run to put back. */
export type Halted = OutcomeBase & { status: 'halted'; failure: RunFailure };
export type Compensated = OutcomeBase & { status: 'compensated'; failure: RunFailure; compensation: 'undo' | 'restore' | 'undo-then-restore'; rolledBack: Version[] };
export type CompensationFailed = OutcomeBase & { status: 'compensation-failed'; failure: RunFailure; compensation: 'none' | 'undo' | 'restore' | 'undo-then-restore' };
export type ApprovalTimedOut = OutcomeBase & { status: 'approval-timed-out'; failure: RunFailure };

export type RunOutcome = UpToDate | DryRun | Applied | Cancelled | Halted | Compensated | CompensationFailed | ApprovalTimedOut;
/** The outcomes a run returns; the others come with its failure. */
export type ReturnedOutcome = UpToDate | DryRun | Applied | Cancelled;
export type FailedOutcome = Halted | Compensated | CompensationFailed | ApprovalTimedOut;

export const outcomeStatuses: ReadonlyArray<RunOutcome['status']> = ['up-to-date', 'dry-run', 'applied', 'cancelled', 'halted', 'compensated', 'compensation-failed', 'approval-timed-out'];

const isOutcome = (value: unknown): value is RunOutcome =>
  typeof value === 'object' && value !== null && outcomeStatuses.includes((value as { status?: string }).status as RunOutcome['status']) && typeof (value as { db?: unknown }).db === 'string';

/**
 * The outcome of a run from what its workflow ended with: the result it
 * returned, or the failure it failed with (found through the chain of
 * causes: a workflow failure, a child workflow failure, the application
 * failure whose details carry it). Undefined for anything else (a
 * run that never started, a terminated workflow).
 */
export function outcomeOf(ended: unknown): RunOutcome | undefined {
  if (isOutcome(ended)) return ended;
  for (let current: unknown = ended; typeof current === 'object' && current !== null; current = (current as { cause?: unknown }).cause) {
    const details = (current as { details?: unknown }).details;
    for (const detail of Array.isArray(details) ? (details as unknown[]) : []) {
      const carried = typeof detail === 'object' && detail !== null ? (detail as { outcome?: unknown }).outcome : undefined;
      if (isOutcome(carried)) return carried;
    }
  }
  return undefined;
}
