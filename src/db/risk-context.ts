import type pg from 'pg';
import { fromPgLocksMode, tablesTouched } from '../core/locks';
import type { ScriptForRisk } from '../core/risk';
import { assessPending, contextKey, predictedShort, type LockingSession, type MigrationRisk, type RiskContext, type RiskThresholds, type TableContext } from '../core/risk-context';
import type { Version } from '../core/version';
import { pgErrorFields } from './sqlstate';

/** How long reading a table's size may wait for a lock before we say the table is locked. */
const sizeLockTimeoutMs = 1_000;

/**
 * `"schema"."table"` from a name as the parser gave it (unquoted names are
 * already folded), or null when it has more than two parts: the quotes that
 * told `app."v1.orders"` from `"app.v1".orders` are gone, so no guess.
 */
function quoted(name: string): string | null {
  const parts = name.split('.');
  return parts.length > 2 ? null : parts.map((part) => `"${part.replace(/"/g, '""')}"`).join('.');
}

/**
 * What the live database says about tables a migration locks: estimated
 * rows, total size and the sessions that hold or wait for locks on them.
 * Read-only, waits for a table lock at most a second (and a second more per
 * table that is locked), and reads no data: only the catalog, pg_locks and
 * pg_stat_activity. Unqualified names resolve with the connection's
 * search_path, not one a migration file sets.
 */
export async function readRiskContext(client: pg.Client, tables: string[]): Promise<RiskContext> {
  const names = [...new Set(tables)];
  // A partitioned or inheritance parent holds no rows itself: rows and size
  // are those of the whole tree, which a rewrite or an index build touches.
  const found = await client.query<{ name: string; oid: string | null; qualified: string | null; reltuples: number | null }>(
    `WITH RECURSIVE wanted AS (
       SELECT w.name, CASE WHEN w.quoted IS NOT NULL THEN to_regclass(w.quoted) END AS root FROM unnest($1::text[], $2::text[]) AS w(name, quoted)
     ), tree AS (
       SELECT root, root AS member FROM wanted WHERE root IS NOT NULL
       UNION ALL
       SELECT tree.root, i.inhrelid::regclass FROM tree JOIN pg_catalog.pg_inherits i ON i.inhparent = tree.member
     ), rows AS (
       SELECT tree.root,
              CASE WHEN bool_and(c.reltuples >= 0 OR c.relkind = 'p') THEN sum(greatest(c.reltuples, 0)) END AS reltuples
         FROM tree JOIN pg_catalog.pg_class c ON c.oid = tree.member
        GROUP BY tree.root
     )
     SELECT wanted.name, c.oid::text AS oid, CASE WHEN c.oid IS NOT NULL THEN format('%I.%I', n.nspname, c.relname) END AS qualified,
            rows.reltuples::float8 AS reltuples
       FROM wanted
       LEFT JOIN pg_catalog.pg_class c ON c.oid = wanted.root
       LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN rows ON rows.root = wanted.root`,
    [names, names.map(quoted)],
  );
  const oids = found.rows.flatMap((r) => (r.oid === null ? [] : [r.oid]));
  const sizes = await totalSizes(client, oids);
  const sessions = await lockingSessions(client, oids);
  const context: RiskContext = new Map();
  for (const row of found.rows) {
    const size = row.oid === null ? undefined : sizes.get(row.oid);
    const table: TableContext =
      row.oid === null
        ? { qualified: null, rows: null, bytes: null, sessions: [], lockedOut: false }
        : {
            qualified: row.qualified,
            // Null when a member was never vacuumed or analyzed (reltuples -1, PostgreSQL 14 and later).
            rows: row.reltuples,
            bytes: size ?? null,
            sessions: sessions.get(row.oid) ?? [],
            lockedOut: size === undefined,
          };
    context.set(contextKey(row.name), table);
  }
  return context;
}

/**
 * pg_total_relation_size takes an ACCESS SHARE lock: bounded, so a held
 * ACCESS EXCLUSIVE cannot hang planning. All tables in one query; when that
 * times out, one by one, and a table whose size still cannot be read is
 * missing from the result (locked out).
 */
async function totalSizes(client: pg.Client, oids: string[]): Promise<Map<string, number | null>> {
  const read = async (some: string[]) => {
    await client.query('BEGIN');
    try {
      await client.query(`SET LOCAL lock_timeout = ${sizeLockTimeoutMs}`);
      const result = await client.query<{ oid: string; bytes: string | null }>(
        `WITH RECURSIVE tree AS (
           SELECT oid AS root, oid AS member FROM unnest($1::oid[]) AS oid
           UNION ALL
           SELECT tree.root, i.inhrelid FROM tree JOIN pg_catalog.pg_inherits i ON i.inhparent = tree.member
         )
         SELECT root::text AS oid, sum(pg_total_relation_size(member))::text AS bytes FROM tree GROUP BY root`,
        [some],
      );
      await client.query('COMMIT');
      return result.rows.map((r) => [r.oid, r.bytes === null ? null : Number(r.bytes)] as const);
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      if (pgErrorFields(error).code === '55P03') return undefined;
      throw error;
    }
  };
  if (oids.length === 0) return new Map();
  const all = await read(oids);
  if (all) return new Map(all);
  const sizes = new Map<string, number | null>();
  for (const oid of oids) for (const [o, bytes] of (await read([oid])) ?? []) sizes.set(o, bytes);
  return sizes;
}

async function lockingSessions(client: pg.Client, oids: string[]): Promise<Map<string, LockingSession[]>> {
  const result = await client.query<{ oid: string; pid: number | null; mode: string; granted: boolean; state: string | null; transaction_ms: number | null; application: string | null }>(
    `SELECT l.relation::text AS oid, l.pid, l.mode, l.granted, a.state,
            (extract(epoch FROM clock_timestamp() - a.xact_start) * 1000)::float8 AS transaction_ms,
            nullif(a.application_name, '') AS application
       FROM pg_catalog.pg_locks l
       LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'relation' AND l.relation = ANY($1::oid[])
        AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
        AND l.pid IS DISTINCT FROM pg_backend_pid()
        -- autovacuum cancels itself when a lock request waits for it
        AND a.backend_type IS DISTINCT FROM 'autovacuum worker'
      ORDER BY a.xact_start NULLS LAST, l.pid`,
    [oids],
  );
  const sessions = new Map<string, LockingSession[]>();
  for (const r of result.rows) {
    const mode = fromPgLocksMode(r.mode);
    if (mode === null) continue;
    // A prepared transaction holds its locks with no backend: pid null.
    const session = { pid: r.pid ?? 0, mode, granted: r.granted, state: r.pid === null ? 'prepared transaction' : r.state, transactionMs: r.transaction_ms, application: r.application };
    sessions.set(r.oid, [...(sessions.get(r.oid) ?? []), session]);
  }
  return sessions;
}

/**
 * Risk of the pending migrations (in order) on this database: findings from
 * the parser, levels moved by what the database says about each table.
 */
export async function assessOnDatabase(
  client: pg.Client,
  pending: ScriptForRisk[],
  thresholds: RiskThresholds,
): Promise<{ risk: Map<Version, MigrationRisk>; tables: Array<TableContext & { table: string }>; short: Set<Version> }> {
  const tables = [...new Set(pending.flatMap((m) => tablesTouched(m.script.statements)))];
  const context = await readRiskContext(client, tables);
  return {
    risk: assessPending(pending, context, thresholds),
    tables: tables.map((table) => ({ table, ...context.get(contextKey(table))! })),
    short: new Set(pending.filter((m) => predictedShort(m.script, context, thresholds)).map((m) => m.version)),
  };
}
