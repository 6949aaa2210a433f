import { errorTypesExiting } from '../contracts/errors';

/** Exit codes of the CLI; scripts may rely on them. */
export const ExitCode = {
  /** Success: migrations applied, or nothing to do (with --detailed-exitcode, nothing to do is 0 and applied is 10). */
  ok: 0,
  /** Failed and needs attention: part of a no-transaction file is applied, or the failure is not a migration's. */
  failed: 1,
  /** Bad input: usage, config, migration set, unknown alias, ledger and files disagree, backup tools that cannot serve the server. Nothing ran. */
  badInput: 2,
  /** A service (Temporal, PostgreSQL) could not be reached. Nothing ran. */
  unavailable: 3,
  /** A migration failed and was rolled back: nothing of it remains; earlier migrations stay applied, as the ledger says. */
  rolledBack: 4,
  /** The run was cancelled (`pgconvoy cancel`); the ledger says what was applied before it stopped. */
  cancelled: 5,
  /**
   * `approve`/`cancel`: the message does not apply, and nothing changed: no
   * run of the database is going on, or the run is in a phase that refuses it
   * (nothing waits for approval; too late to cancel).
   */
  notApplicable: 6,
  /** With --detailed-exitcode: migrations were applied. */
  applied: 10,
  /** `lint`: the highest finding (not accepted with pgconvoy:allow) is medium risk. */
  lintMedium: 11,
  /** `lint`: the highest finding is high risk. */
  lintHigh: 12,
  /** Stopped by SIGINT (128 + 2); the message says what state the run is in. */
  interrupted: 130,
  /** Stopped by SIGTERM (128 + 15); the message says what state the run is in. */
  terminated: 143,
} as const;

export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/**
 * The one mapping from error types to exit codes, from the table in
 * src/contracts/errors.ts. Bad input: nothing ran and running again changes
 * nothing until someone fixes a file, the config or the database's settings
 * (a wrong database name, password or role, a URL that is not postgres://, a
 * missing privilege, backup tools older than the server).
 */
const badInputTypes = new Set<string>(errorTypesExiting('badInput'));

/** A service could not be reached (after its retries): PostgreSQL unreachable or refusing connections for now, Temporal unreachable. */
const unavailableTypes = new Set<string>(errorTypesExiting('unavailable'));

/** A migration's own failure: 4 when nothing of it stays, 1 when part of a no-transaction file does. */
const migrationTypes = new Set<string>(errorTypesExiting('migration'));

export function exitCodeForSignal(signal: NodeJS.Signals): ExitCode {
  return signal === 'SIGINT' ? ExitCode.interrupted : ExitCode.terminated;
}

/** `details` is the failure's first detail object (FailurePoint for MigrationFailed and LockTimeout). */
export function exitCodeForFailure(type: string | undefined, details?: unknown): ExitCode {
  if (type !== undefined && badInputTypes.has(type)) return ExitCode.badInput;
  if (unavailableTypes.has(type ?? '')) return ExitCode.unavailable;
  if (type === 'Interrupted') return exitCodeForSignal((details as { signal?: NodeJS.Signals } | null | undefined)?.signal ?? 'SIGTERM');
  if ((details as { compensated?: string } | null | undefined)?.compensated) return ExitCode.rolledBack;
  if (type !== undefined && migrationTypes.has(type)) {
    const done = (details as { statementsDone?: number } | null | undefined)?.statementsDone ?? 0;
    return done > 0 ? ExitCode.failed : ExitCode.rolledBack;
  }
  return ExitCode.failed;
}
