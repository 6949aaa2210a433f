import type pg from 'pg';
import { sha256Hex } from '../core/checksum';
import { PgconvoyError } from '../core/errors';
import { lockSchedule, statementTimeoutFor, type ExecutionSettings, type LockAttempt } from '../core/execution-settings';
import type { PreparedMigration } from '../core/prepare';
import type { Statement } from '../core/statements';
import type { Version } from '../core/version';
import { withTransaction } from './connection';
import { AlreadyAppliedDifferentlyError, GroupNotPossibleError, LockTimeoutError, MigrationBusyError, MigrationFailedError, type FailurePoint } from './errors';
import { fingerprint } from './fingerprint';
import { fullReads, ownersNamed, type CatalogRecord, type CatalogTracker } from './catalog-tracker';
import { finishAttempt, insertHistory, latestAttempt, migrationColumns, recordProgress, type AuditColumns } from './ledger';
import { checkFence, LeaseLostError, type Fence } from './lease';
import { asConnectingUser, resetSession, versionLockKey } from './session-state';
import { pgErrorFields } from './sqlstate';
import type { ApplyResult } from '../contracts/records';
export type { ApplyResult };

export interface RunContext {
  workflowId?: string;
  runId?: string;
}


/** The ledger's record of a version this run (workflow run) may already have applied in an earlier attempt. */
interface AppliedRecord {
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
  onEvent(event: EngineEvent): void;
}

/**
 * Runs ledger writes in a transaction that first proves this run still holds
 * the lease. A no-transaction file's session settings (SET ROLE, search_path,
 * default_transaction_read_only) stay with its statements; the ledger write
 * runs as the connecting user, read-write, whatever they were.
 */
async function fenced<T>(client: pg.Client, ctx: EngineContext, fn: () => Promise<T>): Promise<T> {
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

/** The audit columns for a version: the run's risk and approval, the fingerprint of the catalog after it and, for an undo script's proof, the schema before it. */
function auditOf(m: PreparedMigration, ctx: EngineContext, schema: CatalogRecord): AuditColumns {
  return { ...ctx.audit?.(m.version), fingerprint: schema.fingerprint, ...(schema.schemaBefore ? { schemaBefore: schema.schemaBefore } : {}) };
}

const elapsedMs = (since: bigint) => Number((process.hrtime.bigint() - since) / 1_000_000n);

/** Time spent on a migration so far: this call's (lock retries and their pauses included) and earlier attempts'. */
const spentMs = (started: { t: bigint }, ctx: EngineContext) => elapsedMs(started.t) + (ctx.priorMs ?? 0);

/**
 * Applies one migration: in one transaction together with its ledger row, or
 * (for a no-transaction file) statement by statement with progress in the
 * ledger. Idempotent: a version already applied with the same checksum is
 * skipped. Lock timeouts are retried on a bounded, growing schedule.
 */
export async function applyMigration(client: pg.Client, migration: PreparedMigration, ctx: EngineContext): Promise<ApplyResult> {
  return migration.forward.script.mode === 'no-transaction'
    ? applyStatementByStatement(client, migration, ctx)
    : applyInTransaction(client, [migration], ctx).then((results) => results[0]!);
}

/** Applies several migrations in a single transaction (`up --group`): all or none. */
export async function applyGroup(client: pg.Client, migrations: PreparedMigration[], ctx: EngineContext): Promise<ApplyResult[]> {
  const outside = migrations.filter((m) => m.forward.script.mode === 'no-transaction');
  if (outside.length > 0) throw new GroupNotPossibleError(outside.map((m) => m.forward.file));
  return applyInTransaction(client, migrations, ctx);
}

async function appliedRecord(client: pg.Client, version: Version): Promise<AppliedRecord | undefined> {
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
async function alreadyApplied(client: pg.Client, m: PreparedMigration, ctx: EngineContext): Promise<ApplyResult | undefined> {
  return appliedAs(await appliedRecord(client, m.version), m, ctx);
}

function appliedAs(record: AppliedRecord | undefined, m: PreparedMigration, ctx: EngineContext): ApplyResult | undefined {
  if (record === undefined) return undefined;
  if (record.checksum !== m.forward.checksum) throw new AlreadyAppliedDifferentlyError(m.version, m.forward.file, record.checksum, m.forward.checksum);
  if (ctx.run.runId !== undefined && record.runId === ctx.run.runId) {
    return { status: 'applied', version: m.version, durationMs: record.executionMs, statements: record.statements };
  }
  return { status: 'skipped', version: m.version, reason: 'already-applied' };
}

/** BEGIN with the version's lock taken in the same round trip (a version is digits: safe as a literal). */
function beginLocked(version: Version): `BEGIN; ${string}` {
  if (!/^\d+$/.test(version)) throw new Error(`not a version: ${version}`);
  return `BEGIN; SELECT pg_catalog.pg_advisory_xact_lock(${versionLockKey}, pg_catalog.hashtext('${version}'))`;
}

/**
 * In a migration's transaction, once it holds the version's lock, in one
 * round trip: the lease is still this run's (its row locked until commit,
 * as checkFence), the ledger's record of the version, and for the catalog
 * tracker the ledger's newest row and the tables the migration names as
 * they are before it; the migration's timeouts are set for the transaction.
 * Prepared once per connection: it runs once per migration.
 */
async function preflight(client: pg.Client, m: PreparedMigration, ctx: EngineContext, catalog: CatalogTracker, lockTimeoutMs: number, statementTimeoutMs: number): Promise<{ record?: AppliedRecord; newest: string; owners: string[] }> {
  const names = catalog.names(m);
  const result = await client.query<{ fenced: boolean | null; newest: string; owners: string[]; checksum: string | null; run_id: string | null; execution_ms: number | null; statements_total: number | null }>({
    name: 'pgconvoy_apply_preflight',
    text: `SELECT (SELECT true FROM pgconvoy.lease WHERE token = $1 AND expires_at > now() FOR KEY SHARE) AS fenced,
         (SELECT coalesce(max(id), 0)::text FROM pgconvoy.history) AS newest,
         ARRAY(SELECT DISTINCT oid::text FROM (${ownersNamed('$5', '$6')}) o) AS owners,
         a.checksum, a.run_id, a.execution_ms, a.statements_total,
         set_config('lock_timeout', $3, true) AS lock_timeout, set_config('statement_timeout', $4, true) AS statement_timeout
       FROM (SELECT 1) AS one
       LEFT JOIN (SELECT checksum, run_id, execution_ms, statements_total FROM pgconvoy.history WHERE version = $2 AND status = 'applied' LIMIT 1) AS a ON true`,
    values: [ctx.fence?.token ?? null, m.version, `${lockTimeoutMs}ms`, `${statementTimeoutMs}ms`, names.map((n) => n.schema), names.map((n) => n.name)],
  });
  const row = result.rows[0]!;
  if (ctx.fence && !row.fenced) throw new LeaseLostError(ctx.fence.alias, ctx.fence.token);
  return {
    newest: row.newest,
    owners: row.owners,
    ...(row.checksum !== null ? { record: { checksum: row.checksum, runId: row.run_id, executionMs: row.execution_ms ?? 0, statements: row.statements_total ?? 0 } } : {}),
  };
}

async function setTimeouts(client: pg.Client, lockTimeoutMs: number, statementTimeoutMs: number, local: boolean): Promise<void> {
  await client.query(`SELECT set_config('lock_timeout', $1, $3), set_config('statement_timeout', $2, $3)`, [
    `${lockTimeoutMs}ms`,
    `${statementTimeoutMs}ms`,
    local,
  ]);
}

function failurePoint(m: PreparedMigration, s: Statement, mode: FailurePoint['mode'], statementsDone: number, position?: string): FailurePoint {
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

async function recordFailure(client: pg.Client, m: PreparedMigration, started: { at: Date; t: bigint }, ctx: EngineContext, error: PgconvoyError & { point: FailurePoint }, sqlstate: string | undefined, message: string): Promise<void> {
  if (ctx.recordFailure === false) return;
  try {
    await fenced(client, ctx, () => insertHistory(client, {
      ...migrationColumns(m),
      status: 'failed',
      startedAt: started.at,
      executionMs: spentMs(started, ctx),
      statementsDone: error.point.statementsDone,
      statementsTotal: error.point.statementsTotal,
      errorStatement: error.point.statement,
      ...(sqlstate ? { errorSqlstate: sqlstate } : {}),
      errorMessage: message,
      ...ctx.run,
    }));
  } catch {
    // The connection may be gone (that may be why the migration failed); the
    // error itself still reaches the workflow and the operator.
  }
}

async function applyInTransaction(client: pg.Client, migrations: PreparedMigration[], ctx: EngineContext): Promise<ApplyResult[]> {
  const mode: FailurePoint['mode'] = migrations.length > 1 ? 'group' : 'transaction';
  const strictest = Math.min(...migrations.map((m) => m.forward.script.directives.lockTimeoutMs ?? Infinity));
  const schedule = lockSchedule(ctx.settings, Number.isFinite(strictest) ? { lockTimeoutMs: strictest } : undefined);
  const started = { at: new Date(), t: process.hrtime.bigint() };

  const catalog = ctx.catalog ?? fullReads;
  for (const attempt of schedule) {
    let current: { m: PreparedMigration; s: Statement } | undefined;
    let committed = false;
    try {
      const applied = await withTransaction(client, async () => {
        const results: ApplyResult[] = [];
        // The first migration's duration starts with the first attempt (earlier
        // attempts, lock waits and pauses are its cost); each next one starts
        // where the previous one ended, so a group's durations add up to the whole.
        let from: bigint | null = null;
        for (const [index, m] of migrations.entries()) {
          // A second runner for the same version waits here, then sees it applied (the first one's lock comes with BEGIN).
          if (index > 0) await client.query({ name: 'pgconvoy_version_lock', text: 'SELECT pg_advisory_xact_lock($1, hashtext($2))', values: [versionLockKey, m.version] });
          const statementTimeoutMs = statementTimeoutFor(ctx.settings, m.forward.script.directives);
          const { record, newest, owners } = await preflight(client, m, ctx, catalog, attempt.lockTimeoutMs, statementTimeoutMs);
          const done = appliedAs(record, m, ctx);
          if (done) {
            results.push(done);
            continue;
          }
          const start = await catalog.before(client, m, { newestLedgerId: newest, owners });
          for (const s of m.forward.script.statements) {
            current = { m, s };
            await client.query(s.sql);
          }
          current = undefined;
          const durationMs = from === null ? spentMs(started, ctx) : elapsedMs(from);
          from = process.hrtime.bigint();
          const total = m.forward.script.statements.length;
          await resetSession(client, { lockTimeoutMs: attempt.lockTimeoutMs, statementTimeoutMs });
          const schema = await catalog.after(client, m, start);
          const id = await insertHistory(client, {
            audit: auditOf(m, ctx, schema),
            ...migrationColumns(m),
            status: 'applied',
            startedAt: started.at,
            executionMs: durationMs,
            statementsDone: total,
            statementsTotal: total,
            ...ctx.run,
          });
          catalog.recorded(id);
          results.push({ status: 'applied', version: m.version, durationMs, statements: total });
        }
        return results;
      }, beginLocked(migrations[0]!.version));
      committed = true;
      return applied;
    } catch (error) {
      if (error instanceof PgconvoyError || current === undefined) throw error;
      const fields = pgErrorFields(error);
      const point = failurePoint(current.m, current.s, mode, 0, fields.position);
      if (fields.code === '55P03') {
        if (attempt.pauseAfterMs !== null) {
          await lockTimedOut(ctx, current.m, current.s, attempt);
          continue;
        }
        const failure = new LockTimeoutError(point, attempt.attempt, attempt.lockTimeoutMs);
        await recordFailure(client, current.m, started, ctx, failure, fields.code, failure.message);
        throw failure;
      }
      const failure = new MigrationFailedError(point, fields);
      await recordFailure(client, current.m, started, ctx, failure, fields.code, fields.message);
      throw failure;
    } finally {
      catalog.settled(committed);
    }
  }
  throw new Error('unreachable: the lock schedule is never empty');
}

async function lockTimedOut(ctx: EngineContext, m: PreparedMigration, s: Statement, attempt: LockAttempt): Promise<void> {
  const pauseMs = attempt.pauseAfterMs ?? 0;
  ctx.onEvent({ event: 'migration.lock_timeout', version: m.version, file: m.forward.file, statement: s.index, attempt: attempt.attempt, lockTimeoutMs: attempt.lockTimeoutMs, pauseMs });
  await ctx.sleep(pauseMs);
}

/** sha256 over the first `count` statements: identifies the part of a file that already ran. */
export function prefixSha(statements: Statement[], count: number): string {
  return sha256Hex(statements.slice(0, count).map((s) => s.sql).join('\n;\n'));
}

async function applyStatementByStatement(client: pg.Client, m: PreparedMigration, ctx: EngineContext): Promise<ApplyResult> {
  const { statements, directives } = m.forward.script;
  const total = statements.length;
  const schedule = lockSchedule(ctx.settings, directives);
  const statementTimeoutMs = statementTimeoutFor(ctx.settings, directives);
  const started = { at: new Date(), t: process.hrtime.bigint() };

  // Never wait for this lock: a runner blocked in pg_advisory_lock() would
  // hold a snapshot that a concurrent index build waits for, forever.
  const locked = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok', [versionLockKey, m.version]);
  if (!locked.rows[0]?.ok) throw new MigrationBusyError(m.version, m.forward.file);
  try {
    const earlier = await alreadyApplied(client, m, ctx);
    if (earlier) return earlier;

    let from = 0;
    const previous = await latestAttempt(client, m.version);
    if (previous && previous.statementsDone > 0 && previous.statementsDone <= total) {
      const same = previous.checksum === m.forward.checksum || previous.donePrefixSha === prefixSha(statements, previous.statementsDone);
      if (same) from = previous.statementsDone;
    }
    if (from > 0) ctx.onEvent({ event: 'migration.resumed', version: m.version, file: m.forward.file, fromStatement: from + 1 });
    const schemaBefore = from === 0 && m.undo ? (await fingerprint(client)).parts : undefined;
    const id = await fenced(client, ctx, async () => {
      if (previous?.status === 'running') {
        // Its runner died (we hold the version's lock, so nobody runs it now).
        await finishAttempt(client, previous.id, { status: 'failed', executionMs: 0, errorMessage: 'interrupted: the runner stopped before finishing' });
      }
      return insertHistory(client, {
      ...migrationColumns(m),
      status: 'running',
      startedAt: started.at,
      executionMs: 0,
      statementsDone: from,
      statementsTotal: total,
      donePrefixSha: prefixSha(statements, from),
      ...ctx.run,
      ...(schemaBefore ? { audit: { schemaBefore } } : {}),
      });
    });
    if (from > 0 && previous) await fenced(client, ctx, () => carrySchemaBefore(client, previous.id, id));

    let done = from;
    for (const s of statements.slice(from)) {
      try {
        // A runner that lost its lease stops before its next statement.
        if (ctx.fence) await fenced(client, ctx, () => Promise.resolve());
        await dropInvalidIndexBeforeRetry(client, m, s, ctx);
        await runWithLockRetries(client, m, s, schedule, statementTimeoutMs, ctx);
      } catch (error) {
        const failure = error instanceof PgconvoyError ? error : undefined;
        const fields = pgErrorFields(error);
        const final =
          failure ??
          (fields.code === '55P03'
            ? new LockTimeoutError(failurePoint(m, s, 'no-transaction', done), schedule.length, schedule[schedule.length - 1]!.lockTimeoutMs)
            : new MigrationFailedError(failurePoint(m, s, 'no-transaction', done, fields.position), fields));
        await fenced(client, ctx, () =>
          finishAttempt(client, id, {
            status: 'failed',
            executionMs: spentMs(started, ctx),
            ...(fields.code ? { errorSqlstate: fields.code } : {}),
            errorMessage: failure?.message ?? fields.message,
            errorStatement: s.index,
          }),
        ).catch(() => undefined);
        throw final;
      }
      done = s.index;
      await fenced(client, ctx, () => recordProgress(client, id, done, prefixSha(statements, done)));
      ctx.onEvent({ event: 'statement.done', version: m.version, file: m.forward.file, statement: s.index, of: total });
    }
    const durationMs = spentMs(started, ctx);
    await fenced(client, ctx, async () =>
      finishAttempt(client, id, { status: 'applied', executionMs: durationMs, audit: { ...ctx.audit?.(m.version), fingerprint: (await fingerprint(client, { inTransaction: true })).sha256 } }),
    );
    return { status: 'applied', version: m.version, durationMs, statements: total };
  } finally {
    await client.query('SELECT pg_advisory_unlock($1, hashtext($2))', [versionLockKey, m.version]).catch(() => undefined);
  }
}

/** A resumed attempt keeps the schema description its first attempt took before any statement ran. */
async function carrySchemaBefore(client: pg.Client, fromId: string, toId: string): Promise<void> {
  await client.query(`UPDATE pgconvoy.history SET schema_before = (SELECT schema_before FROM pgconvoy.history WHERE id = $1) WHERE id = $2`, [fromId, toId]);
}

async function runWithLockRetries(client: pg.Client, m: PreparedMigration, s: Statement, schedule: LockAttempt[], statementTimeoutMs: number, ctx: EngineContext): Promise<void> {
  for (const attempt of schedule) {
    await setTimeouts(client, attempt.lockTimeoutMs, statementTimeoutMs, false);
    try {
      await client.query(s.sql);
      return;
    } catch (error) {
      if (pgErrorFields(error).code !== '55P03' || attempt.pauseAfterMs === null) throw error;
      await lockTimedOut(ctx, m, s, attempt);
      await dropInvalidIndexBeforeRetry(client, m, s, ctx);
    }
  }
}

/**
 * A failed CREATE INDEX CONCURRENTLY leaves an invalid index behind, which
 * would make the retry fail ("already exists") or, with IF NOT EXISTS,
 * silently keep a useless index. Drop it first.
 */
async function dropInvalidIndexBeforeRetry(client: pg.Client, m: PreparedMigration, s: Statement, ctx: EngineContext): Promise<void> {
  if (s.kind !== 'IndexStmt' || !s.node.concurrent || typeof s.node.idxname !== 'string') return;
  const schema = (s.node.relation as { schemaname?: string } | undefined)?.schemaname ?? null;
  const found = await client.query<{ nspname: string; relname: string }>(
    `SELECT n.nspname, c.relname
       FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relname = $1 AND n.nspname = coalesce($2, current_schema()) AND NOT i.indisvalid`,
    [s.node.idxname, schema],
  );
  const invalid = found.rows[0];
  if (!invalid) return;
  const name = `${client.escapeIdentifier(invalid.nspname)}.${client.escapeIdentifier(invalid.relname)}`;
  await client.query(`DROP INDEX CONCURRENTLY IF EXISTS ${name}`);
  ctx.onEvent({ event: 'index.invalid_dropped', version: m.version, file: m.forward.file, index: `${invalid.nspname}.${invalid.relname}` });
}
