import type pg from 'pg';
import type { WatchBaseline, WatchSample } from '../contracts/watch';
import { withTransaction } from './connection';
export type { WatchBaseline, WatchSample };

export interface SampleOptions {
  /** The backend doing the run's work (pg_backend_pid() of its connection). */
  backendPid?: number;
  baseline?: WatchBaseline;
  /** Default 5 s. */
  longQueryMs?: number;
  /** Bounds on the sample's own query: it must never queue behind the migration it watches. */
  lockTimeoutMs?: number;
  statementTimeoutMs?: number;
}

interface Row {
  blocked_pids: number[];
  blocked_wait_ms: number | null;
  longest_lock_wait_ms: number | null;
  long_queries: Array<{ pid: number; duration_ms: number; waiting: boolean; query: string }> | null;
  database_bytes: string;
  wal_lsn: string | null;
  wal_bytes: string | null;
  replicas: Array<{ name: string; state: string; lag_bytes: string | number | null; replay_lag_ms: number | null }> | null;
}

/**
 * Samples the database on a connection of its own, in one read-only
 * statement bounded by `lock_timeout` and `statement_timeout` (1 s and 2 s by
 * default), so a watch never waits behind the DDL it watches. Works on
 * PostgreSQL 13 and later; a standby has no WAL position of its own and no
 * replicas to report. pg_stat_replication lists the standbys only to a
 * superuser or a member of pg_monitor; to others it shows none.
 */
export async function sampleDatabase(client: pg.Client, options: SampleOptions = {}): Promise<{ sample: WatchSample; baseline: WatchBaseline }> {
  const lockTimeoutMs = options.lockTimeoutMs ?? 1_000;
  const statementTimeoutMs = options.statementTimeoutMs ?? 2_000;
  const row = await withTransaction(
    client,
    async () => {
      await client.query(`SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true)`, [`${lockTimeoutMs}ms`, `${statementTimeoutMs}ms`]);
      const result = await client.query<Row>({
        name: 'pgconvoy_watch_sample',
        text: `WITH activity AS (
            SELECT pid, query, query_start, wait_event_type, pg_catalog.pg_blocking_pids(pid) AS blockers
            FROM pg_catalog.pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_catalog.pg_backend_pid() AND backend_type = 'client backend' AND state = 'active'
          ), in_recovery AS (SELECT pg_catalog.pg_is_in_recovery() AS standby)
          SELECT
            coalesce((SELECT array_agg(pid ORDER BY pid) FROM activity WHERE $1::int = ANY (blockers)), '{}') AS blocked_pids,
            (SELECT max(extract(epoch FROM now() - query_start) * 1000)::float8 FROM activity WHERE $1::int = ANY (blockers)) AS blocked_wait_ms,
            (SELECT max(extract(epoch FROM now() - query_start) * 1000)::float8 FROM activity WHERE wait_event_type = 'Lock') AS longest_lock_wait_ms,
            (SELECT json_agg(q) FROM (
               SELECT pid, (extract(epoch FROM now() - query_start) * 1000)::float8 AS duration_ms, wait_event_type = 'Lock' AS waiting, left(query, 200) AS query
               FROM activity WHERE pid IS DISTINCT FROM $1::int AND now() - query_start > make_interval(secs => $2::float8 / 1000)
               ORDER BY query_start LIMIT 5) q) AS long_queries,
            pg_catalog.pg_database_size(current_database())::text AS database_bytes,
            CASE WHEN (SELECT standby FROM in_recovery) THEN NULL ELSE pg_catalog.pg_current_wal_insert_lsn()::text END AS wal_lsn,
            CASE WHEN (SELECT standby FROM in_recovery) OR $3::text IS NULL THEN NULL
                 ELSE pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_insert_lsn(), $3::pg_lsn)::text END AS wal_bytes,
            (SELECT json_agg(r) FROM (
               SELECT coalesce(nullif(application_name, ''), client_addr::text, pid::text) AS name, state,
                      CASE WHEN (SELECT standby FROM in_recovery) THEN NULL ELSE pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), replay_lsn) END AS lag_bytes,
                      (extract(epoch FROM replay_lag) * 1000)::float8 AS replay_lag_ms
               FROM pg_catalog.pg_stat_replication ORDER BY 1) r) AS replicas`,
        values: [options.backendPid ?? null, options.longQueryMs ?? 5_000, options.baseline?.walLsn ?? null],
      });
      return result.rows[0]!;
    },
    'BEGIN READ ONLY',
  );
  const databaseBytes = Number(row.database_bytes);
  const baseline = options.baseline ?? { databaseBytes, walLsn: row.wal_lsn };
  const sample: WatchSample = {
    at: Date.now(),
    blocked: { count: row.blocked_pids.length, longestWaitMs: Math.round(row.blocked_wait_ms ?? 0), pids: row.blocked_pids },
    longestLockWaitMs: Math.round(row.longest_lock_wait_ms ?? 0),
    longQueries: (row.long_queries ?? []).map((q) => ({ pid: q.pid, durationMs: Math.round(q.duration_ms), waiting: q.waiting, query: q.query })),
    databaseBytes,
    growthBytes: options.baseline ? databaseBytes - options.baseline.databaseBytes : null,
    walBytes: row.wal_bytes === null ? null : Number(row.wal_bytes),
    replicas: (row.replicas ?? []).map((r) => ({ name: r.name, state: r.state, lagBytes: r.lag_bytes === null ? 0 : Number(r.lag_bytes), replayLagMs: r.replay_lag_ms === null ? null : Math.round(r.replay_lag_ms) })),
  };
  return { sample, baseline };
}
