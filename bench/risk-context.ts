/**
 * What context from the live database costs the planning of a run. A database
 * with --tables tables (the first with a million rows, analyzed) and one
 * pending migration per table (an index and a column); prints medians of
 * --runs runs:
 *   - the parse-tree analysis alone (lint without --db)
 *   - the analysis with context: rows, size and locking sessions of every
 *     table, as planDatabase does before every run
 *   - SELECT count(*) of the large table: what knowing its size would cost
 *     by reading the data instead of the catalog
 *
 *   npm run build && node dist/bench/risk-context.js [--tables 50] [--runs 5]
 */
import { performance } from 'node:perf_hooks';
import { analyzeRisk } from '../src/core/risk';
import { defaultThresholds } from '../src/core/risk-context';
import { analyzeScript, type Script } from '../src/core/statements';
import { withClient } from '../src/db/connection';
import { assessOnDatabase } from '../src/db/risk-context';
import { databaseUrl, median, numberArg, query, runBench } from './support';

const tables = numberArg('tables', 50);
const runs = numberArg('runs', 5);



async function main(): Promise<void> {
  const db = `pgconvoy_bench_risk_${process.pid}`;
  await query(`DROP DATABASE IF EXISTS ${db}`);
  await query(`CREATE DATABASE ${db}`);
  try {
    const target = { alias: 'bench', url: databaseUrl(db) };
    await withClient(target, async (client) => {
      for (let i = 0; i < tables; i++) await client.query(`CREATE TABLE t_${i} (id bigint PRIMARY KEY, name text)`);
      await client.query(`INSERT INTO t_0 SELECT g, 'name ' || g FROM generate_series(1, 1000000) g`);
      await client.query('ANALYZE');
    });
    const pending: Array<{ version: string; file: string; script: Script }> = [];
    for (let i = 0; i < tables; i++) {
      const parsed = await analyzeScript(`CREATE INDEX t_${i}_name ON t_${i} (name);\nALTER TABLE t_${i} ADD COLUMN note text;\n`);
      if (!parsed.ok) throw new Error(parsed.problems.join('\n'));
      pending.push({ version: String(i + 1), file: `V${i + 1}__t${i}.sql`, script: parsed.script });
    }

    const offline: number[] = [];
    const online: number[] = [];
    const count: number[] = [];
    let levels = '';
    await withClient(target, async (client) => {
      for (let r = 0; r < runs; r++) {
        let t = performance.now();
        analyzeRisk(pending);
        offline.push(performance.now() - t);
        t = performance.now();
        const { risk } = await assessOnDatabase(client, pending, defaultThresholds);
        online.push(performance.now() - t);
        levels = `V1 ${risk.get('1')?.level}, V2 ${risk.get('2')?.level}`;
        t = performance.now();
        await client.query('SELECT count(*) FROM t_0');
        count.push(performance.now() - t);
      }
    });
    const base = median(count);
    const line = (label: string, ms: number) => `${label.padEnd(48)}${ms.toFixed(1).padStart(8)} ms  ${(ms / base).toFixed(3)}x count(*)`;
    console.log(`${tables} tables (t_0: 1,000,000 rows), ${tables} pending migrations, median of ${runs} runs; ${levels}`);
    console.log(line('parse-tree analysis alone', median(offline)));
    console.log(line('analysis with context from the database', median(online)));
    console.log(line('SELECT count(*) of the large table', base));
  } finally {
    await query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
  }
}

runBench(main);
