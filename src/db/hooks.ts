import type pg from 'pg';
import type { HookRunRecord } from '../contracts';
import type { ExecutionSettings } from '../core/execution-settings';
import type { HookEvent } from '../core/hooks';
import type { Script } from '../core/statements';
import { PgconvoyError } from '../core/errors';
import { withTransaction } from './connection';
import { LeaseLostError, type Fence } from './lease';
import { classifySqlState, pgErrorFields } from './sqlstate';

/** A hook file, parsed. */
export interface PreparedHook {
  file: string;
  event: HookEvent;
  checksum: string;
  script: Script;
}

/** A statement of a hook file failed: the file, the statement, where it is and what PostgreSQL said. */
export class HookFailedError extends PgconvoyError {
  readonly type = 'HookFailed';
  private readonly transient: boolean;
  override get retryable(): boolean {
    return this.transient;
  }
  constructor(event: HookEvent, file: string, statement: { index: number; line: number; column: number }, of: number, error: unknown) {
    const fields = pgErrorFields(error);
    super(
      `${file} (${event} hook) failed at statement ${statement.index} of ${of}, line ${statement.line}, column ${statement.column}: ${fields.code ? `SQLSTATE ${fields.code}: ` : ''}${fields.message}`,
      { file, event, statement: statement.index, statementsTotal: of, line: statement.line, column: statement.column, sqlstate: fields.code ?? null },
    );
    this.transient = classifySqlState(fields.code) === 'retryable';
  }
}

/**
 * Runs a run-level event's hook files, in the order given, in one
 * transaction of their own: all of them or none. The lease must still be
 * this run's (its row locked until commit, as a migration's ledger write);
 * the execution settings' lock and statement timeouts hold. Each file's run
 * is a row in pgconvoy.hook_runs; a failure is recorded after the rollback.
 */
export async function runHooks(client: pg.Client, hooks: PreparedHook[], ctx: { settings: ExecutionSettings; fence?: Fence; run: { workflowId?: string; runId?: string } }): Promise<HookRunRecord[]> {
  const done: Array<{ hook: PreparedHook; record: HookRunRecord }> = [];
  let failed: { hook: PreparedHook; started: bigint; error: HookFailedError } | undefined;
  try {
    await withTransaction(client, async () => {
      const check = await client.query<{ fenced: boolean | null }>(
        `SELECT (SELECT true FROM pgconvoy.lease WHERE token = $1 AND expires_at > now() FOR KEY SHARE) AS fenced,
                set_config('lock_timeout', $2, true), set_config('statement_timeout', $3, true)`,
        [ctx.fence?.token ?? null, `${ctx.settings.lockTimeoutMs}ms`, `${ctx.settings.statementTimeoutMs}ms`],
      );
      if (ctx.fence && !check.rows[0]?.fenced) throw new LeaseLostError(ctx.fence.alias, ctx.fence.token);
      for (const hook of hooks) {
        const started = process.hrtime.bigint();
        for (const s of hook.script.statements) {
          try {
            await client.query(s.sql);
          } catch (error) {
            failed = { hook, started, error: new HookFailedError(hook.event, hook.file, s, hook.script.statements.length, error) };
            throw failed.error;
          }
        }
        done.push({ hook, record: { file: hook.file, event: hook.event, version: null, durationMs: msSince(started), status: 'ok', error: null } });
      }
      for (const { hook, record } of done) await recordHookRun(client, record, hook.checksum, ctx.run);
    });
  } catch (error) {
    if (failed) {
      await recordHookRun(client, { file: failed.hook.file, event: failed.hook.event, version: null, durationMs: msSince(failed.started), status: 'failed', error: failed.error.message }, failed.hook.checksum, ctx.run).catch(() => undefined);
    }
    throw error;
  }
  return done.map((d) => d.record);
}

const msSince = (t: bigint): number => Number((process.hrtime.bigint() - t) / 1_000_000n);

async function recordHookRun(client: pg.Client, run: HookRunRecord, checksum: string, ids: { workflowId?: string; runId?: string }): Promise<void> {
  await client.query(
    `INSERT INTO pgconvoy.hook_runs (event, file, checksum, version, status, execution_ms, error_message, workflow_id, run_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
    [run.event, run.file, checksum, run.version, run.status, run.durationMs, run.error, ids.workflowId ?? null, ids.runId ?? null],
  );
}
