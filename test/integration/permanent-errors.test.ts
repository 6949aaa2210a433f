import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import type { Client } from '@temporalio/client';
import type { Config } from '../../src/config/config';
import { defaultExecutionSettings } from '../../src/core/execution-settings';
import { withClient } from '../../src/db/connection';
import { applyMigration } from '../../src/db/execute';
import { ensureLedger } from '../../src/db/ledger';
import { adminQuery, createTestDatabase, statementRunning, type TestDatabase } from '../helpers/database';
import { engineContext, prepared } from '../helpers/engine';
import { activitySteps } from '../helpers/histories';
import { runInProcess, type InProcessResult } from '../helpers/in-process-cli';
import { writeMigrations } from '../helpers/migrations';
import { startPrivatePostgres } from '../helpers/private-postgres';
import { services } from '../helpers/services';
import { sharedTestClient, testConfig, withWorker } from '../helpers/temporal';
import { waitFor } from '../helpers/workers';

const shared = sharedTestClient();

function cliEnv(config: Config): NodeJS.ProcessEnv {
  return { ...services.temporalEnv, PGCONVOY_TASK_QUEUE: config.temporal.taskQueue, PGCONVOY_LOG_LEVEL: 'silent' };
}

/** `up` through the in-process CLI, failing the test (instead of waiting for minutes of retries) after `limitMs`. */
async function upWithin(limitMs: number, config: Config, dir: string, args: string[]): Promise<InProcessResult & { elapsedMs: number }> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`up did not finish within ${limitMs} ms: a permanent error is being retried`)), limitMs);
  });
  try {
    const result = await withWorker(config, () => Promise.race([runInProcess(['--migrations', dir, 'up', ...args], cliEnv(config), dir), limit]));
    return { ...result, elapsedMs: Date.now() - started };
  } finally {
    clearTimeout(timer);
  }
}

/** The attempt numbers of each activity of the database's latest run, from its history. */
async function activityAttempts(client: Client, db: string): Promise<Array<[string, number]>> {
  const history = await client.workflow.getHandle(`pgconvoy/db/${db}`).fetchHistory();
  return activitySteps(history)
    .filter((s) => s.name !== 'holdLease')
    .map((s): [string, number] => [s.name, s.attempt]);
}

async function failedRows(db: TestDatabase): Promise<Array<{ version: string; error_sqlstate: string | null }>> {
  return (await db.query<{ version: string; error_sqlstate: string | null }>(`SELECT version::text, error_sqlstate FROM pgconvoy.history WHERE status = 'failed' ORDER BY id`)).rows;
}

test('statement_timeout (57014) fails at once: one attempt instead of ten, naming file, version, line, SQLSTATE and the alias', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const set = writeMigrations({ 'V1__slow.sql': '-- pgconvoy:statement-timeout 1s\nCREATE TABLE st (id int);\nSELECT pg_sleep(30);\n' });
  t.after(() => set.remove());
  const config = testConfig({ databases: { slowpoke: db.url }, migrationsDir: set.dir });

  const result = await upWithin(25_000, config, set.dir, ['--db', 'slowpoke']);
  assert.equal(result.code, 4, result.stderr);
  assert.match(result.stderr, /\[MigrationFailed\] V1__slow\.sql \(version 1\) failed at statement 2 of 2, line 3, column 1: SQLSTATE 57014: canceling statement due to statement timeout\n/);
  assert.match(result.stderr, /next: statement 2 ran past its statement_timeout, or someone cancelled it; pgconvoy does not retry that\. .*"-- pgconvoy:statement-timeout <duration>" in V1__slow\.sql, then run `pgconvoy up --db slowpoke`/);
  assert.ok(result.elapsedMs < 20_000, `took ${result.elapsedMs} ms`);
  assert.deepEqual((await activityAttempts(shared.client, 'slowpoke')).filter(([name]) => name === 'applyMigration'), [['applyMigration', 1]]);
  assert.deepEqual(await failedRows(db), [{ version: '1', error_sqlstate: '57014' }], 'one failed attempt in the ledger');
  assert.equal((await db.query(`SELECT to_regclass('st') AS t`)).rows[0]?.t, null, 'nothing of V1 remains');
});

test('lock-timeout exhaustion: the engine schedule is the whole retry, the activity does not retry it, and the attempt count is true', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  await db.query('CREATE TABLE held (id int)');
  const holder = new pg.Client({ connectionString: db.url });
  holder.on('error', () => undefined); // dropping the database ends its session
  await holder.connect();
  t.after(() => holder.end());
  await holder.query('BEGIN; LOCK TABLE held IN ACCESS SHARE MODE');
  const set = writeMigrations({ 'V1__add.sql': 'ALTER TABLE held ADD COLUMN x int;' });
  t.after(() => set.remove());
  const execution = { ...defaultExecutionSettings, lockTimeoutInitialMs: 100, lockTimeoutMs: 200, lockRetryMaxAttempts: 3, lockRetryPauseMs: 100, lockRetryMaxPauseMs: 200 };
  const config = testConfig({ databases: { busy: db.url }, migrationsDir: set.dir, execution });

  const result = await upWithin(20_000, config, set.dir, ['--db', 'busy', '--mode', 'aggressive']);
  assert.equal(result.code, 4, result.stderr);
  assert.match(result.stderr, /\[LockTimeout\] V1__add\.sql \(version 1\) statement 1 at line 1: could not get its lock in 3 attempts \(longest wait 200 ms, SQLSTATE 55P03\)/);
  assert.ok(result.elapsedMs < 15_000, `took ${result.elapsedMs} ms`);
  assert.deepEqual((await activityAttempts(shared.client, 'busy')).filter(([name]) => name === 'applyMigration'), [['applyMigration', 1]]);
  assert.deepEqual(await failedRows(db), [{ version: '1', error_sqlstate: '55P03' }]);
  await holder.query('ROLLBACK');
});

test('a wrong password fails at once with exit 2, names the alias and never the password, and changes nothing', async (t) => {
  const postgres = await startPrivatePostgres({ password: 'right-pass-81f' });
  t.after(() => postgres.stop());
  const set = writeMigrations({ 'V1__a.sql': 'CREATE TABLE a (id int);' });
  t.after(() => set.remove());
  const config = testConfig({ databases: { locked: postgres.url.replace('right-pass-81f', 'wrong-pass-3c9') }, migrationsDir: set.dir });

  const result = await upWithin(25_000, config, set.dir, ['--db', 'locked']);
  assert.equal(result.code, 2, result.stderr);
  assert.equal(
    result.stderr,
    `pgconvoy: migrating "locked" from ${set.dir}\n` +
      'pgconvoy: [DatabaseConfig] cannot connect to database "locked": password authentication failed for user "postgres" (SQLSTATE 28P01); check the password in its connection string\n' +
      'workflow: pgconvoy/db/locked\n',
  );
  assert.ok(result.elapsedMs < 20_000, `took ${result.elapsedMs} ms`);
  assert.deepEqual(await activityAttempts(shared.client, 'locked'), [['planDatabase', 1]]);
  const history = JSON.stringify(await shared.client.workflow.getHandle('pgconvoy/db/locked').fetchHistory());
  assert.ok(!history.includes('wrong-pass-3c9') && !history.includes('right-pass-81f'), 'no password in history');
  await withClient({ alias: 'check', url: postgres.url }, async (client) => {
    const schemas = await client.query(`SELECT 1 FROM pg_namespace WHERE nspname = 'pgconvoy'`);
    assert.equal(schemas.rowCount, 0, 'nothing was created');
  });
});

test("a migration's duration covers its lock-timeout retries, not only the last attempt", async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  await db.query('CREATE TABLE waits (id int)');
  const holder = new pg.Client({ connectionString: db.url });
  holder.on('error', () => undefined); // dropping the database ends its session
  await holder.connect();
  t.after(() => holder.end());
  await holder.query('BEGIN; LOCK TABLE waits IN ACCESS SHARE MODE');
  const [migration] = await prepared({ 'V1__add.sql': 'ALTER TABLE waits ADD COLUMN x int;' });
  const ctx = engineContext({ lockTimeoutInitialMs: 100, lockTimeoutMs: 200, lockRetryMaxAttempts: 30, lockRetryPauseMs: 100, lockRetryMaxPauseMs: 200 });

  let started = 0;
  let released: Promise<unknown> = Promise.resolve();
  const result = await withClient({ alias: 'waits', url: db.url }, async (client) => {
    await ensureLedger(client);
    // The lock goes 1.5 s after the migration starts (not after setup, whose time a loaded machine stretches).
    started = Date.now();
    released = new Promise((resolve) => setTimeout(resolve, 1_500)).then(() => holder.query('ROLLBACK'));
    return applyMigration(client, migration!, ctx);
  });
  const wallMs = Date.now() - started;
  await released;
  assert.equal(result.status, 'applied');
  assert.ok(ctx.events.filter((e) => e.event === 'migration.lock_timeout').length >= 2, 'it waited for the lock more than once');
  const durationMs = result.status === 'applied' ? result.durationMs : -1;
  assert.ok(durationMs >= 1_400 && durationMs <= wallMs, `duration ${durationMs} ms, wall time ${wallMs} ms`);
  const row = await db.query<{ execution_ms: number }>(`SELECT execution_ms FROM pgconvoy.history WHERE status = 'applied'`);
  assert.equal(row.rows[0]?.execution_ms, durationMs, 'the ledger records the same duration');
});

test("a migration's printed duration covers the activity's earlier attempts", async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const set = writeMigrations({ 'V1__retried.sql': 'SELECT pg_sleep(1.5) /* retried-marker */;\nCREATE TABLE retried (id int);\n' });
  t.after(() => set.remove());
  const config = testConfig({ databases: { retried: db.url }, migrationsDir: set.dir });

  const result = await withWorker(config, async () => {
    const up = runInProcess(['--migrations', set.dir, 'up', '--db', 'retried'], cliEnv(config), set.dir);
    await waitFor('the first attempt to run', () => statementRunning(db, 'retried-marker'));
    await new Promise((resolve) => setTimeout(resolve, 300));
    // The first attempt loses its connection (57P01, retryable): the activity runs again after its backoff.
    await adminQuery(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${db.name}' AND query LIKE '%retried-marker%' AND pid <> pg_backend_pid()`);
    return up;
  });
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual((await activityAttempts(shared.client, 'retried')).filter(([name]) => name === 'applyMigration'), [['applyMigration', 2]]);
  const printed = /applied {2}V1 {2}retried +(\d+) ms/.exec(result.stdout);
  assert.ok(printed, result.stdout);
  const durationMs = Number(printed[1]);
  // 0.3 s of the first attempt, 1 s of backoff and 1.5 s of the second.
  assert.ok(durationMs >= 2_500, `printed ${durationMs} ms`);
  const row = await db.query<{ execution_ms: number }>(`SELECT execution_ms FROM pgconvoy.history WHERE status = 'applied'`);
  assert.equal(row.rows[0]?.execution_ms, durationMs, 'the ledger records the same duration');
});
