import type pg from 'pg';
import { sha256Hex } from '../core/checksum';
import { PgconvoyError } from '../core/errors';
import { lockSchedule, statementTimeoutFor, type LockAttempt } from '../core/execution-settings';
import type { PreparedMigration } from '../core/prepare';
import type { Statement } from '../core/statements';
import type { ApplyResult, HookRunRecord } from '../contracts/records';
import { alreadyApplied, failurePoint, fenced, lockTimedOut, spentMs, type EngineContext } from './engine-context';
import { LockTimeoutError, MigrationBusyError, MigrationFailedError } from './errors';
import { fingerprint } from './fingerprint';
import { HookFailedError, runHooks } from './hooks';
import { finishAttempt, insertHistory, latestAttempt, migrationColumns, recordProgress } from './ledger';
import { versionLockKey } from './session-state';
import { pgErrorFields } from './sqlstate';

/**
 * A no-transaction file, statement by statement: each statement's progress
 * in the ledger, a resumed attempt going on from the first statement not
 * done, lock timeouts retried per statement, an invalid index left by a
 * failed CONCURRENTLY build dropped before the retry. Its beforeEachMigrate
 * and afterEachMigrate hooks run in a transaction of their own just before
 * its first statement and just after its last (it has no transaction to
 * share); a resumed attempt runs them again.
 */

async function setTimeouts(client: pg.Client, lockTimeoutMs: number, statementTimeoutMs: number, local: boolean): Promise<void> {
  await client.query(`SELECT set_config('lock_timeout', $1, $3), set_config('statement_timeout', $2, $3)`, [
    `${lockTimeoutMs}ms`,
    `${statementTimeoutMs}ms`,
    local,
  ]);
}

/** sha256 over the first `count` statements: identifies the part of a file that already ran. */
export function prefixSha(statements: Statement[], count: number): string {
  return sha256Hex(statements.slice(0, count).map((s) => s.sql).join('\n;\n'));
}

export async function applyStatementByStatement(client: pg.Client, m: PreparedMigration, ctx: EngineContext): Promise<ApplyResult> {
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
      });
    });
    if (from > 0 && previous) await fenced(client, ctx, () => carrySchemaBefore(client, previous.id, id));

    let done = from;
    /** The attempt failed: its row says where (no statement: a hook), and the error goes on. */
    const fail = async (error: unknown, s: Statement | undefined): Promise<never> => {
      const failure = error instanceof PgconvoyError ? error : undefined;
      const fields = pgErrorFields(error);
      const sqlstate = error instanceof HookFailedError ? error.sqlstate : fields.code;
      const final =
        failure ??
        (fields.code === '55P03' && s
          ? new LockTimeoutError(failurePoint(m, s, 'no-transaction', done), schedule.length, schedule[schedule.length - 1]!.lockTimeoutMs)
          : s
            ? new MigrationFailedError(failurePoint(m, s, 'no-transaction', done, fields.position), fields)
            : error);
      await fenced(client, ctx, () =>
        finishAttempt(client, id, {
          status: 'failed',
          executionMs: spentMs(started, ctx),
          ...(sqlstate ? { errorSqlstate: sqlstate } : {}),
          errorMessage: failure?.message ?? fields.message,
          ...(s ? { errorStatement: s.index } : {}),
        }),
      ).catch(() => undefined);
      throw final;
    };
    const hookRuns: HookRunRecord[] = [];
    const runEachHooks = async (event: 'beforeEachMigrate' | 'afterEachMigrate') => {
      const hooks = ctx.hooks?.[event] ?? [];
      if (hooks.length > 0) hookRuns.push(...(await runHooks(client, hooks, { settings: ctx.settings, run: ctx.run, version: m.version, ...(ctx.fence ? { fence: ctx.fence } : {}) }).catch((error: unknown) => fail(error, undefined))));
    };

    await runEachHooks('beforeEachMigrate');
    // The schema before the version (an undo script's proof): as its beforeEachMigrate hooks leave it.
    if (from === 0 && m.undo) {
      const schemaBefore = (await fingerprint(client)).parts;
      await fenced(client, ctx, () => recordSchemaBefore(client, id, schemaBefore));
    }
    for (const s of statements.slice(from)) {
      try {
        // A runner that lost its lease stops before its next statement.
        if (ctx.fence) await fenced(client, ctx, () => Promise.resolve());
        await dropInvalidIndexBeforeRetry(client, m, s, ctx);
        await runWithLockRetries(client, m, s, schedule, statementTimeoutMs, ctx);
      } catch (error) {
        await fail(error, s);
      }
      done = s.index;
      await fenced(client, ctx, () => recordProgress(client, id, done, prefixSha(statements, done)));
      ctx.onEvent({ event: 'statement.done', version: m.version, file: m.forward.file, statement: s.index, of: total });
    }
    await runEachHooks('afterEachMigrate');
    const durationMs = spentMs(started, ctx);
    await fenced(client, ctx, async () =>
      finishAttempt(client, id, { status: 'applied', executionMs: durationMs, audit: { ...ctx.audit?.(m.version), fingerprint: (await fingerprint(client, { inTransaction: true })).sha256 } }),
    );
    return { status: 'applied', version: m.version, durationMs, statements: total, ...(hookRuns.length > 0 ? { hooks: hookRuns } : {}) };
  } finally {
    await client.query('SELECT pg_advisory_unlock($1, hashtext($2))', [versionLockKey, m.version]).catch(() => undefined);
  }
}

async function recordSchemaBefore(client: pg.Client, id: string, parts: Record<string, string[]>): Promise<void> {
  await client.query(`UPDATE pgconvoy.history SET schema_before = $2::jsonb WHERE id = $1`, [id, JSON.stringify(parts)]);
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
