import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConnectionPool } from '../../src/db/connection';
import { createLogger } from '../../src/logging/logger';
import { applyMigration, localDeps, planDatabase, type RunDeps } from '../../src/runs';
import { createTestDatabase } from '../helpers/database';
import { writeMigrations } from '../helpers/migrations';
import { testConfig } from '../helpers/temporal';

test('a kept connection carries nothing of one migration into the next: temporary tables, settings and role are gone; a failed step closes its connection', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  await db.query(`DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgconvoy_pool_role') THEN CREATE ROLE pgconvoy_pool_role; END IF; END $$`);
  await db.query('GRANT CREATE ON SCHEMA public TO pgconvoy_pool_role');
  const set = writeMigrations({
    'V1__a.sql': "CREATE TEMP TABLE scratch (id int);\nSET application_name = 'left behind';\nSET ROLE pgconvoy_pool_role;\nCREATE TABLE a (id int);",
    'V2__b.sql': "CREATE TEMP TABLE scratch (id int);\nCREATE TABLE b (owner text DEFAULT current_user, app text DEFAULT current_setting('application_name'));\nINSERT INTO b DEFAULT VALUES;",
    'V3__boom.sql': 'CREATE TABLE c (id int);\nINSERT INTO c VALUES (1 / 0);',
  });
  t.after(() => set.remove());
  const connections = new ConnectionPool();
  const deps: RunDeps = {
    ...localDeps(testConfig({ databases: { pool: db.url }, migrationsDir: set.dir }), createLogger('silent')),
    execution: { namespace: 'default', workflowId: 'pgconvoy/db/pool', runId: 'pool-run' },
    connections,
  };
  const plan = await planDatabase(deps, { db: 'pool', migrationsDir: set.dir });
  const apply = (version: string) => applyMigration(deps, { db: 'pool', migrationsDir: set.dir, manifestDigest: plan.manifestDigest, version });
  const backends = async () =>
    (await db.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'pgconvoy'`)).rows.map((r) => r.pid);

  assert.equal((await apply('1')).status, 'applied');
  const [kept] = await backends();
  assert.ok(kept, 'the connection is kept');
  assert.equal((await apply('2')).status, 'applied', 'its own temporary table did not collide with the first one');
  assert.deepEqual(await backends(), [kept], 'the same connection ran both');
  assert.deepEqual((await db.query('SELECT owner, app FROM b')).rows, [{ owner: 'postgres', app: 'pgconvoy' }], 'neither the role nor the setting of V1 reached V2');
  await assert.rejects(apply('3'), /division by zero/);
  assert.deepEqual(await backends(), [], 'a failed step closes its connection instead of keeping it');
});

test("a kept connection keeps pgconvoy's prepared statements; a migration that prepares its own is not kept, and one that could drop pgconvoy's (DEALLOCATE) runs on a connection of its own", async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const seen = (table: string) => `CREATE TABLE ${table} AS SELECT name FROM pg_prepared_statements WHERE name LIKE 'pgconvoy\\_%';`;
  const set = writeMigrations({
    'V1__a.sql': 'CREATE TABLE a (id int);',
    'V2__seen.sql': seen('seen_before'),
    'V3__deallocate.sql': 'DEALLOCATE ALL;\nCREATE TABLE c (id int);',
    'V4__seen_again.sql': seen('seen_after'),
    'V5__prepare.sql': 'PREPARE mine AS SELECT 1;\nCREATE TABLE e (id int);',
    'V6__f.sql': 'PREPARE mine AS SELECT 2;\nCREATE TABLE f (id int);',
  });
  t.after(() => set.remove());
  const deps: RunDeps = {
    ...localDeps(testConfig({ databases: { pool: db.url }, migrationsDir: set.dir }), createLogger('silent')),
    execution: { namespace: 'default', workflowId: 'pgconvoy/db/pool', runId: 'pool-prepared' },
    connections: new ConnectionPool(),
  };
  const plan = await planDatabase(deps, { db: 'pool', migrationsDir: set.dir });
  const apply = (version: string) => applyMigration(deps, { db: 'pool', migrationsDir: set.dir, manifestDigest: plan.manifestDigest, version });
  const backends = async () =>
    (await db.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'pgconvoy'`)).rows.map((r) => r.pid);
  const names = async (table: string) => (await db.query<{ name: string }>(`SELECT name FROM ${table} ORDER BY name`)).rows.map((r) => r.name);

  for (const v of ['1', '2']) assert.equal((await apply(v)).status, 'applied');
  const [kept] = await backends();
  assert.ok(kept, 'the connection is kept');
  const prepared = await names('seen_before');
  assert.ok(prepared.includes('pgconvoy_apply_preflight') && prepared.includes('pgconvoy_history_insert'), `prepared on the kept connection by V1: ${prepared.join(', ')}`);
  assert.equal((await apply('3')).status, 'applied');
  assert.deepEqual(await backends(), [kept], 'DEALLOCATE ran on a connection of its own, closed after it');
  assert.equal((await apply('4')).status, 'applied');
  assert.deepEqual(await names('seen_after'), prepared, 'the kept connection still has them');
  assert.equal((await apply('5')).status, 'applied');
  assert.deepEqual(await backends(), [], 'a connection left with a statement the migration prepared is closed, not kept');
  assert.equal((await apply('6')).status, 'applied', 'so the next migration preparing the same name does not collide');
});
