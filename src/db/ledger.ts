import type pg from 'pg';
import type { AppliedEntry } from '../core/plan';
import { compareVersions, type Version } from '../core/version';
import { withTransaction } from './connection';
import { ledgerSteps } from './ledger-steps';
import type { HistoryRow, HistoryStatus, RunChanges } from '../contracts/records';
export type { HistoryRow, HistoryStatus, RunChanges };

export { ledgerSteps };

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
       ON CONFLICT (key) DO UPDATE SET value = greatest(pgconvoy.meta.value::int, EXCLUDED.value::int)::text`,
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



interface RawHistoryRow {
  id: string;
  version: string;
  description: string;
  file: string;
  checksum: string;
  status: HistoryStatus;
  started_at: Date;
  finished_at: Date;
  execution_ms: number;
  statements_done: number | null;
  statements_total: number | null;
  done_prefix_sha: string | null;
  workflow_id: string | null;
  error_sqlstate: string | null;
  error_message: string | null;
  error_statement: number | null;
  source: string;
  reason: string | null;
  risk_level?: string | null;
  risk_findings?: unknown[] | null;
  approved_by?: string | null;
  approved_at?: Date | null;
  approval_note?: string | null;
  backup?: string | null;
}

/**
 * Read through an alias (`FROM pgconvoy.history h`) and ordered by `h.id` or
 * `h.version`: a bare ORDER BY name would sort the text output column below,
 * which puts id 100 before 11.
 */
const historyColumns = `id::text AS id, version::text AS version, description, file, checksum, status, started_at, finished_at,
  execution_ms, statements_done, statements_total, done_prefix_sha, workflow_id, error_sqlstate, error_message,
  error_statement, source, reason`;
/** Columns of later ledger steps: read with readHistory, which upgrades nothing, so only when present. */
const riskColumns = `, risk_level, risk_findings, approved_by, approved_at, approval_note`;
const backupColumns = `, backup`;

function toHistoryRow(r: RawHistoryRow): HistoryRow {
  return {
    id: r.id,
    version: r.version,
    description: r.description,
    file: r.file,
    checksum: r.checksum,
    status: r.status,
    startedAt: r.started_at.toISOString(),
    finishedAt: r.finished_at.toISOString(),
    executionMs: r.execution_ms,
    statementsDone: r.statements_done,
    statementsTotal: r.statements_total,
    workflowId: r.workflow_id,
    errorSqlstate: r.error_sqlstate,
    errorMessage: r.error_message,
    errorStatement: r.error_statement,
    source: r.source,
    reason: r.reason,
    riskLevel: r.risk_level ?? null,
    riskFindings: r.risk_findings ?? null,
    approvedBy: r.approved_by ?? null,
    approvedAt: r.approved_at ? r.approved_at.toISOString() : null,
    approvalNote: r.approval_note ?? null,
    backup: r.backup ?? null,
  };
}

/** Ledger rows, oldest first; `last` keeps only the newest N. */
export async function readHistory(client: pg.Client, options: { last?: number } = {}): Promise<HistoryRow[]> {
  const steps = await ledgerStepsDone(client);
  if (steps === 0) return [];
  const columns = historyColumns + (steps >= 2 ? riskColumns : '') + (steps >= 5 ? backupColumns : '');
  if (options.last !== undefined) {
    const result = await client.query<RawHistoryRow>(
      `SELECT ${columns} FROM (SELECT * FROM pgconvoy.history h ORDER BY h.id DESC LIMIT $1) h ORDER BY h.id`,
      [options.last],
    );
    return result.rows.map(toHistoryRow);
  }
  const result = await client.query<RawHistoryRow>(`SELECT ${columns} FROM pgconvoy.history h ORDER BY h.id`);
  return result.rows.map(toHistoryRow);
}

export interface LedgerState {
  /** Versions applied, in version order. */
  applied: AppliedEntry[];
  /** Everything up to this version was in the database before pgconvoy managed it. */
  baseline: Version | null;
}

/** Whether the ledger exists; reading commands never create it. */
export async function ledgerExists(client: pg.Client): Promise<boolean> {
  return (await ledgerStepsDone(client)) > 0;
}

export async function readLedgerState(client: pg.Client): Promise<LedgerState> {
  if (!(await ledgerExists(client))) return { applied: [], baseline: null };
  const result = await client.query<RawHistoryRow>(
    `SELECT ${historyColumns} FROM pgconvoy.history h WHERE status IN ('applied', 'baseline') ORDER BY h.version`,
  );
  const baseline = result.rows.find((r) => r.status === 'baseline')?.version ?? null;
  const applied = result.rows
    .filter((r) => r.status === 'applied')
    .map((r) => ({ version: r.version, description: r.description, checksum: r.checksum, status: 'applied' as const, finishedAt: r.finished_at.toISOString() }));
  return { applied, baseline };
}

export interface HistoryInsert {
  version: Version;
  description: string;
  file: string;
  checksum: string;
  status: HistoryStatus;
  startedAt: Date;
  executionMs: number;
  statementsDone?: number;
  statementsTotal?: number;
  donePrefixSha?: string;
  workflowId?: string;
  runId?: string;
  errorSqlstate?: string;
  errorMessage?: string;
  errorStatement?: number;
  source?: string;
  reason?: string;
  /** Written in the same transaction as the row (never after it): the run's record of this version. */
  audit?: AuditColumns;
}

/** What the ledger records with an applied version besides the fact: risk, approval, catalog fingerprints. */
export interface AuditColumns {
  riskLevel?: string | null;
  riskFindings?: unknown[] | null;
  approvedBy?: string | null;
  /** ms since the epoch */
  approvedAt?: number | null;
  approvalNote?: string | null;
  /** sha256 of the catalog right after the version was applied. */
  fingerprint?: string;
  /** The catalog description before the version, kept for versions with an undo script. */
  schemaBefore?: Record<string, string[]>;
  /** The run's backup key, or `none: <reason>`. */
  backup?: string;
}

/** The audit columns as SQL assignments, for an UPDATE of the row in the transaction that writes it. */
async function writeAudit(client: pg.Client, id: string, audit: AuditColumns | undefined): Promise<void> {
  if (!audit) return;
  const columns: Array<[string, unknown, string?]> = [];
  if (audit.riskLevel !== undefined) columns.push(['risk_level', audit.riskLevel]);
  if (audit.riskFindings !== undefined) columns.push(['risk_findings', audit.riskFindings === null ? null : JSON.stringify(audit.riskFindings), 'jsonb']);
  if (audit.approvedBy !== undefined) columns.push(['approved_by', audit.approvedBy]);
  if (audit.approvedAt !== undefined) columns.push(['approved_at', audit.approvedAt === null ? null : new Date(audit.approvedAt), 'timestamptz']);
  if (audit.approvalNote !== undefined) columns.push(['approval_note', audit.approvalNote]);
  if (audit.fingerprint !== undefined) columns.push(['fingerprint', audit.fingerprint]);
  if (audit.schemaBefore !== undefined) columns.push(['schema_before', JSON.stringify(audit.schemaBefore), 'jsonb']);
  if (audit.backup !== undefined) columns.push(['backup', audit.backup]);
  if (columns.length === 0) return;
  const sets = columns.map(([name, , cast], i) => `${name} = $${i + 2}${cast ? `::${cast}` : ''}`).join(', ');
  await client.query(`UPDATE pgconvoy.history SET ${sets} WHERE id = $1`, [id, ...columns.map(([, value]) => value)]);
}

/** The columns that name a migration file in a ledger row. */
export function migrationColumns(m: { version: Version; description: string; forward: { file: string; checksum: string } }): Pick<HistoryInsert, 'version' | 'description' | 'file' | 'checksum'> {
  return { version: m.version, description: m.description, file: m.forward.file, checksum: m.forward.checksum };
}

/** Inserts a ledger row and returns its id. */
export async function insertHistory(client: pg.Client, row: HistoryInsert): Promise<string> {
  const audit = row.audit ?? {};
  // One statement with the audit columns (NULL where not given, as their
  // default), prepared once per connection: it runs once per migration.
  const result = await client.query<{ id: string }>({
    name: 'pgconvoy_history_insert',
    text: `INSERT INTO pgconvoy.history
       (version, description, file, checksum, status, started_at, execution_ms, statements_done, statements_total,
        done_prefix_sha, workflow_id, run_id, error_sqlstate, error_message, error_statement, source, reason,
        risk_level, risk_findings, approved_by, approved_at, approval_note, fingerprint, schema_before, backup)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, coalesce($16, 'run'), $17,
        $18, $19::jsonb, $20, $21::timestamptz, $22, $23, $24::jsonb, $25)
     RETURNING id::text AS id`,
    values: [
      row.version,
      row.description,
      row.file,
      row.checksum,
      row.status,
      row.startedAt,
      row.executionMs,
      row.statementsDone ?? null,
      row.statementsTotal ?? null,
      row.donePrefixSha ?? null,
      row.workflowId ?? null,
      row.runId ?? null,
      row.errorSqlstate ?? null,
      row.errorMessage ?? null,
      row.errorStatement ?? null,
      row.source ?? null,
      row.reason ?? null,
      audit.riskLevel ?? null,
      audit.riskFindings == null ? null : JSON.stringify(audit.riskFindings),
      audit.approvedBy ?? null,
      audit.approvedAt == null ? null : new Date(audit.approvedAt),
      audit.approvalNote ?? null,
      audit.fingerprint ?? null,
      audit.schemaBefore === undefined ? null : JSON.stringify(audit.schemaBefore),
      audit.backup ?? null,
    ],
  });
  return result.rows[0]!.id;
}

/** The newest unfinished or failed attempt at a version: where a no-transaction file resumes. */
export async function latestAttempt(
  client: pg.Client,
  version: Version,
): Promise<{ id: string; status: HistoryStatus; checksum: string; statementsDone: number; donePrefixSha: string | null } | undefined> {
  const result = await client.query<RawHistoryRow>(
    `SELECT ${historyColumns} FROM pgconvoy.history h WHERE version = $1 AND status IN ('running', 'failed') ORDER BY h.id DESC LIMIT 1`,
    [version],
  );
  const row = result.rows[0];
  if (!row) return undefined;
  return { id: row.id, status: row.status, checksum: row.checksum, statementsDone: row.statements_done ?? 0, donePrefixSha: row.done_prefix_sha };
}

export async function recordProgress(client: pg.Client, id: string, statementsDone: number, donePrefixSha: string): Promise<void> {
  await client.query(`UPDATE pgconvoy.history SET statements_done = $2, done_prefix_sha = $3, finished_at = clock_timestamp() WHERE id = $1`, [
    id,
    statementsDone,
    donePrefixSha,
  ]);
}

export async function finishAttempt(
  client: pg.Client,
  id: string,
  outcome: { status: 'applied' | 'failed'; executionMs: number; errorSqlstate?: string; errorMessage?: string; errorStatement?: number; audit?: AuditColumns },
): Promise<void> {
  await writeAudit(client, id, outcome.audit);
  await client.query(
    `UPDATE pgconvoy.history
        SET status = $2, execution_ms = $3, error_sqlstate = $4, error_message = $5, error_statement = $6, finished_at = clock_timestamp()
      WHERE id = $1`,
    [id, outcome.status, outcome.executionMs, outcome.errorSqlstate ?? null, outcome.errorMessage ?? null, outcome.errorStatement ?? null],
  );
}

/** What one run applied, as the ledger says (in the order it applied them), and a no-transaction file it left part-way. */
export async function appliedByRun(client: pg.Client, runId: string): Promise<{ applied: Version[]; partial: Version[] }> {
  const result = await client.query<{ version: string; status: string; statements_done: number | null }>(
    `SELECT version::text AS version, status, statements_done FROM pgconvoy.history WHERE run_id = $1 AND status IN ('applied', 'running', 'failed') ORDER BY id`,
    [runId],
  );
  const applied = result.rows.filter((r) => r.status === 'applied').map((r) => r.version);
  const partial = result.rows.filter((r) => r.status !== 'applied' && (r.statements_done ?? 0) > 0 && !applied.includes(r.version)).map((r) => r.version);
  return { applied, partial: [...new Set(partial)] };
}


/** The id of the newest ledger row ('0' for none). */
export async function ledgerHighWater(client: pg.Client): Promise<string> {
  if (!(await ledgerExists(client))) return '0';
  const result = await client.query<{ id: string }>(`SELECT coalesce(max(id), 0)::text AS id FROM pgconvoy.history`);
  return result.rows[0]?.id ?? '0';
}

/** Changes to the database recorded after ledger row `since` by anyone but `runId`: applied versions and partly applied no-transaction files. */
export async function changedByOthersSince(client: pg.Client, runId: string, since: string): Promise<RunChanges['others']> {
  const result = await client.query<{ version: string; status: string; run_id: string | null; source: string }>(
    `SELECT version::text AS version, status, run_id, source FROM pgconvoy.history
      WHERE id > $1::bigint AND run_id IS DISTINCT FROM $2 AND (status IN ('applied', 'running', 'baseline') OR coalesce(statements_done, 0) > 0)
      ORDER BY id`,
    [since, runId],
  );
  return result.rows.map((r) => ({ version: r.version, status: r.status, runId: r.run_id, source: r.source }));
}

/** Marks everything a run applied as rolled back (after its compensation); returns the versions. */
export async function markRolledBack(client: pg.Client, runId: string): Promise<Version[]> {
  const result = await client.query<{ version: string }>(
    `UPDATE pgconvoy.history SET status = 'rolled_back', finished_at = clock_timestamp()
      WHERE status = 'applied' AND run_id = $1 RETURNING version::text AS version`,
    [runId],
  );
  return result.rows.map((r) => r.version).sort(compareVersions);
}

/** The fingerprint recorded with the last version a run applied. */
export async function lastRecordedFingerprint(client: pg.Client, runId: string): Promise<{ version: string; fingerprint: string } | undefined> {
  const result = await client.query<{ version: string; fingerprint: string | null }>(
    `SELECT version::text, fingerprint FROM pgconvoy.history WHERE run_id = $1 AND status = 'applied' ORDER BY id DESC LIMIT 1`,
    [runId],
  );
  const row = result.rows[0];
  return row?.fingerprint ? { version: row.version, fingerprint: row.fingerprint } : undefined;
}
