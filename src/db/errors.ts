import { PgconvoyError } from '../core/errors';
import type { Version } from '../core/version';
import { classifySqlState, type PgErrorFields } from './sqlstate';
import type { FailurePoint } from '../contracts/records';
export type { FailurePoint };


/** A migration's SQL failed; the message says where and why, in PostgreSQL's words. */
export class MigrationFailedError extends PgconvoyError {
  readonly type = 'MigrationFailed';
  /** A deadlock or a lost connection is worth another attempt; a syntax error is not. */
  private readonly transient: boolean;
  override get retryable(): boolean {
    return this.transient;
  }
  constructor(readonly point: FailurePoint, readonly pgError: PgErrorFields) {
    const sqlstate = pgError.code ? `SQLSTATE ${pgError.code}: ` : '';
    const extra = [pgError.detail && `DETAIL: ${pgError.detail}`, pgError.hint && `HINT: ${pgError.hint}`].filter(Boolean);
    super(
      `${point.file} (version ${point.version}) failed at statement ${point.statement} of ${point.statementsTotal}, ` +
        `line ${point.line}, column ${point.column}: ${sqlstate}${pgError.message}` +
        (extra.length > 0 ? `\n${extra.join('\n')}` : ''),
      { ...point, sqlstate: pgError.code ?? null, pgMessage: pgError.message, detail: pgError.detail ?? null, hint: pgError.hint ?? null },
    );
    this.transient = classifySqlState(pgError.code) === 'retryable';
  }
}

/**
 * Every lock attempt timed out: another session holds a conflicting lock for
 * too long. The engine's bounded schedule (short waits, growing pauses) is the
 * whole retry: retrying the activity on top of it would multiply the attempts
 * and every other session's queueing behind them, and make `attempts` untrue.
 */
export class LockTimeoutError extends PgconvoyError {
  readonly type = 'LockTimeout';
  constructor(readonly point: FailurePoint, attempts: number, longestWaitMs: number) {
    super(
      `${point.file} (version ${point.version}) statement ${point.statement} at line ${point.line}: could not get its lock ` +
        `in ${attempts} attempts (longest wait ${longestWaitMs} ms, SQLSTATE 55P03); another session holds a conflicting lock ` +
        '(look for it in pg_locks and pg_stat_activity); nothing of this migration was kept' +
        (point.mode === 'no-transaction' ? ` beyond statement ${point.statementsDone}` : ''),
      { ...point, sqlstate: '55P03', attempts, longestWaitMs },
    );
  }
}

/** The ledger holds this version with another checksum: the file was edited after it ran. */
export class AlreadyAppliedDifferentlyError extends PgconvoyError {
  readonly type = 'ChecksumMismatch';
  constructor(version: Version, file: string, applied: string, onDisk: string) {
    super(
      `${file} (version ${version}) is already applied with checksum ${applied.slice(0, 12)}, but the file now has ${onDisk.slice(0, 12)}`,
      { version, file },
    );
  }
}

/** Another runner is executing this no-transaction migration right now. */
export class MigrationBusyError extends PgconvoyError {
  readonly type = 'MigrationBusy';
  constructor(version: Version, file: string) {
    super(`${file} (version ${version}) is being applied by another session; will try again`, { version, file });
  }
}

/** --group was asked for a set that holds a file that cannot run in a transaction. */
export class GroupNotPossibleError extends PgconvoyError {
  readonly type = 'GroupNotPossible';
  constructor(files: string[]) {
    super(`cannot apply the pending migrations in one transaction: ${files.join(', ')} must run outside a transaction`, { files });
  }
}
