/**
 * Durability figures, on a Temporal dev server of its own:
 *   1. failover: SIGKILL the worker running a migration and time until the
 *      migration runs again on another worker (median of --samples, default 10);
 *   2. overhead: apply --migrations (default 50) small migrations through the
 *      migrateDatabase workflow and with the engine alone, and report the
 *      workflow's cost per migration.
 *
 *   npm run build && node dist/bench/failover.js [--samples 10] [--migrations 50]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { startMigration } from '../src/client/api';
import { defaultExecutionSettings } from '../src/core/execution-settings';
import { prepareMigrations } from '../src/core/prepare';
import { withClient } from '../src/db/connection';
import { applyMigration } from '../src/db/execute';
import { ensureLedger } from '../src/db/ledger';
import { readMigrationSet } from '../src/source/read-migration-set';
import { startDevServer } from '../src/worker/dev-server';
import { databaseUrl, dropDatabases, median, numberArg, query, runBench } from './support';

const samples = numberArg('samples', 10);
const migrations = numberArg('migrations', 50);
const bin = join(__dirname, '..', '..', 'bin', 'pgconvoy');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));


async function main(): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), 'pgconvoy-bench-failover-'));
  const server = await startDevServer({ dbFile: join(scratch, 'temporal.db'), logFile: join(scratch, 'temporal.log') });
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection });
  const workers: ChildProcess[] = [];
  const dbs: string[] = [];
  try {
    const set = join(scratch, 'failover');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(set);
    writeFileSync(join(set, 'V1__long.sql'), 'SELECT pg_sleep(60) /* failover bench */;');
    const env: NodeJS.ProcessEnv = { ...process.env, TEMPORAL_ADDRESS: server.address, PGCONVOY_TASK_QUEUE: 'bench', PGCONVOY_LOG_LEVEL: 'warn' };
    for (let i = 0; i < samples; i++) {
      const name = `pgconvoy_bench_fo_${process.pid}_${i}`;
      await query(`CREATE DATABASE ${name}`);
      dbs.push(name);
      env[`PGCONVOY_DB_FO${i}`] = databaseUrl(name);
    }
    const startWorker = () => {
      const child = spawn(bin, ['--migrations', set, 'worker'], { env, stdio: 'ignore' });
      workers.push(child);
      return child;
    };
    startWorker();
    startWorker();
    await sleep(4_000); // both workers bundled and polling

    const failover: number[] = [];
    for (let i = 0; i < samples; i++) {
      const db = dbs[i]!;
      const handle = await startMigration({ client, taskQueue: 'bench' }, { db: `fo${i}`, migrationsDir: set });
      const running = async () =>
        (await query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE datname = '${db}' AND state = 'active' AND query LIKE '%failover bench%' AND pid <> pg_backend_pid()`)).rows[0]?.pid;
      let first: number | undefined;
      while (!(first = await running())) await sleep(20);
      // The worker running the migration (not the one renewing the lease): the pending applyMigration's worker.
      const pending = (await handle.describe()).raw.pendingActivities ?? [];
      const started = pending.find((a) => a.activityType?.name === 'applyMigration')?.lastWorkerIdentity ?? '';
      const victim = workers.find((w) => w.exitCode === null && started.startsWith(`${w.pid}@`));
      if (!victim) throw new Error(`no live worker matches ${started}`);
      victim.kill('SIGKILL');
      const t0 = performance.now();
      await query(`SELECT pg_terminate_backend(${first})`); // the dead worker's statement would run on until its sleep ends
      let again: number | undefined;
      while (!(again = await running()) || again === first) await sleep(20);
      failover.push(performance.now() - t0);
      await handle.terminate('benchmark sample done');
      startWorker();
      process.stderr.write(`failover sample ${i + 1}: ${(failover.at(-1)! / 1000).toFixed(2)} s\n`);
    }

    // Overhead: the same migrations through the workflow and through the engine alone.
    const many = join(scratch, 'many');
    mkdirSync(many);
    for (let i = 1; i <= migrations; i++) writeFileSync(join(many, `V${i}__t${i}.sql`), `CREATE TABLE t${i} (id int PRIMARY KEY, v text);`);
    const wfDb = `pgconvoy_bench_wf_${process.pid}`;
    const engineDb = `pgconvoy_bench_en_${process.pid}`;
    await query(`CREATE DATABASE ${wfDb}`);
    await query(`CREATE DATABASE ${engineDb}`);
    dbs.push(wfDb, engineDb);
    env.PGCONVOY_DB_WF = databaseUrl(wfDb);
    for (const w of workers) w.kill('SIGKILL');
    const overheadWorker = spawn(bin, ['--migrations', many, 'worker'], { env, stdio: 'ignore' });
    workers.push(overheadWorker);
    await sleep(4_000);
    const t1 = performance.now();
    const result = await (await startMigration({ client, taskQueue: 'bench' }, { db: 'wf', migrationsDir: many })).result();
    const workflowMs = performance.now() - t1;
    if (result.status !== 'applied') throw new Error(`workflow run ended ${result.status}`);
    const t2 = performance.now();
    const prepared = await prepareMigrations(await readMigrationSet(many));
    const ctx = { settings: defaultExecutionSettings, run: {}, sleep, onEvent: () => undefined };
    await withClient({ alias: 'engine', url: databaseUrl(engineDb) }, (c) => ensureLedger(c));
    for (const m of prepared.values()) await withClient({ alias: 'engine', url: databaseUrl(engineDb) }, (c) => applyMigration(c, m, ctx));
    const engineMs = performance.now() - t2;

    console.log(`failover (SIGKILL the worker running a migration -> it runs again on another worker), ${samples} samples:`);
    console.log(`  median ${(median(failover) / 1000).toFixed(2)} s, min ${(Math.min(...failover) / 1000).toFixed(2)} s, max ${(Math.max(...failover) / 1000).toFixed(2)} s (activity heartbeat timeout 10 s)`);
    console.log(`overhead, ${migrations} migrations:`);
    console.log(`  workflow ${workflowMs.toFixed(0)} ms, engine alone ${engineMs.toFixed(0)} ms, ratio ${(workflowMs / engineMs).toFixed(2)}x, ` + `${((workflowMs - engineMs) / migrations).toFixed(1)} ms per migration`);
  } finally {
    for (const w of workers) w.kill('SIGKILL');
    await connection.close();
    await server.stop();
    await dropDatabases(dbs);
    rmSync(scratch, { recursive: true, force: true });
  }
}

runBench(main);
