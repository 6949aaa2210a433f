/**
 * Every failure type pgconvoy reports, in one table: whether retrying can
 * help, and which exit code a command that ends with it returns. The error
 * classes take `retryable` from here, the workflow its non-retryable list,
 * the CLI its exit codes. Pure data: workflow code imports it too.
 */
export interface ErrorTypeSpec {
  /**
   * Whether trying again can help. `by-sqlstate`: the SQLSTATE decides
   * (a deadlock is retried, a syntax error is not; src/db/sqlstate.ts).
   */
  retryable: boolean | 'by-sqlstate';
  /**
   * The exit code class of a command that ends with it (ExitCode in
   * src/client/exit-codes.ts). `migration`: 4 when nothing of the migration
   * stays, 1 when part of a no-transaction file does.
   */
  exit: 'badInput' | 'unavailable' | 'failed' | 'migration' | 'interrupted';
}

export const errorTypes = {
  // The files, the config, the ledger or the command are wrong: nothing ran.
  InvalidMigrationSet: { retryable: false, exit: 'badInput' },
  InvalidConfig: { retryable: false, exit: 'badInput' },
  UnknownDatabase: { retryable: false, exit: 'badInput' },
  IntegrityCheckFailed: { retryable: false, exit: 'badInput' },
  ChecksumMismatch: { retryable: false, exit: 'badInput' },
  ManifestChanged: { retryable: false, exit: 'badInput' },
  GroupNotPossible: { retryable: false, exit: 'badInput' },
  TargetBeyondSet: { retryable: false, exit: 'badInput' },
  LedgerChangeRefused: { retryable: false, exit: 'badInput' },
  RunConflict: { retryable: false, exit: 'badInput' },
  // No rollout has the deploy id.
  UnknownRollout: { retryable: false, exit: 'badInput' },
  // A rollout's workflow ended without its status (terminated, timed out).
  RolloutFailed: { retryable: false, exit: 'failed' },
  // pgconvoy undo: a version without an undo script, not applied, or nothing to prove the result against.
  UndoNotPossible: { retryable: false, exit: 'badInput' },
  // The database's or the machine's settings: a wrong name, password or role, a missing privilege, old backup tools.
  DatabaseConfig: { retryable: false, exit: 'badInput' },
  PermissionDenied: { retryable: false, exit: 'badInput' },
  BackupToolMismatch: { retryable: false, exit: 'badInput' },
  // A service could not be reached.
  DatabaseUnavailable: { retryable: true, exit: 'unavailable' },
  TemporalUnavailable: { retryable: true, exit: 'unavailable' },
  DevServerFailed: { retryable: false, exit: 'unavailable' },
  StateDirBusy: { retryable: true, exit: 'unavailable' },
  // A migration failed.
  MigrationFailed: { retryable: 'by-sqlstate', exit: 'migration' },
  // A SQL callback (migrations/hooks/) failed: as a migration's statement.
  HookFailed: { retryable: 'by-sqlstate', exit: 'migration' },
  // A command hook (config hooks.<event>) failed: not run again, its side effects may have happened.
  CommandHookFailed: { retryable: false, exit: 'failed' },
  // The engine's own lock schedule was the retry.
  LockTimeout: { retryable: false, exit: 'migration' },
  MigrationBusy: { retryable: true, exit: 'failed' },
  VerificationFailed: { retryable: false, exit: 'failed' },
  // The watch: a step stopped because the database is past a guard (the run holds and tries again), and a guard crossed past guardTimeoutMs.
  GuardCrossed: { retryable: false, exit: 'failed' },
  GuardTimeout: { retryable: false, exit: 'failed' },
  // The lease.
  LeaseHeld: { retryable: true, exit: 'failed' },
  LeaseLost: { retryable: false, exit: 'failed' },
  // Backups and compensation.
  BackupFailed: { retryable: true, exit: 'failed' },
  BackupCorrupt: { retryable: false, exit: 'failed' },
  RestoreFailed: { retryable: true, exit: 'failed' },
  UndoFailed: { retryable: false, exit: 'failed' },
  UndoLeftDifference: { retryable: false, exit: 'failed' },
  CompensationFailed: { retryable: false, exit: 'failed' },
  // A webhook receiver did not take a notification (retried with backoff); one not in the worker's config.
  WebhookFailed: { retryable: true, exit: 'failed' },
  UnknownWebhook: { retryable: false, exit: 'badInput' },
  // The run itself.
  ApprovalTimedOut: { retryable: false, exit: 'failed' },
  MessageRejected: { retryable: false, exit: 'failed' },
  Interrupted: { retryable: false, exit: 'interrupted' },
} as const satisfies Record<string, ErrorTypeSpec>;

export type ErrorType = keyof typeof errorTypes;

export function isErrorType(type: string | undefined): type is ErrorType {
  return type !== undefined && Object.hasOwn(errorTypes, type);
}

/** The types no retry can fix: every activity's retry policy lists them. */
export const nonRetryableErrorTypes: ErrorType[] = (Object.keys(errorTypes) as ErrorType[]).filter((t) => errorTypes[t].retryable === false);

/** The types whose exit class is `exit`. */
export function errorTypesExiting(exit: ErrorTypeSpec['exit']): ErrorType[] {
  return (Object.keys(errorTypes) as ErrorType[]).filter((t) => errorTypes[t].exit === exit);
}
