import type pg from 'pg';
import type { AppliedEntry } from '../core/plan';
import type { Version } from '../core/version';
import { withTransaction } from './connection';

/**
 * The ledger's own schema, as ordered steps. A database records the steps it
 * has in pgconvoy.meta, so later versions of pgconvoy can extend the ledger
 * without a tool a human must run.
 */
const ledgerSteps: string[] = [
  `CREATE SCHEMA IF NOT EXISTS pgconvoy;
   CREATE TABLE pgconvoy.meta (key text PRIMARY KEY, value text NOT NULL);
   CREATE TABLE pgconvoy.history (
     id bigserial PRIMARY KEY,
     version numeric NOT NULL CHECK (version > 0 AND version = trunc(version)),
     description text NOT NULL,
     file text NOT NULL,
     checksum text NOT NULL,
     status text NOT NULL CHECK (status IN ('applied', 'failed', 'rolled_back', 'baseline')),
     started_at timestamptz NOT NULL,
     finished_at timestamptz NOT NULL DEFAULT clock_timestamp(),
     execution_ms integer NOT NULL,
     statements_done integer,
     statements_total integer,
     workflow_id text,
     run_id text,
     error_sqlstate text,
     error_message text,
     installed_by text NOT NULL DEFAULT current_user
   );
   CREATE UNIQUE INDEX history_one_applied_per_version ON pgconvoy.history (version)
     WHERE status IN ('applied', 'baseline');`,
];

/** Any constant works; it only has to be the same in every pgconvoy. */
const ledgerLockKey = 7_260_431_118;

/** Creates or upgrades the ledger. Safe to call concurrently and on every run. */
export async function ensureLedger(client: pg.Client): Promise<void> {
  if ((await ledgerStepsDone(client)) === ledgerSteps.length) return;
  await withTransaction(client, async () => {
    // Serialises concurrent first runs; the lock ends with the transaction.
    await client.query('SELECT pg_advisory_xact_lock($1)', [ledgerLockKey]);
    const done = await ledgerStepsDone(client);
    for (const step of ledgerSteps.slice(done)) await client.query(step);
    await client.query(
      `INSERT INTO pgconvoy.meta (key, value) VALUES ('ledger_steps', $1)
       ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`,
      [String(ledgerSteps.length)],
    );
  });
}

async function ledgerStepsDone(client: pg.Client): Promise<number> {
  // A plain scan of pg_tables, not to_regclass(): the latter may answer from a
  // catalog cache that predates the lock we just waited for.
  const exists = await client.query<{ present: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = 'pgconvoy' AND tablename = 'meta') AS present`,
  );
  if (!exists.rows[0]?.present) return 0;
  const row = await client.query<{ value: string }>(`SELECT value FROM pgconvoy.meta WHERE key = 'ledger_steps'`);
  return Number(row.rows[0]?.value ?? 0);
}

export interface HistoryRow {
  version: Version;
  description: string;
  file: string;
  checksum: string;
  status: 'applied' | 'failed' | 'rolled_back' | 'baseline';
  startedAt: string;
  finishedAt: string;
  executionMs: number;
  workflowId: string | null;
  errorSqlstate: string | null;
  errorMessage: string | null;
}

interface RawHistoryRow {
  version: string;
  description: string;
  file: string;
  checksum: string;
  status: HistoryRow['status'];
  started_at: Date;
  finished_at: Date;
  execution_ms: number;
  workflow_id: string | null;
  error_sqlstate: string | null;
  error_message: string | null;
}

const historyColumns = `version::text AS version, description, file, checksum, status, started_at, finished_at,
  execution_ms, workflow_id, error_sqlstate, error_message`;

function toHistoryRow(r: RawHistoryRow): HistoryRow {
  return {
    version: r.version,
    description: r.description,
    file: r.file,
    checksum: r.checksum,
    status: r.status,
    startedAt: r.started_at.toISOString(),
    finishedAt: r.finished_at.toISOString(),
    executionMs: r.execution_ms,
    workflowId: r.workflow_id,
    errorSqlstate: r.error_sqlstate,
    errorMessage: r.error_message,
  };
}

/** Every ledger row, oldest first. */
export async function readHistory(client: pg.Client): Promise<HistoryRow[]> {
  const result = await client.query<RawHistoryRow>(`SELECT ${historyColumns} FROM pgconvoy.history ORDER BY id`);
  return result.rows.map(toHistoryRow);
}

/** The versions the database holds, in version order. */
export async function readApplied(client: pg.Client): Promise<AppliedEntry[]> {
  const result = await client.query<RawHistoryRow>(
    `SELECT ${historyColumns} FROM pgconvoy.history WHERE status = 'applied' ORDER BY version`,
  );
  return result.rows.map((r) => ({
    version: r.version,
    description: r.description,
    checksum: r.checksum,
    status: 'applied' as const,
    finishedAt: r.finished_at.toISOString(),
  }));
}

export interface HistoryInsert {
  version: Version;
  description: string;
  file: string;
  checksum: string;
  status: 'applied' | 'failed';
  startedAt: Date;
  executionMs: number;
  workflowId?: string;
  runId?: string;
  errorSqlstate?: string;
  errorMessage?: string;
}

export async function insertHistory(client: pg.Client, row: HistoryInsert): Promise<void> {
  await client.query(
    `INSERT INTO pgconvoy.history
       (version, description, file, checksum, status, started_at, execution_ms, workflow_id, run_id, error_sqlstate, error_message)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
    [
      row.version,
      row.description,
      row.file,
      row.checksum,
      row.status,
      row.startedAt,
      row.executionMs,
      row.workflowId ?? null,
      row.runId ?? null,
      row.errorSqlstate ?? null,
      row.errorMessage ?? null,
    ],
  );
}
