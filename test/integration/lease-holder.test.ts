import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import pg from 'pg';
import { RunConflictError, startMigration } from '../../src/client/api';
import { startDevServer } from '../../src/worker/dev-server';
import { progressQuery } from '../../src/workflows/messages';
import { createTestDatabase } from '../helpers/database';
import { runInProcess } from '../helpers/in-process-cli';
import { writeMigrations } from '../helpers/migrations';
import { startPrivatePostgres } from '../helpers/private-postgres';
import { services } from '../helpers/services';
import { sharedTestClient, testConfig, withWorker } from '../helpers/temporal';
import { waitFor } from '../helpers/workers';

const shared = sharedTestClient();

test('two Temporal clusters run `up` on one database: the lease is held by one run at a time, and the runs do not interleave', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const files: Record<string, string> = {};
  for (let v = 1; v <= 6; v++) files[`V${v}__step_${v}.sql`] = `SELECT pg_sleep(0.4);\nCREATE TABLE step_${v} (id int);`;
  const set = writeMigrations(files);
  t.after(() => set.remove());

  // A second, independent Temporal (another embedded state directory, say): the same workflow id means nothing there.
  const scratch = mkdtempSync(join(tmpdir(), 'pgconvoy-second-cluster-'));
  const second = await startDevServer({ dbFile: join(scratch, 'temporal.db'), logFile: join(scratch, 'temporal.log'), namespaces: [services.temporalNamespace] });
  t.after(async () => {
    await second.stop();
    rmSync(scratch, { recursive: true, force: true });
  });
  const connection = await Connection.connect({ address: second.address });
  t.after(() => connection.close());
  const secondClient = new Client({ connection, namespace: services.temporalNamespace });

  const one = testConfig({ databases: { shared: db.url }, migrationsDir: set.dir });
  const two = testConfig({ databases: { shared: db.url }, migrationsDir: set.dir, temporal: { ...one.temporal, address: second.address } });
  const [first, other] = await withWorker(one, () =>
    withWorker(two, async () => {
      const a = await startMigration({ client: shared.client, taskQueue: one.temporal.taskQueue }, { db: 'shared', migrationsDir: set.dir });
      await waitFor('the first run to hold the lease', async () => ((await db.query(`SELECT to_regclass('pgconvoy.lease') IS NOT NULL AS t`)).rows[0]?.t && (await db.query('SELECT 1 FROM pgconvoy.lease')).rowCount ? true : undefined), 60_000);
      const b = await startMigration({ client: secondClient, taskQueue: two.temporal.taskQueue }, { db: 'shared', migrationsDir: set.dir });
      assert.equal(b.workflowId, a.workflowId, 'the same workflow id, on another cluster');
      return Promise.all([a.result(), b.result()]);
    }),
  );
  assert.equal(first.status, 'applied');
  assert.equal(other.status, 'applied');
  const rows = (await db.query<{ version: string; run_id: string }>(`SELECT version::text, run_id FROM pgconvoy.history WHERE status = 'applied' ORDER BY version`)).rows;
  assert.equal(rows.length, 6, 'each migration applied exactly once');
  assert.equal(new Set(rows.map((r) => r.run_id)).size, 1, `one run applied all of them, not both in turns: ${JSON.stringify(rows)}`);
  const appliedBy = (r: typeof first) => r.applied.filter((s) => s.status === 'applied').length;
  assert.deepEqual([appliedBy(first), appliedBy(other)].sort(), [0, 6], 'the run that waited found everything applied and changed nothing');
  assert.equal((await db.query('SELECT 1 FROM pgconvoy.lease')).rowCount, 0);
});

test('a long migration keeps its lease alive on a bounded number of connections; the application still connects to a server with few of them', async (t) => {
  // max_connections 15 with 3 reserved for superusers leaves the application 12.
  const server = await startPrivatePostgres({ settings: { max_connections: 15 } });
  t.after(() => server.stop());
  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  t.after(() => admin.end());
  await admin.query(`CREATE DATABASE longrun`);
  await admin.query(`CREATE ROLE app LOGIN`);
  const url = server.url.replace(/\/postgres$/, '/longrun');
  const appUrl = url.replace('postgres@', 'app@');

  // 40 s is thirteen lease lifetimes (3 s): a lease that could not be renewed during the migration would expire many times over.
  const migrationSeconds = 40;
  const set = writeMigrations({ 'V1__long.sql': `CREATE TABLE big (id int);\nSELECT pg_sleep(${migrationSeconds}) /* long migration */;` });
  t.after(() => set.remove());
  const config = testConfig({ databases: { longrun: url }, migrationsDir: set.dir, lease: { ttlMs: 3_000, renewEveryMs: 500 } });
  const samples: Array<{ live: boolean; renewedMsAgo: number; ours: number }> = [];
  const result = await withWorker(config, async () => {
    const handle = await startMigration({ client: shared.client, taskQueue: config.temporal.taskQueue }, { db: 'longrun', migrationsDir: set.dir });
    const watcher = new pg.Client({ connectionString: url });
    await watcher.connect();
    try {
      await waitFor('the long statement to run', async () => ((await watcher.query(`SELECT 1 FROM pg_stat_activity WHERE query LIKE '%long migration%' AND state = 'active' AND pid <> pg_backend_pid()`)).rowCount ? true : undefined), 60_000);
      for (let i = 0; i < migrationSeconds - 5; i++) {
        // now() is when the sample's transaction began, before its snapshot: a renewal committed in between is seen "in the future". clock_timestamp() is not.
        const lease = await watcher.query<{ live: boolean; ms: number }>(`SELECT expires_at > now() AS live, (extract(epoch FROM clock_timestamp() - renewed_at) * 1000)::int AS ms FROM pgconvoy.lease`);
        const ours = await watcher.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = 'longrun' AND application_name LIKE 'pgconvoy%'`);
        samples.push({ live: lease.rows[0]?.live ?? false, renewedMsAgo: lease.rows[0]?.ms ?? -1, ours: ours.rows[0]!.n });
        await new Promise((r) => setTimeout(r, 1_000));
      }
      // The application, an ordinary role, can still connect while the migration runs.
      const app = new pg.Client({ connectionString: appUrl });
      await app.connect();
      assert.deepEqual((await app.query('SELECT 1 AS ok')).rows, [{ ok: 1 }]);
      await app.end();
    } finally {
      await watcher.end();
    }
    return handle.result();
  });
  assert.equal(result.status, 'applied');
  assert.ok(samples.every((s) => s.live), `the lease never expired during the migration: ${JSON.stringify(samples)}`);
  assert.ok(samples.every((s) => s.renewedMsAgo >= 0 && s.renewedMsAgo < 2_500), `the lease was renewed all along: ${JSON.stringify(samples)}`);
  assert.ok(Math.max(...samples.map((s) => s.ours)) <= 3, `pgconvoy used at most 3 connections: ${JSON.stringify(samples.map((s) => s.ours))}`);
});

test('a dry run takes no database workflow id, and an `up` with other options is refused instead of adopting the running run', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const set = writeMigrations({ 'V1__a.sql': 'CREATE TABLE a (id int);', 'V2__b.sql': 'CREATE TABLE b (id int);', 'V3__c.sql': 'CREATE TABLE c (id int);' });
  t.after(() => set.remove());
  const config = testConfig({ databases: { owned: db.url }, migrationsDir: set.dir });
  const pgconvoy = { client: shared.client, taskQueue: config.temporal.taskQueue };
  const env = { ...services.temporalEnv, PGCONVOY_TASK_QUEUE: config.temporal.taskQueue, PGCONVOY_LOG_LEVEL: 'silent', PGCONVOY_DB_OWNED: db.url };
  await withWorker(config, async () => {
    const waiting = await startMigration(pgconvoy, { db: 'owned', migrationsDir: set.dir, requireApproval: true, approvalTimeoutMs: 120_000 });
    await waitFor('the run to wait for approval', async () => ((await waiting.query(progressQuery).catch(() => undefined))?.phase === 'awaiting-approval' ? true : undefined), 60_000);

    // A dry run beside it: its own id, its own answer.
    const dry = await startMigration(pgconvoy, { db: 'owned', migrationsDir: set.dir, mode: 'dry-run', target: '2' });
    assert.notEqual(dry.workflowId, waiting.workflowId);
    const preview = await dry.result();
    assert.equal(preview.status, 'dry-run');
    assert.deepEqual(preview.status === 'dry-run' ? preview.pending.map((p) => p.version) : [], ['1', '2']);

    // Other options: refused, naming what differs.
    await assert.rejects(startMigration(pgconvoy, { db: 'owned', migrationsDir: set.dir, mode: 'aggressive' }), (error: unknown) => {
      assert.ok(error instanceof RunConflictError);
      assert.match(error.message, /^a migration of "owned" is already running \(workflow pgconvoy\/db\/owned, run \S+\) with other options: mode auto there, aggressive here; requireApproval true there, false here; nothing was started/);
      return true;
    });
    const cli = await runInProcess(['--migrations', set.dir, 'up', '--db', 'owned', '--target', '2', '--require-approval'], env, set.dir);
    assert.equal(cli.code, 2, cli.stderr);
    assert.match(cli.stderr, /\[RunConflict\] a migration of "owned" is already running .* with other options: target none there, 2 here/);

    // The same options: the same run.
    const same = await startMigration(pgconvoy, { db: 'owned', migrationsDir: set.dir, requireApproval: true, approvalTimeoutMs: 120_000 });
    assert.equal(same.firstExecutionRunId, waiting.firstExecutionRunId);
    assert.equal((await waiting.query(progressQuery)).phase, 'awaiting-approval', 'the waiting run was not disturbed');
    await waiting.cancel();
  });
  assert.equal((await db.query(`SELECT to_regclass('public.a') AS t`)).rows[0]?.t, null, 'nothing was applied');
});
