import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import pg from 'pg';
import { startMigration } from '../../src/client/api';
import { freePort, startDevServer } from '../../src/worker/dev-server';
import { createLogger } from '../../src/logging/logger';
import { createWorker, installRuntime } from '../../src/worker/worker';
import { adminQuery, createTestDatabase } from '../helpers/database';
import { writeMigrations } from '../helpers/migrations';
import { startPrivatePostgres } from '../helpers/private-postgres';
import { testClient, testConfig, uniqueTaskQueue, withWorker } from '../helpers/temporal';
import { resultThroughRestart, waitFor, workerPool } from '../helpers/workers';
import { services } from '../helpers/services';

async function query(url: string, sql: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await client.query(sql);
  } finally {
    await client.end().catch(() => undefined);
  }
}

test('the Temporal server stops and restarts (state file kept) in the middle of a run: the run completes', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const set = writeMigrations({
    'V1__slow.sql': 'CREATE TABLE survived (id int);\nSELECT pg_sleep(2) /* temporal restart */;\nINSERT INTO survived VALUES (1);',
    'V2__after.sql': 'CREATE TABLE after_restart (id int);',
  });
  t.after(() => set.remove());
  const scratch = mkdtempSync(join(tmpdir(), 'pgconvoy-temporal-restart-'));
  t.after(() => rmSync(scratch, { recursive: true, force: true }));
  const port = await freePort();
  const serverOptions = { dbFile: join(scratch, 'temporal.db'), logFile: join(scratch, 'temporal.log'), port, namespaces: [services.temporalNamespace] };
  let server = await startDevServer(serverOptions);
  t.after(() => server.stop());

  const logger = createLogger('silent');
  installRuntime(logger);
  const config = testConfig({ databases: { restart: db.url }, migrationsDir: set.dir });
  const { worker, connection: workerConnection } = await createWorker({ config, logger, address: server.address });
  const connection = await Connection.connect({ address: server.address });
  t.after(() => connection.close());
  const client = new Client({ connection, namespace: services.temporalNamespace });

  const result = await worker.runUntil(async () => {
    const handle = await startMigration({ client, taskQueue: config.temporal.taskQueue }, { db: 'restart', migrationsDir: set.dir });
    await waitFor('the migration to run', async () => {
      const r = await adminQuery(`SELECT 1 FROM pg_stat_activity WHERE datname = '${db.name}' AND state = 'active' AND query LIKE '%temporal restart%' AND pid <> pg_backend_pid()`);
      return r.rowCount ? true : undefined;
    });
    await server.stop();
    server = await startDevServer(serverOptions);
    return resultThroughRestart(handle);
  });
  await workerConnection.close();
  assert.equal(result.status, 'applied');
  assert.deepEqual((await db.query('SELECT id FROM survived')).rows, [{ id: 1 }]);
  const ledger = await db.query<{ version: string }>(`SELECT version::text FROM pgconvoy.history WHERE status = 'applied' ORDER BY version`);
  assert.deepEqual(ledger.rows.map((r) => r.version), ['1', '2']);
});

test('PostgreSQL restarts in the middle of a migration: the run retries and completes, and no partial migration remains', async (t) => {
  const postgres = await startPrivatePostgres();
  t.after(() => postgres.stop());
  const set = writeMigrations({
    'V1__interrupted.sql': 'CREATE TABLE r (id int);\nINSERT INTO r VALUES (1);\nSELECT pg_sleep(3) /* postgres restart */;\nINSERT INTO r VALUES (2);',
  });
  t.after(() => set.remove());
  const config = testConfig({ databases: { private: postgres.url }, migrationsDir: set.dir });
  const { client, close } = await testClient();
  t.after(close);
  const result = await withWorker(config, async () => {
    const handle = await startMigration({ client, taskQueue: config.temporal.taskQueue }, { db: 'private', migrationsDir: set.dir });
    await waitFor('the migration to run', async () => {
      const r = await query(postgres.url, `SELECT 1 FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%postgres restart%' AND pid <> pg_backend_pid()`);
      return r.rowCount ? true : undefined;
    });
    postgres.restart();
    return handle.result();
  });
  assert.equal(result.status, 'applied');
  assert.deepEqual((await query(postgres.url, 'SELECT id FROM r ORDER BY id')).rows, [{ id: 1 }, { id: 2 }], 'the interrupted attempt left nothing: rows appear once');
  const ledger = await query(postgres.url, `SELECT version::text, status FROM pgconvoy.history WHERE status = 'applied'`);
  assert.deepEqual(ledger.rows, [{ version: '1', status: 'applied' }]);
  assert.equal((await query(postgres.url, 'SELECT 1 FROM pgconvoy.lease')).rowCount, 0);
});

test('several worker processes on one task queue share the work', async (t) => {
  const dbs = await Promise.all([1, 2, 3, 4].map(() => createTestDatabase()));
  t.after(() => Promise.all(dbs.map((d) => d.drop())));
  const files: Record<string, string> = {};
  for (let i = 1; i <= 4; i++) files[`V${i}__m${i}.sql`] = `CREATE TABLE m${i} (id int);\nSELECT pg_sleep(0.2);`;
  const set = writeMigrations(files);
  t.after(() => set.remove());
  const taskQueue = uniqueTaskQueue();
  const pool = workerPool({ taskQueue, databases: Object.fromEntries(dbs.map((d, i) => [`shard${i}`, d.url])), migrationsDir: set.dir });
  t.after(() => pool.stopAll());
  const workers = [pool.start(), pool.start()];
  const { client, close } = await testClient();
  t.after(close);
  const handles = await Promise.all(dbs.map((_, i) => startMigration({ client, taskQueue }, { db: `shard${i}`, migrationsDir: set.dir })));
  const results = await Promise.all(handles.map((h) => h.result()));
  assert.ok(results.every((r) => r.status === 'applied'));
  const identities = new Set<string>();
  for (const h of handles) {
    for (const e of (await h.fetchHistory()).events ?? []) {
      const identity = e.activityTaskStartedEventAttributes?.identity;
      if (identity) identities.add(identity.split('@')[0]!);
    }
  }
  assert.deepEqual([...identities].sort(), workers.map((w) => String(w.pid)).sort(), 'both worker processes ran activities');
});
