/**
 * Applies the same 200 small migrations to fresh databases three ways and
 * reports wall-clock medians and ratios:
 *   - psql -1 -f (all files concatenated, one transaction, no ledger): the floor
 *   - pgconvoy's engine on one connection (parse, per-migration transaction,
 *     lock_timeout settings, ledger row and fingerprint per migration, the
 *     catalog followed as a worker follows it), without Temporal: what a
 *     worker does with the connection it keeps
 *   - the engine with a new connection per migration (a no-transaction file's
 *     own connection)
 *
 *   npm run build && node dist/bench/engine-vs-psql.js [--migrations 200] [--runs 3]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultExecutionSettings } from '../src/core/execution-settings';
import { prepareMigrations } from '../src/core/prepare';
import { CatalogCache } from '../src/db/catalog-tracker';
import { withClient } from '../src/db/connection';
import { applyMigration, type EngineContext } from '../src/db/execute';
import { ensureLedger } from '../src/db/ledger';
import { readMigrationSet } from '../src/source/read-migration-set';
import { adminUrl, databaseUrl, median, numberArg, query, runBench } from './support';

const count = numberArg('migrations', 200);
const runs = numberArg('runs', 3);

function migration(i: number): string {
  return `CREATE TABLE bench_${i} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL, created_at timestamptz DEFAULT now());
INSERT INTO bench_${i} (name) SELECT 'row ' || g FROM generate_series(1, 10) g;
CREATE INDEX bench_${i}_name ON bench_${i} (name);
`;
}


/** The engine as a worker runs it: its catalog followed from one version to the next (each version's fingerprint reads what the migration touched). */
const contextFor = (db: string): EngineContext => ({
  settings: defaultExecutionSettings,
  run: {},
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
  onEvent: () => undefined,
  catalog: new CatalogCache().tracker(db, 'bench'),
});

async function timed(label: string, fn: (db: string) => Promise<void>): Promise<number[]> {
  const times: number[] = [];
  for (let r = 0; r < runs; r++) {
    const db = `pgconvoy_bench_${process.pid}_${r}`;
    await query(`DROP DATABASE IF EXISTS ${db}`);
    await query(`CREATE DATABASE ${db}`);
    try {
      const start = performance.now();
      await fn(db);
      times.push(performance.now() - start);
    } finally {
      await query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    }
  }
  process.stderr.write(`${label}: ${times.map((t) => t.toFixed(0)).join(', ')} ms\n`);
  return times;
}


async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'pgconvoy-bench-'));
  try {
    let all = '';
    for (let i = 1; i <= count; i++) {
      writeFileSync(join(dir, `V${i}__bench_${i}.sql`), migration(i));
      all += migration(i);
    }
    writeFileSync(join(dir, 'all.sql.txt'), all);

    const psql = await timed('psql -1 -f', (db) => {
      execFileSync('psql', ['-q', '-X', '-v', 'ON_ERROR_STOP=1', '-1', '-f', join(dir, 'all.sql.txt'), databaseUrl(db)], { stdio: ['ignore', 'ignore', 'inherit'] });
      return Promise.resolve();
    });
    const engineOne = await timed('engine, one connection', async (db) => {
      const set = await readMigrationSet(dir);
      const prepared = await prepareMigrations(set);
      const ctx = contextFor(db);
      await withClient({ alias: 'bench', url: databaseUrl(db) }, async (client) => {
        await ensureLedger(client);
        for (const m of prepared.values()) await applyMigration(client, m, ctx);
      });
    });
    const enginePer = await timed('engine, connection per migration', async (db) => {
      const set = await readMigrationSet(dir);
      const prepared = await prepareMigrations(set);
      const ctx = contextFor(db);
      await withClient({ alias: 'bench', url: databaseUrl(db) }, (client) => ensureLedger(client));
      for (const m of prepared.values()) await withClient({ alias: 'bench', url: databaseUrl(db) }, (client) => applyMigration(client, m, ctx));
    });

    const base = median(psql);
    const rows = [
      ['psql -1 -f (concatenated, no ledger)', median(psql)],
      ['pgconvoy engine, one connection', median(engineOne)],
      ['pgconvoy engine, connection per migration', median(enginePer)],
    ] as const;
    console.log(`${count} migrations, median of ${runs} runs, PostgreSQL at ${new URL(adminUrl).host}`);
    for (const [label, ms] of rows) console.log(`${label.padEnd(44)} ${ms.toFixed(0).padStart(7)} ms   ${(ms / base).toFixed(2)}x psql`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

runBench(main);
