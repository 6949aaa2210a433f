import type pg from 'pg';
import { PgconvoyError } from '../core/errors';
import type { Migration } from '../core/migration-set';
import { lineAndColumn } from '../core/text-position';
import type { Version } from '../core/version';
import { withTransaction } from './connection';
import { insertHistory } from './ledger';
import { classifySqlState, pgErrorFields, type PgErrorFields } from './sqlstate';

/** Namespace of the per-version transaction lock (any constant int4). */
const versionLockKey = 1_886_417_250;

export interface RunContext {
  workflowId?: string;
  runId?: string;
}

export type ApplyResult =
  | { status: 'applied'; version: Version; durationMs: number }
  | { status: 'skipped'; version: Version; reason: 'already-applied' };

/** A migration's SQL failed; the message says where and why, in PostgreSQL's words. */
export class MigrationFailedError extends PgconvoyError {
  readonly type = 'MigrationFailed';
  readonly retryable: boolean;
  constructor(readonly migration: { version: Version; file: string }, readonly pgError: PgErrorFields, readonly location?: { line: number; column: number }) {
    const where = location ? ` at line ${location.line}, column ${location.column}` : '';
    const sqlstate = pgError.code ? `SQLSTATE ${pgError.code}: ` : '';
    const extra = [pgError.detail && `DETAIL: ${pgError.detail}`, pgError.hint && `HINT: ${pgError.hint}`].filter(Boolean);
    super(
      `${migration.file} (version ${migration.version}) failed${where}: ${sqlstate}${pgError.message}` +
        (extra.length > 0 ? `\n${extra.join('\n')}` : ''),
      { version: migration.version, file: migration.file, sqlstate: pgError.code ?? null, location: location ?? null },
    );
    this.retryable = classifySqlState(pgError.code) === 'retryable';
  }
}

/** The ledger holds this version with another checksum: the file was edited after it ran. */
export class AlreadyAppliedDifferentlyError extends PgconvoyError {
  readonly type = 'ChecksumMismatch';
  readonly retryable = false;
  constructor(version: Version, file: string, applied: string, onDisk: string) {
    super(
      `${file} (version ${version}) is already applied with checksum ${applied.slice(0, 12)}, but the file now has ${onDisk.slice(0, 12)}`,
      { version, file },
    );
  }
}

/**
 * Applies one migration in its own transaction together with its ledger row,
 * so either both are committed or neither is. Idempotent: a version already
 * applied with the same checksum is skipped. A failure rolls the migration
 * back and records a `failed` row.
 */
export async function applyMigration(client: pg.Client, migration: Migration, context: RunContext): Promise<ApplyResult> {
  const startedAt = new Date();
  const started = process.hrtime.bigint();
  const { file, checksum, sql } = migration.forward;
  try {
    return await withTransaction(client, async () => {
      // A second runner for the same version waits here, then sees it applied.
      await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [versionLockKey, migration.version]);
      const existing = await client.query<{ checksum: string }>(
        `SELECT checksum FROM pgconvoy.history WHERE version = $1 AND status = 'applied'`,
        [migration.version],
      );
      const applied = existing.rows[0];
      if (applied) {
        if (applied.checksum !== checksum) throw new AlreadyAppliedDifferentlyError(migration.version, file, applied.checksum, checksum);
        return { status: 'skipped', version: migration.version, reason: 'already-applied' } as const;
      }
      // The whole file goes in one simple-protocol query: PostgreSQL runs its
      // statements in order inside the transaction opened above.
      if (sql.trim() !== '') await client.query(sql);
      const durationMs = Number((process.hrtime.bigint() - started) / 1_000_000n);
      await insertHistory(client, {
        version: migration.version,
        description: migration.description,
        file,
        checksum,
        status: 'applied',
        startedAt,
        executionMs: durationMs,
        ...context,
      });
      return { status: 'applied', version: migration.version, durationMs } as const;
    });
  } catch (error) {
    if (error instanceof PgconvoyError) throw error;
    const fields = pgErrorFields(error);
    const position = fields.position === undefined ? undefined : lineAndColumn(sql, Number(fields.position));
    const failure = new MigrationFailedError({ version: migration.version, file }, fields, position);
    await recordFailure(client, migration, startedAt, started, fields, context);
    throw failure;
  }
}

async function recordFailure(
  client: pg.Client,
  migration: Migration,
  startedAt: Date,
  started: bigint,
  fields: PgErrorFields,
  context: RunContext,
): Promise<void> {
  try {
    await insertHistory(client, {
      version: migration.version,
      description: migration.description,
      file: migration.forward.file,
      checksum: migration.forward.checksum,
      status: 'failed',
      startedAt,
      executionMs: Number((process.hrtime.bigint() - started) / 1_000_000n),
      errorSqlstate: fields.code,
      errorMessage: fields.message,
      ...context,
    });
  } catch {
    // The connection may be gone (that may be why the migration failed); the
    // error itself still reaches the workflow and the operator.
  }
}
