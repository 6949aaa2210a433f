/**
 * A run of one database, as the workflow, a parent workflow and the client
 * see it: the input that starts it, the progress it reports, the messages it
 * takes and the result it ends with.
 */
import type { RiskLevel } from '../core/risk';
import type { Version } from '../core/version';
import type { DatabasePlan, PendingMigration } from './activities';
import type { ReturnedOutcome } from './outcome';
import type { BackupPlan, HistoryRow } from './records';
import type { GuardCrossing, WatchSample } from './watch';

export type Phase =
  | 'planning'
  | 'awaiting-approval'
  | 'locking'
  | 'backing-up'
  | 'applying'
  | 'verifying'
  | 'compensating'
  | 'done'
  | 'failed'
  | 'cancelled';

/** On failure: `restore` from the verified backup (default), `undo` with U scripts when every applied step has one (else restore), or `halt`. */
export type FailurePolicy = 'restore' | 'undo' | 'halt';
export const failurePolicies: FailurePolicy[] = ['restore', 'undo', 'halt'];

/**
 * What may run without an explicit approval, by the risk of each pending
 * migration (with context from the live database): `safe` only low, `auto`
 * low and medium, `aggressive` everything; `dry-run` plans and stops.
 */
export type ExecutionMode = 'safe' | 'auto' | 'aggressive' | 'dry-run';
export const executionModes: ExecutionMode[] = ['safe', 'auto', 'aggressive', 'dry-run'];

export interface AppliedStep {
  version: Version;
  description: string;
  status: 'applied' | 'skipped';
  durationMs: number;
}

export interface ApprovalState {
  required: boolean;
  /** Why the run waits, in words: --require-approval and/or the risk gate. */
  reason: string | null;
  /** The migrations the execution mode does not let run without an approval. */
  gated?: GatedMigration[];
  /** Workflow time (ms since epoch) the wait began. */
  waitingSince: number | null;
  approvedBy: string | null;
  approvedAt: number | null;
  note: string | null;
}

export interface Progress {
  db: string;
  mode: ExecutionMode;
  phase: Phase;
  /** The migration being applied now, if any. */
  current: PendingMigration | null;
  pending: PendingMigration[];
  completed: AppliedStep[];
  approval: ApprovalState;
  cancelRequested: { by: string; reason: string | null } | null;
  /** Signals that did not apply (a cancel after the last migration, an approve with nothing waiting), newest last. */
  refusedSignals?: Array<{ signal: 'approve' | 'cancel'; by: string; reason: string }>;
  /** The backup the run takes before its first change, or that it takes none and why (once planned). */
  backup?: BackupPlan;
  /** Workflow time (ms since epoch) at which the run started and the current phase began. */
  startedAt: number;
  phaseStartedAt: number;
  /** The watch's latest sample the run heard of (at the end of each step that lasted one, and at each hold). */
  watch?: WatchSample;
  /** The guards the run holds for now; absent or empty: none. */
  heldBy?: GuardCrossing[];
}

/** A pending migration the execution mode does not let run without an approval, and why. */
export interface GatedMigration {
  version: string;
  description: string;
  level: RiskLevel;
  /** One line per finding not accepted in the file: rule, table and what the database said. */
  findings: string[];
}

export interface ApproveInput {
  by: string;
  note?: string;
}
export interface CancelInput {
  by: string;
  reason?: string;
}
export interface MessageAck {
  accepted: true;
  phase: Phase;
}

export interface MigrateDatabaseInput {
  /** Database alias; activities resolve it to a connection string. Never a URL. */
  db: string;
  /** Migration directory as the worker sees it. */
  migrationsDir: string;
  target?: Version;
  /** Apply all pending migrations in one transaction: all or none. */
  group?: boolean;
  /** Apply pending versions lower than the highest applied one. */
  allowOutOfOrder?: boolean;
  /** Default `auto`. */
  mode?: ExecutionMode;
  /** Wait for an `approve` before changing anything. */
  requireApproval?: boolean;
  /** How long to wait for approval before failing (default 24 hours). */
  approvalTimeoutMs?: number;
  /**
   * An approval given before the run starts: by a deploy service, or by a
   * rollout that was approved once for all its databases or for a wave. It
   * covers gated migrations up to `upTo` (default `high`: all) and
   * --require-approval; a migration above it still waits. Recorded like an
   * `approve` update.
   */
  approved?: { by: string; note?: string; upTo?: RiskLevel };
  /** Default `restore`. */
  onFailure?: FailurePolicy;
  /** Refuse to run unless the worker reads exactly this set (a rollout pins every database to the set it planned). */
  expect?: { manifestDigest: string };
  /** Webhooks (names in the workers' config, notify.webhooks) to tell of the run's start, approval wait and end; not for a rollout's runs, which the rollout tells of. */
  notify?: string[];
}

/** What a run returns; a failed run fails with its outcome in the failure's details (src/contracts/outcome.ts). */
export type MigrateDatabaseResult = ReturnedOutcome;

/** The backup a run took before its first change, or none and why. */
export type RunBackup = { key: string } | { none: string };

/** How the ledger records a run's backup: its key, or `none: <reason>`. */
export function describeRunBackup(backup: RunBackup): string {
  return 'key' in backup ? backup.key : `none: ${backup.none}`;
}

export interface InspectDatabaseInput {
  db: string;
  migrationsDir: string;
  /** Only the newest N ledger rows. */
  historyLast?: number;
  allowOutOfOrder?: boolean;
}

export interface DatabaseStatus {
  plan: DatabasePlan;
  history: HistoryRow[];
}

export interface RevertDatabaseInput {
  db: string;
  migrationsDir: string;
  /** Undo every applied version above this one; or */
  to?: Version;
  /** undo the newest `steps` applied versions (neither: every applied version). */
  steps?: number;
  /** Default `auto`: as for `up`, what the undo scripts' risk lets run without an approval; `dry-run` plans and stops. */
  mode?: ExecutionMode;
  requireApproval?: boolean;
  approvalTimeoutMs?: number;
}

/** A finished `pgconvoy undo`: what it undid, and the proof that the schema is the one the ledger recorded. A failed one fails (compensated from its backup). */
export interface RevertDatabaseResult {
  status: 'reverted' | 'dry-run' | 'nothing-to-undo' | 'cancelled';
  db: string;
  workflowId: string;
  runId: string;
  manifestDigest: string;
  versionBefore: Version | null;
  versionAfter: Version | null;
  /** The versions, newest first, and whether each was undone. */
  steps: Array<{ version: Version; description: string; undoFile: string | null; status: 'undone' | 'skipped' | 'not-run' }>;
  backup?: RunBackup;
  /** The schema's fingerprint after the undo, equal to the one the ledger recorded. */
  proof?: { expected: string; actual: string };
  approvedBy?: string;
  cancelledBy?: string;
}
