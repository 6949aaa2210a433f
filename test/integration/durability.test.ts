import assert from 'node:assert/strict';
import { test } from 'node:test';
import { approve, startMigration } from '../../src/client/api';
import { progressQuery } from '../../src/workflows/messages';
import { type MigrateDatabaseInput } from '../../src/contracts';
import { createTestDatabase, statementRunning, type TestDatabase } from '../helpers/database';
import { writeMigrations } from '../helpers/migrations';
import { sharedTestClient, uniqueTaskQueue } from '../helpers/temporal';
import { waitFor, workerPool } from '../helpers/workers';

const shared = sharedTestClient();

async function ledgerRows(db: TestDatabase): Promise<Array<{ version: string; status: string }>> {
  return (await db.query<{ version: string; status: string }>('SELECT version::text, status FROM pgconvoy.history ORDER BY id')).rows;
}

async function leaseRows(db: TestDatabase): Promise<number> {
  return (await db.query('SELECT 1 FROM pgconvoy.lease')).rowCount ?? 0;
}

/**
 * Starts a migration served by worker process A, waits for `moment`, SIGKILLs
 * A, starts worker B and expects the run to finish on B.
 */
async function killAndResume(
  t: { after(fn: () => unknown): void },
  files: Record<string, string>,
  moment: (db: TestDatabase) => Promise<true | undefined>,
  extra: Partial<MigrateDatabaseInput> = {},
  /** Runs once worker B is up (an update needs a worker to take it). */
  afterKill?: (db: TestDatabase) => Promise<void>,
) {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const set = writeMigrations(files);
  t.after(() => set.remove());
  const taskQueue = uniqueTaskQueue();
  const pool = workerPool({ taskQueue, databases: { victim: db.url }, migrationsDir: set.dir });
  t.after(() => pool.stopAll());

  const a = pool.start();
  const handle = await startMigration({ client: shared.client, taskQueue }, { db: 'victim', migrationsDir: set.dir, ...extra });
  await waitFor('the moment to kill the worker', () => moment(db), 60_000);
  a.kill('SIGKILL');
  await a.exited;
  const b = pool.start();
  await afterKill?.(db);
  const result = await handle.result();
  return { db, result, handle, b };
}

test('SIGKILL while waiting for approval: a fresh worker takes the approval and completes', async (t) => {
  const { db, result } = await killAndResume(
    t,
    { 'V1__a.sql': 'CREATE TABLE a (id int);' },
    async () => {
      const handle = shared.client.workflow.getHandle('pgconvoy/db/victim');
      const progress = await handle.query(progressQuery).catch(() => undefined);
      return progress?.phase === 'awaiting-approval' ? true : undefined;
    },
    { requireApproval: true },
    async () => {
      const ack = await approve({ client: shared.client, taskQueue: '' }, 'victim', { by: 'test@ci' });
      assert.equal(ack.phase, 'awaiting-approval');
    },
  );
  assert.equal(result.status, 'applied');
  assert.equal(result.status === 'applied' ? result.approvedBy : undefined, 'test@ci');
  assert.deepEqual(await ledgerRows(db), [{ version: '1', status: 'applied' }]);
  assert.equal(await leaseRows(db), 0, 'no lease is left behind');
});

test('SIGKILL holding the lease before the first migration: completes, each migration once, no lease left', async (t) => {
  const { db, result } = await killAndResume(
    t,
    { 'V1__slow_start.sql': 'SELECT pg_sleep(1.5);\nCREATE TABLE a (id int);\nINSERT INTO a VALUES (1);', 'V2__b.sql': 'CREATE TABLE b (id int);' },
    async (d) => ((await d.query(`SELECT to_regclass('pgconvoy.lease') IS NOT NULL AS t`)).rows[0]?.t && (await leaseRows(d)) > 0 ? true : undefined),
  );
  assert.equal(result.status, 'applied');
  assert.deepEqual(await ledgerRows(db), [{ version: '1', status: 'applied' }, { version: '2', status: 'applied' }]);
  assert.deepEqual((await db.query('SELECT count(*)::int AS n FROM a')).rows, [{ n: 1 }]);
  assert.equal(await leaseRows(db), 0);
});

test('SIGKILL in the middle of a transactional migration: it is rolled back and re-applied exactly once', async (t) => {
  const { db, result } = await killAndResume(
    t,
    { 'V1__tx.sql': 'CREATE TABLE once (id int);\nINSERT INTO once VALUES (1);\nSELECT pg_sleep(2) /* mid-transaction */;\nINSERT INTO once VALUES (2);' },
    (d) => statementRunning(d, 'mid-transaction'),
  );
  assert.equal(result.status, 'applied');
  assert.deepEqual((await db.query('SELECT id FROM once ORDER BY id')).rows, [{ id: 1 }, { id: 2 }]);
  assert.deepEqual(await ledgerRows(db), [{ version: '1', status: 'applied' }]);
  assert.equal(await leaseRows(db), 0);
});

test('SIGKILL in a no-transaction file between two statements: the next worker resumes after the completed one', async (t) => {
  const { db, result } = await killAndResume(
    t,
    { 'V1__steps.sql': '-- pgconvoy:no-transaction\nCREATE TABLE first (id int);\nSELECT pg_sleep(2) /* between statements */;\nCREATE TABLE third (id int);\n' },
    async (d) => ((await d.query(`SELECT to_regclass('public.first') IS NOT NULL AS t`)).rows[0]?.t ? statementRunning(d, 'between statements') : undefined),
  );
  // CREATE TABLE first has no IF NOT EXISTS: had it run twice, the run would have failed.
  assert.equal(result.status, 'applied');
  const rows = await db.query<{ status: string; statements_done: number }>('SELECT status, statements_done FROM pgconvoy.history ORDER BY id');
  assert.deepEqual(rows.rows.at(-1), { status: 'applied', statements_done: 3 });
  assert.ok(rows.rows.slice(0, -1).every((r) => r.status === 'failed' && r.statements_done >= 1), JSON.stringify(rows.rows));
  assert.equal(await leaseRows(db), 0);
});

test('SIGKILL between two migrations: the first stays applied once, the second runs on the next worker', async (t) => {
  const { db, result } = await killAndResume(
    t,
    { 'V1__a.sql': 'CREATE TABLE a (id int);', 'V2__b.sql': 'SELECT pg_sleep(1.5) /* second migration */;\nCREATE TABLE b (id int);' },
    async (d) => ((await d.query(`SELECT to_regclass('pgconvoy.history') IS NOT NULL AS t`)).rows[0]?.t && (await ledgerRows(d)).some((r) => r.version === '1') ? true : undefined),
  );
  assert.equal(result.status, 'applied');
  assert.deepEqual(await ledgerRows(db), [{ version: '1', status: 'applied' }, { version: '2', status: 'applied' }]);
  assert.equal(await leaseRows(db), 0);
});
