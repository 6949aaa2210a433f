/**
 * The activities' inputs and results: what a workflow asks a worker to do and
 * what it hears back. Everything here is in workflow history, so it names
 * databases by alias, never by connection string, and carries no SQL text.
 */
import type { HookEvent } from '../core/hooks';
import type { ManifestEntry } from '../core/migration-set';
import type { AppliedEntry, Divergence } from '../core/plan';
import type { RiskLevel } from '../core/risk';
import type { MigrationRisk, TableContext } from '../core/risk-context';
import type { TransactionMode } from '../core/statements';
import type { Version } from '../core/version';
import type { DatabaseSurvey, DeliverWebhookInput } from './rollout';
import type { WaitHealthyInput, WaitHealthyResult, WatchBaseline, WatchReport } from './watch';
import type { ApplyResult, BackupManifest, BackupPlan, HistoryRow, HookRunRecord, Lease, LedgerChange, LedgerChangeResult, RunChanges, UndoResult } from './records';

export interface PlanInput {
  db: string;
  migrationsDir: string;
  target?: Version;
  allowOutOfOrder?: boolean;
}

export interface PendingMigration extends ManifestEntry {
  mode: TransactionMode;
  statements: number;
  /** Tables its statements lock (names only), for a `touched-tables` backup. */
  tables?: string[];
  /** Risk with context from the live database; the execution mode gates on its level. */
  risk?: MigrationRisk;
  /** Predicted short (core/risk-context.ts predictedShort): the run applies it inline, as a local activity. */
  short?: boolean;
}

export interface DatabasePlan {
  db: string;
  manifestDigest: string;
  migrationCount: number;
  baseline: Version | null;
  pending: PendingMigration[];
  applied: AppliedEntry[];
  divergent: Divergence[];
  missing: AppliedEntry[];
  outOfOrder: ManifestEntry[];
  /** Why the plan must not run; empty when it may. */
  problems: string[];
  /** What the database said about the tables the pending migrations lock. */
  tableContext?: Array<TableContext & { table: string }>;
  /** The backup a run would take before its first change, or why it takes none. */
  backup?: BackupPlan;
  /** The events the set has SQL callbacks for (migrations/hooks/); absent: none. */
  hooks?: HookEvent[];
  /** The events the worker's config has commands for (hooks.<event>); absent: none. */
  commandHooks?: Array<CommandHooksInput['event']>;
  /** A failed afterMigrate hook compensates the run's migrations (hooks.afterMigrateFailure); absent: it keeps them. */
  afterMigrateFailure?: 'compensate';
}

/** A version's risk as the run assessed it, recorded in the ledger when it is applied. */
export interface RunRisk {
  version: Version;
  level: RiskLevel;
  findings: Array<{ rule: string; level: RiskLevel; table: string | null; line: number; context: string | null; accepted: string | null }>;
}

/** Who approved the run, and when (workflow time, ms since the epoch). */
export interface RunApproval {
  by: string;
  at: number;
  note: string | null;
}

/** What the ledger records with each version a run applies. */
export interface RunRecord {
  risk?: RunRisk[];
  approval?: RunApproval;
  /** The run's backup key, or `none: <reason>`. */
  backup?: string;
}

export interface ApplyInput extends RunRecord {
  db: string;
  /** The database's size and WAL position at the run's safeguard step: what the watch measures growth and WAL from. */
  watchBaseline?: WatchBaseline;
  migrationsDir: string;
  manifestDigest: string;
  version: Version;
  /** The lease token the run holds. */
  leaseToken?: string;
}

/** Several versions: in one transaction (`applyGroup`), or one after another, each in its own (`applyMigrations`). */
export interface ApplyGroupInput extends RunRecord {
  db: string;
  /** The database's size and WAL position at the run's safeguard step: what the watch measures growth and WAL from. */
  watchBaseline?: WatchBaseline;
  migrationsDir: string;
  manifestDigest: string;
  versions: Version[];
  leaseToken?: string;
}

export interface LeaseInput {
  db: string;
  /** Who holds it: `<namespace>/<workflow id>/<run id>`. */
  holder: string;
}

export interface HeldLeaseInput {
  db: string;
  token: string;
}

export interface ChangeLedgerInput {
  db: string;
  migrationsDir: string;
  change: LedgerChange;
}

export interface BackupInput {
  db: string;
  /** Only these tables; default the whole database. */
  tables?: string[];
  /** The tables a run's pending migrations touch; used instead of the whole database when backup.scope is `touched-tables`. */
  touched?: string[];
  /** What the watch measures growth and WAL from while the backup runs. */
  watchBaseline?: WatchBaseline;
}

export interface BackupResult {
  manifest: BackupManifest;
  location: string;
  verified: { bytes: number; sha256: string };
  /** Ids of older backups deleted to keep the configured number. */
  deleted: string[];
  /** With backup.drill: where and how fast the backup was restored. */
  drill?: string;
  /** What the watch saw while the backup ran (when it lasted at least one sample). */
  watch?: WatchReport;
}

export interface RunStateInput {
  db: string;
  migrationsDir: string;
}

/** The database before a run changes it: what compensation must get back to. */
export interface RunStart {
  fingerprint: string;
  /** Invalid indexes and NOT VALID constraints that were there before (only new ones fail a run). */
  knownProblems: string[];
  /** The newest ledger row before the run's backup: rows above it are the run's own, or someone else's change after the backup. */
  ledgerHighWater?: string;
  /** The database's size and WAL position now, for the watch during the run's steps. */
  watchBaseline?: WatchBaseline;
}

export interface VerifyInput extends RunStateInput {
  knownProblems: string[];
}

export interface UndoInput {
  db: string;
  migrationsDir: string;
  manifestDigest: string;
  version: Version;
  leaseToken: string;
}

export interface RestoreInput {
  db: string;
  backupKey: string;
  leaseToken: string;
}

export interface FinishCompensationInput {
  db: string;
  /** The fingerprint before the run; the compensated database must match it. */
  fingerprint: string;
  versions: Version[];
  leaseToken: string;
}

export interface RunChangesInput {
  db: string;
  /** The ledger's high-water mark before the run's backup: later rows of other runs are reported. */
  since?: string;
}

export interface HistoryInput {
  db: string;
  last?: number;
}

export interface PlanRevertInput {
  db: string;
  migrationsDir: string;
  /** Undo every applied version above this one. */
  to?: Version;
  /** Undo the newest `steps` applied versions. */
  steps?: number;
}

/** One version `pgconvoy undo` undoes, in the order it does. */
export interface RevertStep {
  version: Version;
  description: string;
  /** The undo script, or null when there is none (the undo is refused). */
  undoFile: string | null;
  /** Its risk, for the execution mode's gate (parser only: what an undo drops). */
  risk: MigrationRisk;
}

export interface RevertPlan {
  db: string;
  manifestDigest: string;
  versionBefore: Version | null;
  /** The version the database is at after the undo (null: none applied). */
  versionAfter: Version | null;
  steps: RevertStep[];
  /** What the schema's fingerprint must be after the undo: the ledger's record after `versionAfter`, or before the first undone version. */
  expectedFingerprint: string | null;
  /** Why the undo must not run; empty when it may. */
  problems: string[];
  backup?: BackupPlan;
}

export interface RevertVersionInput {
  db: string;
  migrationsDir: string;
  manifestDigest: string;
  version: Version;
  leaseToken: string;
}

export interface ProveRevertInput {
  db: string;
  expectedFingerprint: string;
  versionAfter: Version | null;
}

export interface FinishRevertCompensationInput {
  db: string;
  /** The fingerprint before the undo; the restored database must match it. */
  fingerprint: string;
  leaseToken: string;
}

export interface CompareSchemasInput {
  db: string;
  /** The database whose schema `db` should have. */
  reference: string;
  limit?: number;
}

export interface RunHooksInput {
  db: string;
  migrationsDir: string;
  /** The set the run planned with: hook files changed since are refused. */
  manifestDigest: string;
  event: HookEvent;
  leaseToken?: string;
}

export interface CommandHooksInput {
  db: string;
  event: 'beforeMigrate' | 'afterMigrate' | 'afterMigrateError';
  /** The run's facts, given to the commands as PGCONVOY_* variables. */
  facts: { workflowId: string; versionBefore: Version | null; versionAfter: Version | null; pending: number; outcome: string | null; error: string | null };
}

/** What one command hook did: its exit code and the last 4 KiB of its output. */
export interface CommandHookRun {
  run: string;
  exitCode: number | null;
  durationMs: number;
  output: string;
}

/** The worker's activities, as workflows call them (src/activities implements them). */
export interface Activities {
  planDatabase(input: PlanInput): Promise<DatabasePlan>;
  applyMigration(input: ApplyInput): Promise<ApplyResult>;
  applyGroup(input: ApplyGroupInput): Promise<ApplyResult[]>;
  applyMigrations(input: ApplyGroupInput): Promise<ApplyResult[]>;
  changeLedger(input: ChangeLedgerInput): Promise<LedgerChangeResult>;
  acquireLease(input: LeaseInput): Promise<Lease>;
  holdLease(input: HeldLeaseInput): Promise<void>;
  releaseLease(input: HeldLeaseInput): Promise<boolean>;
  takeBackup(input: BackupInput): Promise<BackupResult>;
  beginRun(input: RunStateInput): Promise<RunStart>;
  waitHealthy(input: WaitHealthyInput): Promise<WaitHealthyResult>;
  verifyRun(input: VerifyInput): Promise<{ fingerprint: string }>;
  undoMigration(input: UndoInput): Promise<UndoResult>;
  restoreFromBackup(input: RestoreInput): Promise<void>;
  finishCompensation(input: FinishCompensationInput): Promise<{ rolledBack: Version[] }>;
  runChanges(input: RunChangesInput): Promise<RunChanges>;
  readHistory(input: HistoryInput): Promise<HistoryRow[]>;
  planRevert(input: PlanRevertInput): Promise<RevertPlan>;
  revertVersion(input: RevertVersionInput): Promise<UndoResult>;
  proveRevert(input: ProveRevertInput): Promise<{ fingerprint: string }>;
  finishRevertCompensation(input: FinishRevertCompensationInput): Promise<{ reapplied: Version[] }>;
  surveyDatabase(input: PlanInput): Promise<DatabaseSurvey>;
  compareSchemas(input: CompareSchemasInput): Promise<{ differences: string[]; total: number }>;
  deliverWebhook(input: DeliverWebhookInput): Promise<{ status: 'delivered' | 'not-subscribed'; httpStatus?: number }>;
  runHooks(input: RunHooksInput): Promise<HookRunRecord[]>;
  runCommandHooks(input: CommandHooksInput): Promise<CommandHookRun[]>;
}
