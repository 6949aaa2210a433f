import type pg from 'pg';
import type { HookRunRecord } from '../contracts';
import type { ExecutionSettings } from '../core/execution-settings';
import type { HookEvent, VersionHookEvent } from '../core/hooks';
import type { Script } from '../core/statements';
import type { Version } from '../core/version';
import { PgconvoyError } from '../core/errors';
import { withTransaction } from './connection';
import { positionInFile } from './engine-context';
import { LeaseLostError, type Fence } from './lease';
import { classifySqlState, pgErrorFields } from './sqlstate';

/** A hook file, parsed. */
export interface PreparedHook {
  file: string;
  event: HookEvent;
  checksum: string;
  script: Script;
}

/** The hooks that run around each version, by event (none: an empty list). */
export type VersionHooks = Record<VersionHookEvent, PreparedHook[]>;

/** Who ran a hook, for its row in pgconvoy.hook_runs. */
interface RunIds {
  workflowId?: string;
  runId?: string;
}

/** A hook file's run, with the checksum its row records. */
export interface HookRun {
  record: HookRunRecord;
  checksum: string;
}

/**
 * A statement of a hook file failed: the file, the version it ran for (an
 * each-migration or undo hook), the statement, where it is and what
 * PostgreSQL said. `run` is the failed file's row for pgconvoy.hook_runs,
 * written once its transaction rolled back.
 */
export class HookFailedError extends PgconvoyError {
  readonly type = 'HookFailed';
  readonly run: HookRun;
  readonly sqlstate: string | undefined;
  private readonly transient: boolean;
  override get retryable(): boolean {
    return this.transient;
  }
  constructor(hook: PreparedHook, version: Version | null, statement: { index: number; line: number; column: number }, durationMs: number, error: unknown) {
    const fields = pgErrorFields(error);
    const of = hook.script.statements.length;
    const what = version === null ? `${hook.event} hook` : `${hook.event} hook of version ${version}`;
    const message = `${hook.file} (${what}) failed at statement ${statement.index} of ${of}, line ${statement.line}, column ${statement.column}: ${fields.code ? `SQLSTATE ${fields.code}: ` : ''}${fields.message}`;
    super(message, { file: hook.file, event: hook.event, version, statement: statement.index, statementsTotal: of, line: statement.line, column: statement.column, sqlstate: fields.code ?? null });
    this.sqlstate = fields.code;
    this.transient = classifySqlState(fields.code) === 'retryable';
    this.run = { record: { file: hook.file, event: hook.event, version, durationMs, status: 'failed', error: message }, checksum: hook.checksum };
  }
}

/**
 * Runs hook files, in the order given, in the transaction the caller holds
 * (its timeouts hold); `version` is the version they run for, null for a
 * run-level event. Throws HookFailedError at the first failing statement.
 */
export async function runHookFiles(client: pg.Client, hooks: readonly PreparedHook[], version: Version | null): Promise<HookRun[]> {
  const done: HookRun[] = [];
  for (const hook of hooks) {
    const started = process.hrtime.bigint();
    for (const s of hook.script.statements) {
      try {
        await client.query(s.sql);
      } catch (error) {
        const { position } = pgErrorFields(error);
        const at = positionInFile(s, position === undefined ? undefined : Number(position));
        throw new HookFailedError(hook, version, { index: s.index, ...at }, msSince(started), error);
      }
    }
    done.push({ record: { file: hook.file, event: hook.event, version, durationMs: msSince(started), status: 'ok', error: null }, checksum: hook.checksum });
  }
  return done;
}

/**
 * Runs hook files in one transaction of their own: all of them or none.
 * The lease must still be this run's (its row locked until commit, as a
 * migration's ledger write); the execution settings' lock and statement
 * timeouts hold (without them, the session's). Each file's run is a row in
 * pgconvoy.hook_runs; a failure is recorded after the rollback. Run-level
 * events, and the hooks of a no-transaction file or undo script (`version`).
 */
export async function runHooks(client: pg.Client, hooks: readonly PreparedHook[], ctx: { settings?: ExecutionSettings; fence?: Fence; run: RunIds; version?: Version }): Promise<HookRunRecord[]> {
  try {
    return await withTransaction(client, async () => {
      const check = await client.query<{ fenced: boolean | null }>(
        `SELECT (SELECT true FROM pgconvoy.lease WHERE token = $1 AND expires_at > now() FOR KEY SHARE) AS fenced,
                set_config('lock_timeout', coalesce($2, current_setting('lock_timeout')), true),
                set_config('statement_timeout', coalesce($3, current_setting('statement_timeout')), true)`,
        [ctx.fence?.token ?? null, ctx.settings ? `${ctx.settings.lockTimeoutMs}ms` : null, ctx.settings ? `${ctx.settings.statementTimeoutMs}ms` : null],
      );
      if (ctx.fence && !check.rows[0]?.fenced) throw new LeaseLostError(ctx.fence.alias, ctx.fence.token);
      const done = await runHookFiles(client, hooks, ctx.version ?? null);
      await recordHookRuns(client, done, ctx.run);
      return done.map((d) => d.record);
    });
  } catch (error) {
    await recordHookFailure(client, error, ctx.run);
    throw error;
  }
}

const msSince = (t: bigint): number => Number((process.hrtime.bigint() - t) / 1_000_000n);

/** The hook files' rows in pgconvoy.hook_runs, in the caller's transaction (a rollback takes them with it). */
export async function recordHookRuns(client: pg.Client, runs: readonly HookRun[], ids: RunIds): Promise<void> {
  for (const { record, checksum } of runs) {
    await client.query(
      `INSERT INTO pgconvoy.hook_runs (event, file, checksum, version, status, execution_ms, error_message, workflow_id, run_id)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [record.event, record.file, checksum, record.version, record.status, record.durationMs, record.error, ids.workflowId ?? null, ids.runId ?? null],
    );
  }
}

/**
 * A failed hook's row, once its transaction rolled back (nothing for any
 * other error). Best effort: the connection may be gone, and the error
 * itself still reaches the run.
 */
export async function recordHookFailure(client: pg.Client, error: unknown, ids: RunIds): Promise<void> {
  if (error instanceof HookFailedError) await recordHookRuns(client, [error.run], ids).catch(() => undefined);
}
