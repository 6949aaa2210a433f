import type pg from 'pg';
import { PgconvoyError } from '../core/errors';
import type { PreparedMigration } from '../core/prepare';
import { compareVersions, type Version } from '../core/version';
import { withTransaction } from './connection';
import { fingerprint, fingerprintDiff } from './fingerprint';
import { recordHookFailure, recordHookRuns, runHookFiles, runHooks, type VersionHooks } from './hooks';
import { checkFence, type Fence } from './lease';
import { asConnectingUser, resetSession, versionLockKey } from './session-state';
import { pgErrorFields } from './sqlstate';
import type { HookRunRecord, UndoResult } from '../contracts/records';
export type { UndoResult };

export class UndoFailedError extends PgconvoyError {
  readonly type = 'UndoFailed';
}

/** An undo script ran but did not put the schema back to what it was before its version. */
export class UndoLeftDifferenceError extends PgconvoyError {
  readonly type = 'UndoLeftDifference';
  constructor(version: Version, file: string, differences: string[]) {
    const shown = differences.slice(0, 20);
    super(
      `undo ${file} (version ${version}) left the schema different from before version ${version}; it was rolled back:\n` +
        shown.map((d) => `  ${d}`).join('\n') +
        (differences.length > shown.length ? `\n  ... and ${differences.length - shown.length} more` : ''),
      { version, file, differences: shown },
    );
  }
}



/**
 * Runs a migration's undo script and marks its ledger row rolled back. A
 * transactional script, the proof and the ledger row commit together, so a
 * retry after a crash at COMMIT finds the version undone and runs nothing
 * twice. When the version recorded the schema before it (it had an undo
 * script when it ran), the undo must get back to exactly that, or it is
 * rolled back and the difference reported. The set's beforeUndo and
 * afterUndo hooks run in the script's transaction, before its first
 * statement and after its last (before the proof: what they leave is part of
 * the schema it sees); a failing one rolls the undo back. A script outside a
 * transaction has its hooks run in one of their own just before and after it.
 */
export async function undoMigration(client: pg.Client, m: PreparedMigration, runId: string, fence?: Fence, options: { revert?: boolean; hooks?: VersionHooks; workflowId?: string } = {}): Promise<UndoResult> {
  const undo = m.undo;
  if (!undo) throw new UndoFailedError(`version ${m.version} has no undo script`, { version: m.version });
  // Compensation undoes what this run applied and marks it rolled back;
  // `pgconvoy undo` (revert) undoes whatever run applied it and marks it undone.
  const done = options.revert ? 'undone' : 'rolled_back';

  /** The version's state in the ledger for this run: undo it, it is done already, or it is not this run's to undo. */
  const state = async (): Promise<{ id: string; schemaBefore: Record<string, string[]> | null } | 'undone'> => {
    if (fence) await checkFence(client, fence);
    const rows = await client.query<{ id: string; status: string; schema_before: Record<string, string[]> | null }>(
      options.revert
        ? `SELECT id::text AS id, status, schema_before FROM pgconvoy.history h WHERE version = $1 AND (status = 'applied' OR (status = 'undone' AND undone_by_run = $2)) ORDER BY h.id DESC LIMIT 1`
        : `SELECT id::text AS id, status, schema_before FROM pgconvoy.history h WHERE version = $1 AND run_id = $2 AND status IN ('applied', 'rolled_back') ORDER BY h.id DESC LIMIT 1`,
      [m.version, runId],
    );
    const row = rows.rows[0];
    if (row?.status === done) return 'undone';
    if (!row) {
      const why = options.revert ? 'is not applied' : 'was not applied by this run';
      throw new UndoFailedError(`version ${m.version} (${undo.file}) ${why}; refusing to undo it`, { version: m.version, file: undo.file });
    }
    return { id: row.id, schemaBefore: row.schema_before };
  };
  const prove = async (schemaBefore: Record<string, string[]> | null): Promise<boolean> => {
    if (schemaBefore === null) return false;
    const now = await fingerprint(client, { inTransaction: true });
    const differences = fingerprintDiff({ sha256: '', parts: schemaBefore }, now);
    if (differences.length > 0) throw new UndoLeftDifferenceError(m.version, undo.file, differences);
    return true;
  };
  const mark = (id: string) =>
    options.revert
      ? client.query(`UPDATE pgconvoy.history SET status = 'undone', undone_by_run = $2, undone_at = clock_timestamp() WHERE id = $1`, [id, runId])
      : client.query(`UPDATE pgconvoy.history SET status = 'rolled_back', finished_at = clock_timestamp() WHERE id = $1`, [id]);

  const ids = { ...(options.workflowId !== undefined ? { workflowId: options.workflowId } : {}), runId };
  const before = options.hooks?.beforeUndo ?? [];
  const after = options.hooks?.afterUndo ?? [];
  const withHooks = (ran: HookRunRecord[]) => (ran.length > 0 ? { hooks: ran } : {});

  let current = undo.script.statements[0];
  try {
    if (undo.script.mode === 'transaction') {
      return await withTransaction(client, async () => {
        await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [versionLockKey, m.version]);
        const found = await state();
        if (found === 'undone') return { status: 'skipped', version: m.version, reason: 'already-undone' } as const;
        const ran = await runHookFiles(client, before, m.version);
        for (const s of undo.script.statements) {
          current = s;
          await client.query(s.sql);
        }
        current = undefined;
        ran.push(...(await runHookFiles(client, after, m.version)));
        await resetSession(client);
        const checked = await prove(found.schemaBefore);
        await mark(found.id);
        await recordHookRuns(client, ran, ids);
        return { status: 'undone', version: m.version, checked, ...withHooks(ran.map((r) => r.record)) } as const;
      }).catch(async (error: unknown) => {
        await recordHookFailure(client, error, ids);
        throw error;
      });
    }
    // Outside a transaction (statements PostgreSQL refuses in one): run, then
    // prove and mark. A crash in between runs the script again, so such undo
    // scripts must be written to run twice (IF EXISTS), like their forward files.
    const found = await withTransaction(client, state);
    if (found === 'undone') return { status: 'skipped', version: m.version, reason: 'already-undone' };
    const hookCtx = { run: ids, version: m.version, ...(fence ? { fence } : {}) };
    const ran = before.length > 0 ? await runHooks(client, before, hookCtx) : [];
    for (const s of undo.script.statements) {
      current = s;
      await client.query(s.sql);
    }
    current = undefined;
    if (after.length > 0) ran.push(...(await runHooks(client, after, hookCtx)));
    const result = await withTransaction(
      client,
      async () => {
        await asConnectingUser(client);
        const again = await state();
        if (again === 'undone') return { status: 'skipped', version: m.version, reason: 'already-undone' } as const;
        const checked = await prove(again.schemaBefore);
        await mark(again.id);
        return { status: 'undone', version: m.version, checked } as const;
      },
      'BEGIN READ WRITE',
    );
    return result.status === 'undone' ? { ...result, ...withHooks(ran) } : result;
  } catch (error) {
    if (error instanceof PgconvoyError) throw error;
    const f = pgErrorFields(error);
    const where = current ? `statement ${current.index}, line ${current.line}` : 'its ledger update';
    const extra = [f.detail && `DETAIL: ${f.detail}`, f.hint && `HINT: ${f.hint}`].filter(Boolean);
    throw new UndoFailedError(`undo ${undo.file} (version ${m.version}) failed at ${where}: ${f.code ? `SQLSTATE ${f.code}: ` : ''}${f.message}${extra.length > 0 ? `\n${extra.join('\n')}` : ''}`, {
      version: m.version,
      file: undo.file,
      sqlstate: f.code ?? null,
    });
  }
}

/** After a failed `pgconvoy undo` was restored from its backup: the versions it marked undone are applied again. */
export async function unmarkUndone(client: pg.Client, runId: string): Promise<Version[]> {
  const result = await client.query<{ version: string }>(
    `UPDATE pgconvoy.history SET status = 'applied', undone_by_run = NULL, undone_at = NULL WHERE status = 'undone' AND undone_by_run = $1 RETURNING version::text AS version`,
    [runId],
  );
  return result.rows.map((r) => r.version).sort((a, b) => compareVersions(a, b));
}

/** What the ledger knows about an applied version for proving an undo: the fingerprint after it, and the schema before it. */
export async function recordedSchema(client: pg.Client, version: Version): Promise<{ fingerprint: string | null; schemaBefore: Record<string, string[]> | null } | undefined> {
  const result = await client.query<{ fingerprint: string | null; schema_before: Record<string, string[]> | null }>(
    `SELECT fingerprint, schema_before FROM pgconvoy.history WHERE version = $1 AND status = 'applied' ORDER BY id DESC LIMIT 1`,
    [version],
  );
  const row = result.rows[0];
  return row ? { fingerprint: row.fingerprint, schemaBefore: row.schema_before } : undefined;
}
