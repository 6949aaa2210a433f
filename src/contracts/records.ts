/**
 * What the database layer and the backup store report, as it crosses the
 * Temporal boundary: activity results the workflows read and the client
 * renders. Pure types: db/ and backup/ produce them, nothing here imports
 * either.
 */
import type { HookEvent } from '../core/hooks';
import type { TransactionMode } from '../core/statements';
import type { Version } from '../core/version';
import type { WatchReport } from './watch';

/** Where a migration failed: the file, its statement and line, and what of it stays. */
export interface FailurePoint {
  version: Version;
  file: string;
  mode: TransactionMode | 'group';
  /** 1-based statement number in the file. */
  statement: number;
  statementsTotal: number;
  /** Statements of the file that are committed (only a no-transaction file keeps any). */
  statementsDone: number;
  /** Where in the file PostgreSQL pointed, or where the statement starts. */
  line: number;
  column: number;
  /** Parse node type of the failing statement, e.g. AlterTableStmt. */
  statementKind: string;
}

/** What one hook file did, as its row in pgconvoy.hook_runs says. */
export interface HookRunRecord {
  file: string;
  event: HookEvent;
  /** The version an each-migration or undo hook ran for; null for a run-level event. */
  version: Version | null;
  durationMs: number;
  status: 'ok' | 'failed';
  error: string | null;
}

/**
 * `hooks`: the beforeEachMigrate and afterEachMigrate files that ran with the
 * version (its duration includes them). `watch`: what the watch saw while the
 * step ran, on the last result of a step that lasted at least one sample.
 */
export type ApplyResult = (
  | { status: 'applied'; version: Version; durationMs: number; statements: number; hooks?: HookRunRecord[] }
  | { status: 'skipped'; version: Version; reason: 'already-applied' }
) & { watch?: WatchReport };

/** `hooks`: the beforeUndo and afterUndo files that ran with the undo script. */
export type UndoResult = { status: 'undone'; version: Version; checked: boolean; hooks?: HookRunRecord[] } | { status: 'skipped'; version: Version; reason: 'already-undone' };

/** `undone`: undone on purpose by `pgconvoy undo`; `rolled_back`: undone by a failed run's compensation. */
export type HistoryStatus = 'running' | 'applied' | 'failed' | 'rolled_back' | 'baseline' | 'undone';

export interface HistoryRow {
  id: string;
  version: Version;
  description: string;
  file: string;
  checksum: string;
  status: HistoryStatus;
  startedAt: string;
  finishedAt: string;
  executionMs: number;
  statementsDone: number | null;
  statementsTotal: number | null;
  workflowId: string | null;
  errorSqlstate: string | null;
  errorMessage: string | null;
  errorStatement: number | null;
  source: string;
  reason: string | null;
  riskLevel: string | null;
  riskFindings: unknown[] | null;
  approvedBy: string | null;
  approvedAt: string | null;
  approvalNote: string | null;
  /** The run's backup key, or `none: <reason>`; null before ledger step 5 and for rows not written by a run. */
  backup: string | null;
}

/** What a run changed, and what others changed after it began (they forbid a restore that would erase their work). */
export interface RunChanges {
  applied: Version[];
  partial: Version[];
  others: Array<{ version: Version; status: string; runId: string | null; source: string }>;
}

export interface Lease {
  alias: string;
  holder: string;
  token: string;
  expiresAt: string;
}

export type LedgerSource = 'flyway' | 'refinery' | 'golang-migrate';

export type LedgerChange =
  | { kind: 'baseline'; version: Version; reason: string }
  | { kind: 'mark-applied'; version: Version; reason: string }
  | { kind: 'import'; from: LedgerSource };

export type LedgerChangeResult =
  | { kind: 'baseline'; version: Version }
  | { kind: 'mark-applied'; version: Version }
  | { kind: 'import'; from: LedgerSource; applied: Version[]; baseline: Version | null };

/** What a backup is. Written last: a backup without a manifest does not exist. */
export interface BackupManifest {
  id: string;
  /** Database alias (never its connection string). */
  db: string;
  key: string;
  format: 'custom';
  createdAt: string;
  bytes: number;
  sha256: string;
  serverVersion: string;
  pgDumpVersion: string;
  /** Highest applied version when the backup was taken. */
  ledgerVersion: string | null;
  /** Only these tables were dumped; null for the whole database. */
  tables: string[] | null;
}

/** What a run does about a backup, decided with the server's version at hand. */
export interface BackupPlan {
  scope: 'database' | 'touched-tables' | 'none';
  /** scope `none`: why (backup.reason); recorded in the ledger with every version the run applies. */
  reason?: string;
  serverVersion: string;
  /** The pg_dump that takes it: its version and path. */
  pgDump?: string;
  /** Why no backup can be taken: a run is refused before it takes the lease. */
  problem?: string;
}
