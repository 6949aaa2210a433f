import type pg from 'pg';
import { PgconvoyError } from '../core/errors';
import type { PreparedMigration } from '../core/prepare';
import { withTransaction } from './connection';
import { checkFence, type Fence } from './lease';
import { pgErrorFields } from './sqlstate';

export class UndoFailedError extends PgconvoyError {
  readonly type = 'UndoFailed';
  readonly retryable = false;
}

/**
 * Runs a migration's undo script and marks its ledger row rolled back: in one
 * transaction for a transactional script, statement by statement otherwise.
 */
export async function undoMigration(client: pg.Client, m: PreparedMigration, runId: string, fence?: Fence): Promise<void> {
  const undo = m.undo;
  if (!undo) throw new UndoFailedError(`version ${m.version} has no undo script`, { version: m.version });
  const mark = async () => {
    if (fence) await checkFence(client, fence);
    await client.query(
      `UPDATE pgconvoy.history SET status = 'rolled_back', finished_at = clock_timestamp() WHERE version = $1 AND status = 'applied' AND run_id = $2`,
      [m.version, runId],
    );
  };
  let current = undo.script.statements[0];
  try {
    if (undo.script.mode === 'transaction') {
      await withTransaction(client, async () => {
        await mark();
        for (const s of undo.script.statements) {
          current = s;
          await client.query(s.sql);
        }
      });
    } else {
      for (const s of undo.script.statements) {
        current = s;
        await client.query(s.sql);
      }
      await withTransaction(client, mark);
    }
  } catch (error) {
    if (error instanceof PgconvoyError) throw error;
    const f = pgErrorFields(error);
    throw new UndoFailedError(
      `undo ${undo.file} (version ${m.version}) failed at statement ${current?.index ?? '?'}, line ${current?.line ?? '?'}: ${f.code ? `SQLSTATE ${f.code}: ` : ''}${f.message}`,
      { version: m.version, file: undo.file, sqlstate: f.code ?? null },
    );
  }
}
