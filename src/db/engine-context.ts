import type pg from 'pg';
import type { ExecutionSettings, LockAttempt } from '../core/execution-settings';
import type { PreparedMigration } from '../core/prepare';
import type { Statement } from '../core/statements';
import type { Version } from '../core/version';
import type { ApplyResult } from '../contracts/records';
import type { CatalogTracker } from './catalog-tracker';
import { withTransaction } from './connection';
import { AlreadyAppliedDifferentlyError, type FailurePoint } from './errors';
import type { VersionHooks } from './hooks';
import type { AuditColumns } from './ledger';
import { checkFence, type Fence } from './lease';
import { asConnectingUser } from './session-state';

/**
 * What both ways of applying a migration share (execute.ts in a transaction,
 * execute-outside.ts statement by statement): the engine's context and
 * events, the fenced ledger write, durations, the ledger's record of a
 * version, where a statement failed.
 */

export interface RunContext {
  workflowId?: string;
  runId?: string;
}

/** The ledger's record of a version this run (workflow run) may already have applied in an earlier attempt. */
export interface AppliedRecord {
  checksum: string;
  runId: string | null;
  executionMs: number;
  statements: number;
}

/** The closed set of events the engine reports. */
export type EngineEvent =
  | { event: 'migration.lock_timeout'; version: Version; file: string; statement: number; attempt: number; lockTimeoutMs: number; pauseMs: number }
  | { event: 'migration.resumed'; version: Version; file: string; fromStatement: number }
  | { event: 'statement.done'; version: Version; file: string; statement: number; of: number }
  | { event: 'index.invalid_dropped'; version: Version; file: string; index: string };

export interface EngineContext {
  settings: ExecutionSettings;
  run: RunContext;
  /** The lease this run holds; every ledger write checks it. Absent only outside workflows (tests, benchmarks). */
  fence?: Fence;
  /**
   * Time this run already spent on the migration before this call (earlier
   * attempts of the activity and the pauses between them), so a duration
   * covers every attempt, not only the one that succeeded.
   */
  priorMs?: number;
  /** Waits between lock attempts; the activity passes a cancellable sleep, tests a fake clock. */
  sleep(ms: number): Promise<void>;
  /** What the ledger records with an applied version (risk, approval), committed with its row. */
  audit?(version: Version): AuditColumns | undefined;
  /** false: a failed migration is not written to the ledger (the caller runs it again, alone, where it is). Default true. */
  recordFailure?: boolean;
  /** Follows the catalog for each version's fingerprint; without one, every version reads the whole catalog. */
  catalog?: CatalogTracker;
  /**
   * Whether someone outside stopped the migration (the watch, past a guard,
   * cancelled its statement): the error to end it with instead of a
   * failure. Asked before each statement and when one fails; a migration
   * stopped so is rolled back and not written to the ledger.
   */
  interrupted?(): Error | undefined;
  /**
   * The set's beforeEachMigrate and afterEachMigrate files, run with each
   * version (in its transaction; a no-transaction file's in their own). With
   * any, every version reads the whole catalog: a hook's changes are not in
   * what the tracker follows.
   */
  hooks?: VersionHooks;
  onEvent(event: EngineEvent): void;
}

/**
 * Runs ledger writes in a transaction that first proves this run still holds
 * the lease. A no-transaction file's session settings (SET ROLE, search_path,
 * default_transaction_read_only) stay with its statements; the ledger write
 * runs as the connecting user, read-write, whatever they were.
 */
export async function fenced<T>(client: pg.Client, ctx: EngineContext, fn: () => Promise<T>): Promise<T> {
  return withTransaction(
    client,
    async () => {
      await asConnectingUser(client);
      if (ctx.fence) await checkFence(client, ctx.fence);
      return fn();
    },
    'BEGIN READ WRITE',
  );
}

export const elapsedMs = (since: bigint) => Number((process.hrtime.bigint() - since) / 1_000_000n);

/** Time spent on a migration so far: this call's (lock retries and their pauses included) and earlier attempts'. */
export const spentMs = (started: { t: bigint }, ctx: EngineContext) => elapsedMs(started.t) + (ctx.priorMs ?? 0);

export async function appliedRecord(client: pg.Client, version: Version): Promise<AppliedRecord | undefined> {
  const result = await client.query<{ checksum: string; run_id: string | null; execution_ms: number; statements_total: number | null }>(
    `SELECT checksum, run_id, execution_ms, statements_total FROM pgconvoy.history WHERE version = $1 AND status = 'applied'`,
    [version],
  );
  const row = result.rows[0];
  return row ? { checksum: row.checksum, runId: row.run_id, executionMs: row.execution_ms, statements: row.statements_total ?? 0 } : undefined;
}

/**
 * A version already in the ledger is not applied again. When this very run
 * applied it (an attempt that committed and then died before reporting), it
 * is reported applied, as the ledger says: compensation must undo it too.
 */
export async function alreadyApplied(client: pg.Client, m: PreparedMigration, ctx: EngineContext): Promise<ApplyResult | undefined> {
  return appliedAs(await appliedRecord(client, m.version), m, ctx);
}

export function appliedAs(record: AppliedRecord | undefined, m: PreparedMigration, ctx: EngineContext): ApplyResult | undefined {
  if (record === undefined) return undefined;
  if (record.checksum !== m.forward.checksum) throw new AlreadyAppliedDifferentlyError(m.version, m.forward.file, record.checksum, m.forward.checksum);
  if (ctx.run.runId !== undefined && record.runId === ctx.run.runId) {
    return { status: 'applied', version: m.version, durationMs: record.executionMs, statements: record.statements };
  }
  return { status: 'skipped', version: m.version, reason: 'already-applied' };
}

export function failurePoint(m: PreparedMigration, s: Statement, mode: FailurePoint['mode'], statementsDone: number, position?: string): FailurePoint {
  const { line, column } = positionInFile(s, position === undefined ? undefined : Number(position));
  return {
    version: m.version,
    file: m.forward.file,
    mode,
    statement: s.index,
    statementsTotal: m.forward.script.statements.length,
    statementsDone,
    line,
    column,
    statementKind: s.kind,
  };
}

/** PostgreSQL's error position (1-based, in characters of the statement sent) as a line and column in the file. */
export function positionInFile(s: Statement, position: number | undefined): { line: number; column: number } {
  if (position === undefined || !Number.isFinite(position) || position < 1) return { line: s.line, column: s.column };
  const before = Array.from(s.sql).slice(0, position - 1).join('');
  const lines = before.split('\n');
  if (lines.length === 1) return { line: s.line, column: s.column + before.length };
  return { line: s.line + lines.length - 1, column: Array.from(lines[lines.length - 1] ?? '').length + 1 };
}

export async function lockTimedOut(ctx: EngineContext, m: PreparedMigration, s: Statement, attempt: LockAttempt): Promise<void> {
  const pauseMs = attempt.pauseAfterMs ?? 0;
  ctx.onEvent({ event: 'migration.lock_timeout', version: m.version, file: m.forward.file, statement: s.index, attempt: attempt.attempt, lockTimeoutMs: attempt.lockTimeoutMs, pauseMs });
  await ctx.sleep(pauseMs);
}
