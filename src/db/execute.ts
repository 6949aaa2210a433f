import type pg from 'pg';
import { PgconvoyError } from '../core/errors';
import { lockSchedule, statementTimeoutFor } from '../core/execution-settings';
import type { PreparedMigration } from '../core/prepare';
import type { Statement } from '../core/statements';
import type { Version } from '../core/version';
import { withTransaction } from './connection';
import { appliedAs, elapsedMs, failurePoint, fenced, lockTimedOut, spentMs, type AppliedRecord, type EngineContext } from './engine-context';
import { GroupNotPossibleError, LockTimeoutError, MigrationFailedError, type FailurePoint } from './errors';
import { applyStatementByStatement } from './execute-outside';
import { fullReads, ownersNamed, type CatalogRecord, type CatalogTracker } from './catalog-tracker';
import { HookFailedError, recordHookFailure, recordHookRuns, runHookFiles, type HookRun } from './hooks';
import { insertHistory, migrationColumns, type AuditColumns } from './ledger';
import { LeaseLostError } from './lease';
import { resetSession, sessionSettingsAgain, versionLockKey } from './session-state';
import { pgErrorFields } from './sqlstate';
import type { ApplyResult } from '../contracts/records';
export type { ApplyResult };
export type { EngineContext, EngineEvent, RunContext } from './engine-context';
export { positionInFile } from './engine-context';
export { prefixSha } from './execute-outside';

/** The audit columns for a version: the run's risk and approval, the fingerprint of the catalog after it and, for an undo script's proof, the schema before it. */
function auditOf(m: PreparedMigration, ctx: EngineContext, schema: CatalogRecord): AuditColumns {
  return { ...ctx.audit?.(m.version), fingerprint: schema.fingerprint, ...(schema.schemaBefore ? { schemaBefore: schema.schemaBefore } : {}) };
}

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

/** The version's lock, as SQL to send with other statements (a version is digits: safe as a literal). */
function versionLock(version: Version): string {
  if (!/^\d+$/.test(version)) throw new Error(`not a version: ${version}`);
  return `SELECT pg_catalog.pg_advisory_xact_lock(${versionLockKey}, pg_catalog.hashtext('${version}'))`;
}

/** BEGIN with the version's lock taken in the same round trip. */
function beginLocked(version: Version): `BEGIN; ${string}` {
  return `BEGIN; ${versionLock(version)}`;
}

/**
 * In a migration's transaction, once it holds the version's lock, in one
 * round trip: the lease is still this run's (its row locked until commit,
 * as checkFence), the ledger's record of the version, and for the catalog
 * tracker the ledger's newest row, the tables the migration names as they
 * are before it and the schemas of the session's search_path (the tracker
 * resolves names later under the catalog's own path); the migration's
 * timeouts are set for the transaction.
 * Prepared once per connection: it runs once per migration.
 */
async function preflight(client: pg.Client, m: PreparedMigration, ctx: EngineContext, catalog: CatalogTracker, lockTimeoutMs: number, statementTimeoutMs: number): Promise<{ record?: AppliedRecord; newest: string; owners: string[]; path: string[] }> {
  const names = catalog.names(m);
  const result = await client.query<{ fenced: boolean | null; newest: string; owners: string[]; path: string[]; checksum: string | null; run_id: string | null; execution_ms: number | null; statements_total: number | null }>({
    name: 'pgconvoy_apply_preflight',
    text: `SELECT (SELECT true FROM pgconvoy.lease WHERE token = $1 AND expires_at > now() FOR KEY SHARE) AS fenced,
         (SELECT coalesce(max(id), 0)::text FROM pgconvoy.history) AS newest,
         ARRAY(SELECT DISTINCT oid::text FROM (${ownersNamed('$5', '$6')}) o) AS owners, current_schemas(true)::text[] AS path,
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
    path: row.path,
    ...(row.checksum !== null ? { record: { checksum: row.checksum, runId: row.run_id, executionMs: row.execution_ms ?? 0, statements: row.statements_total ?? 0 } } : {}),
  };
}

/** Where a failed version stopped, for its ledger row: a statement of its file, or (a hook failed) none. */
interface FailureFacts {
  statementsDone: number;
  statementsTotal: number;
  statement: number | null;
}

async function recordFailure(client: pg.Client, m: PreparedMigration, started: { at: Date; t: bigint }, ctx: EngineContext, point: FailureFacts, sqlstate: string | undefined, message: string): Promise<void> {
  if (ctx.recordFailure === false) return;
  try {
    await fenced(client, ctx, () => insertHistory(client, {
      ...migrationColumns(m),
      status: 'failed',
      startedAt: started.at,
      executionMs: spentMs(started, ctx),
      statementsDone: point.statementsDone,
      statementsTotal: point.statementsTotal,
      ...(point.statement !== null ? { errorStatement: point.statement } : {}),
      ...(sqlstate ? { errorSqlstate: sqlstate } : {}),
      errorMessage: message,
      ...ctx.run,
    }));
  } catch {
    // The connection may be gone (that may be why the migration failed); the
    // error itself still reaches the workflow and the operator.
  }
}

/**
 * A version's beforeEachMigrate or afterEachMigrate hook failed and its
 * transaction rolled back: the version is failed in the ledger, as a failing
 * statement would leave it (no statement of its file counted done), and the
 * hook's own run is a row in pgconvoy.hook_runs.
 */
async function hookFailed(client: pg.Client, migrations: PreparedMigration[], started: { at: Date; t: bigint }, ctx: EngineContext, error: HookFailedError): Promise<void> {
  const m = migrations.find((candidate) => candidate.version === error.run.record.version);
  if (m === undefined || ctx.recordFailure === false) return;
  await recordFailure(client, m, started, ctx, { statementsDone: 0, statementsTotal: m.forward.script.statements.length, statement: null }, error.sqlstate, error.message);
  await recordHookFailure(client, error, ctx.run);
}

async function applyInTransaction(client: pg.Client, migrations: PreparedMigration[], ctx: EngineContext): Promise<ApplyResult[]> {
  const mode: FailurePoint['mode'] = migrations.length > 1 ? 'group' : 'transaction';
  const strictest = Math.min(...migrations.map((m) => m.forward.script.directives.lockTimeoutMs ?? Infinity));
  const schedule = lockSchedule(ctx.settings, Number.isFinite(strictest) ? { lockTimeoutMs: strictest } : undefined);
  const started = { at: new Date(), t: process.hrtime.bigint() };

  const hooks = { before: ctx.hooks?.beforeEachMigrate ?? [], after: ctx.hooks?.afterEachMigrate ?? [] };
  // The tracker infers a version's catalog changes from what its file names; a hook's changes it cannot see.
  const catalog = hooks.before.length + hooks.after.length > 0 ? fullReads : (ctx.catalog ?? fullReads);
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
          // The previous one left the catalog-read settings (resetSession): this one runs under the session's.
          if (index > 0) await client.query(`${sessionSettingsAgain}; ${versionLock(m.version)}`);
          const statementTimeoutMs = statementTimeoutFor(ctx.settings, m.forward.script.directives);
          const { record, newest, owners, path } = await preflight(client, m, ctx, catalog, attempt.lockTimeoutMs, statementTimeoutMs);
          const done = appliedAs(record, m, ctx);
          if (done) {
            results.push(done);
            continue;
          }
          // The schema before a version (an undo script's proof) is the one its beforeEachMigrate hooks leave.
          const ran: HookRun[] = await runHookFiles(client, hooks.before, m.version);
          const start = await catalog.before(client, m, { newestLedgerId: newest, owners, path });
          for (const s of m.forward.script.statements) {
            current = { m, s };
            const stop = ctx.interrupted?.();
            if (stop) throw stop;
            await client.query(s.sql);
          }
          current = undefined;
          ran.push(...(await runHookFiles(client, hooks.after, m.version)));
          const durationMs = from === null ? spentMs(started, ctx) : elapsedMs(from);
          from = process.hrtime.bigint();
          const total = m.forward.script.statements.length;
          await resetSession(client, { timeouts: { lockTimeoutMs: attempt.lockTimeoutMs, statementTimeoutMs }, catalogRead: true });
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
          await recordHookRuns(client, ran, ctx.run);
          results.push({ status: 'applied', version: m.version, durationMs, statements: total, ...(ran.length > 0 ? { hooks: ran.map((r) => r.record) } : {}) });
        }
        return results;
      }, beginLocked(migrations[0]!.version));
      committed = true;
      return applied;
    } catch (error) {
      // Stopped from outside (its statement, a hook's or the ledger write cancelled): rolled back, not a failure.
      const stop = ctx.interrupted?.();
      if (stop && (!(error instanceof PgconvoyError) || error === stop || (error instanceof HookFailedError && error.sqlstate === '57014'))) throw stop;
      if (error instanceof HookFailedError) await hookFailed(client, migrations, started, ctx, error);
      if (error instanceof PgconvoyError || current === undefined) throw error;
      const fields = pgErrorFields(error);
      const point = failurePoint(current.m, current.s, mode, 0, fields.position);
      if (fields.code === '55P03') {
        if (attempt.pauseAfterMs !== null) {
          await lockTimedOut(ctx, current.m, current.s, attempt);
          continue;
        }
        const failure = new LockTimeoutError(point, attempt.attempt, attempt.lockTimeoutMs);
        await recordFailure(client, current.m, started, ctx, failure.point, fields.code, failure.message);
        throw failure;
      }
      const failure = new MigrationFailedError(point, fields);
      await recordFailure(client, current.m, started, ctx, failure.point, fields.code, fields.message);
      throw failure;
    } finally {
      catalog.settled(committed);
    }
  }
  throw new Error('unreachable: the lock schedule is never empty');
}
