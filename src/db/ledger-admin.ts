import type pg from 'pg';
import { PgconvoyError } from '../core/errors';
import type { MigrationSet } from '../core/migration-set';
import { compareVersions, parseVersion, type Version } from '../core/version';
import { withTransaction } from './connection';
import { insertHistory, migrationColumns } from './ledger';
import type { RunContext } from './execute';
import { checkFence, type Fence } from './lease';
import type { LedgerChange, LedgerChangeResult, LedgerSource } from '../contracts/records';
export type { LedgerChange, LedgerChangeResult, LedgerSource };

/** A ledger change that cannot be made as asked (wrong version, existing history, a dirty foreign ledger). */
export class LedgerChangeRefusedError extends PgconvoyError {
  readonly type = 'LedgerChangeRefused';
}




async function hasHistory(client: pg.Client): Promise<boolean> {
  const result = await client.query(`SELECT 1 FROM pgconvoy.history WHERE status IN ('applied', 'baseline') LIMIT 1`);
  return (result.rowCount ?? 0) > 0;
}

/** A baseline row: versions up to `version` count as applied without rows of their own. */
async function insertBaseline(client: pg.Client, version: Version, source: string, reason: string, run: RunContext): Promise<void> {
  await insertHistory(client, { version, description: '<< baseline >>', file: '', checksum: '', status: 'baseline', startedAt: new Date(), executionMs: 0, source, reason, ...run });
}

const ledgerLock = (client: pg.Client) => client.query(`LOCK TABLE pgconvoy.history IN SHARE ROW EXCLUSIVE MODE`);

/**
 * Changes the ledger without running SQL from the set: adopt an existing
 * database (baseline), record a migration someone applied by hand
 * (mark-applied, with the reason), or take over another tool's ledger.
 * Each runs in one transaction.
 */
export async function changeLedger(client: pg.Client, set: MigrationSet, change: LedgerChange, run: RunContext, fence?: Fence): Promise<LedgerChangeResult> {
  return withTransaction(client, async () => {
    if (fence) await checkFence(client, fence);
    await ledgerLock(client);
    switch (change.kind) {
      case 'baseline': {
        if (await hasHistory(client)) {
          throw new LedgerChangeRefusedError(`cannot baseline: the ledger already records applied migrations; baseline is for a database pgconvoy has never migrated`);
        }
        await insertBaseline(client, change.version, 'baseline', change.reason, run);
        return { kind: 'baseline', version: change.version };
      }
      case 'mark-applied': {
        const m = set.migrations.find((x) => x.version === change.version);
        if (!m) throw new LedgerChangeRefusedError(`cannot mark version ${change.version} applied: no V${change.version}__*.sql in ${set.directory}`);
        const existing = await client.query(`SELECT 1 FROM pgconvoy.history WHERE version = $1 AND status = 'applied'`, [change.version]);
        if (existing.rowCount) throw new LedgerChangeRefusedError(`version ${change.version} (${m.forward.file}) is already applied`);
        await insertHistory(client, {
          ...migrationColumns(m),
          status: 'applied',
          startedAt: new Date(),
          executionMs: 0,
          source: 'mark-applied',
          reason: change.reason,
          ...run,
        });
        return { kind: 'mark-applied', version: m.version };
      }
      case 'import':
        if (await hasHistory(client)) throw new LedgerChangeRefusedError(`cannot import from ${change.from}: the pgconvoy ledger already records applied migrations`);
        return importLedger(client, set, change.from, run);
    }
  });
}

interface ForeignRow {
  version: string | null;
  kind: 'applied' | 'baseline';
  when: string;
}

async function readForeignLedger(client: pg.Client, from: LedgerSource): Promise<ForeignRow[]> {
  const table = { flyway: 'flyway_schema_history', refinery: 'refinery_schema_history', 'golang-migrate': 'schema_migrations' }[from];
  const exists = await client.query<{ present: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS present`, [table]);
  if (!exists.rows[0]?.present) throw new LedgerChangeRefusedError(`cannot import from ${from}: there is no table ${table} on the search path`);
  switch (from) {
    case 'flyway': {
      const result = await client.query<{ version: string | null; type: string; success: boolean; installed_on: Date; script: string }>(
        `SELECT version, type, success, installed_on, script FROM flyway_schema_history ORDER BY installed_rank`,
      );
      const rows: ForeignRow[] = [];
      for (const r of result.rows) {
        if (r.type === 'SCHEMA') continue;
        if (!r.success) throw new LedgerChangeRefusedError(`cannot import from flyway: ${r.script} (version ${r.version}) is recorded as failed; repair the flyway history first`);
        if (r.version === null) throw new LedgerChangeRefusedError(`cannot import from flyway: repeatable migration ${r.script} has no counterpart in pgconvoy`);
        if (r.type !== 'SQL' && r.type !== 'BASELINE') throw new LedgerChangeRefusedError(`cannot import from flyway: entry ${r.script} has type ${r.type}; only SQL and BASELINE entries can be imported`);
        rows.push({ version: r.version, kind: r.type === 'BASELINE' ? 'baseline' : 'applied', when: r.installed_on.toISOString() });
      }
      return rows;
    }
    case 'refinery': {
      const result = await client.query<{ version: number; applied_on: string }>(`SELECT version, applied_on FROM refinery_schema_history ORDER BY version`);
      return result.rows.map((r) => ({ version: String(r.version), kind: 'applied', when: r.applied_on }));
    }
    case 'golang-migrate': {
      const result = await client.query<{ version: string; dirty: boolean }>(`SELECT version::text AS version, dirty FROM schema_migrations`);
      const row = result.rows[0];
      if (!row) return [];
      if (row.dirty) throw new LedgerChangeRefusedError(`cannot import from golang-migrate: schema_migrations says version ${row.version} is dirty (it failed half-way); fix the database and clear the flag first`);
      // golang-migrate keeps only the current version: everything up to it is in the database.
      return [{ version: row.version, kind: 'baseline', when: new Date().toISOString() }];
    }
  }
}

async function importLedger(client: pg.Client, set: MigrationSet, from: LedgerSource, run: RunContext): Promise<LedgerChangeResult> {
  const rows = await readForeignLedger(client, from);
  const applied: Version[] = [];
  let baseline: Version | null = null;
  for (const row of rows) {
    const version = parseVersion(row.version ?? '');
    if (version === undefined) throw new LedgerChangeRefusedError(`cannot import from ${from}: version "${row.version}" is not a whole number; pgconvoy versions are whole numbers ≥ 0`);
    if (row.kind === 'baseline') {
      baseline = baseline === null || compareVersions(version, baseline) > 0 ? version : baseline;
      continue;
    }
    const m = set.migrations.find((x) => x.version === version);
    if (!m) throw new LedgerChangeRefusedError(`cannot import from ${from}: version ${version} is applied but there is no V${version}__*.sql in ${set.directory}`);
    await insertHistory(client, {
      ...migrationColumns(m),
      status: 'applied',
      startedAt: Number.isNaN(Date.parse(row.when)) ? new Date() : new Date(row.when),
      executionMs: 0,
      source: `import:${from}`,
      reason: `imported from ${from} (applied ${row.when}); checksum taken from the file on disk at import`,
      ...run,
    });
    applied.push(version);
  }
  if (baseline !== null) await insertBaseline(client, baseline, `import:${from}`, `imported from ${from}`, run);
  return { kind: 'import', from, applied, baseline };
}
