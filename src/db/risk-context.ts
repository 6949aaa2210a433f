import type pg from 'pg';
import { fromPgLocksMode, tablesTouched } from '../core/locks';
import { assessPending, contextKey, type LockingSession, type MigrationRisk, type RiskContext, type RiskThresholds, type ScriptForRisk, type TableContext } from '../core/risk';
import type { Version } from '../core/version';
import { pgErrorFields } from './sqlstate';

/** How long reading a table's size may wait for a lock before we say the table is locked. */
const sizeLockTimeoutMs = 1_000;

/** `"schema"."table"` from a name as the parser gave it (unquoted names are already folded). */
function quoted(name: string): string {
  return name
    .split('.')
    .map((part) => `"${part.replace(/"/g, '""')}"`)
    .join('.');
}

/**
 * What the live database says about tables a migration locks: estimated
 * rows, total size and the sessions that hold or wait for locks on them.
 * Read-only, never waits for a table lock for more than a second, and reads
 * no data (only the catalog and pg_stat_activity).
 */
export async function readRiskContext(client: pg.Client, tables: string[]): Promise<RiskContext> {
  const context: RiskContext = new Map();
  for (const name of [...new Set(tables)]) {
    const found = await client.query<{ oid: string; qualified: string; reltuples: number }>(
      `SELECT c.oid::text AS oid, format('%I.%I', n.nspname, c.relname) AS qualified, c.reltuples::float8 AS reltuples
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.oid = to_regclass($1)`,
      [quoted(name)],
    );
    const row = found.rows[0];
    if (!row) {
      context.set(contextKey(name), { qualified: null, rows: null, bytes: null, sessions: [], lockedOut: false });
      continue;
    }
    const { bytes, lockedOut } = await totalSize(client, row.oid);
    const table: TableContext = {
      qualified: row.qualified,
      // -1 (PostgreSQL 14 and later) means never vacuumed or analyzed.
      rows: row.reltuples < 0 ? null : row.reltuples,
      bytes,
      sessions: await lockingSessions(client, row.oid),
      lockedOut,
    };
    context.set(contextKey(name), table);
  }
  return context;
}

/** pg_total_relation_size takes an ACCESS SHARE lock: bounded, so a held ACCESS EXCLUSIVE cannot hang planning. */
async function totalSize(client: pg.Client, oid: string): Promise<{ bytes: number | null; lockedOut: boolean }> {
  await client.query('BEGIN');
  try {
    await client.query(`SET LOCAL lock_timeout = ${sizeLockTimeoutMs}`);
    const size = await client.query<{ bytes: string | null }>('SELECT pg_total_relation_size($1::oid)::text AS bytes', [oid]);
    await client.query('COMMIT');
    const bytes = size.rows[0]?.bytes;
    return { bytes: bytes === null || bytes === undefined ? null : Number(bytes), lockedOut: false };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    if (pgErrorFields(error).code === '55P03') return { bytes: null, lockedOut: true };
    throw error;
  }
}

async function lockingSessions(client: pg.Client, oid: string): Promise<LockingSession[]> {
  const result = await client.query<{ pid: number | null; mode: string; granted: boolean; state: string | null; transaction_ms: number | null; application: string | null }>(
    `SELECT l.pid, l.mode, l.granted, a.state,
            (extract(epoch FROM clock_timestamp() - a.xact_start) * 1000)::float8 AS transaction_ms,
            nullif(a.application_name, '') AS application
       FROM pg_catalog.pg_locks l
       LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'relation' AND l.relation = $1::oid
        AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
        AND l.pid IS DISTINCT FROM pg_backend_pid()
      ORDER BY a.xact_start NULLS LAST, l.pid`,
    [oid],
  );
  return result.rows.flatMap((r) => {
    const mode = fromPgLocksMode(r.mode);
    if (mode === null) return [];
    // A prepared transaction holds its locks with no backend: pid null.
    return [{ pid: r.pid ?? 0, mode, granted: r.granted, state: r.pid === null ? 'prepared transaction' : r.state, transactionMs: r.transaction_ms, application: r.application }];
  });
}

/**
 * Risk of the pending migrations (in order) on this database: findings from
 * the parser, levels moved by what the database says about each table.
 */
export async function assessOnDatabase(
  client: pg.Client,
  pending: ScriptForRisk[],
  thresholds: RiskThresholds,
): Promise<{ risk: Map<Version, MigrationRisk>; tables: Array<TableContext & { table: string }> }> {
  const tables = [...new Set(pending.flatMap((m) => tablesTouched(m.script.statements)))];
  const context = await readRiskContext(client, tables);
  return { risk: assessPending(pending, context, thresholds), tables: tables.map((table) => ({ table, ...context.get(contextKey(table))! })) };
}
