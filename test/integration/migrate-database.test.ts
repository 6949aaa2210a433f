import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { activitySteps, maybeRecordHistory, stepNames } from '../helpers/histories';
import { migrate, startMigration } from '../../src/client/api';
import { summarizeFailure, type FailureSummary } from '../../src/client/failure';
import { createTestDatabase } from '../helpers/database';
import { sampleMigrationsDir, writeMigrations } from '../helpers/migrations';
import { sharedTestClient, testConfig, withWorker } from '../helpers/temporal';

const password = 'Pa55-not-in-history-7c1e';
const shared = sharedTestClient();

async function failureOf(run: Promise<unknown>): Promise<FailureSummary> {
  try {
    await run;
  } catch (error) {
    return summarizeFailure(error);
  }
  assert.fail('the run should have failed');
}

test('the sample set is applied through the workflow, its short migrations inline, and a second run applies nothing', async (t) => {
  const db = await createTestDatabase({ password });
  t.after(() => db.drop());
  const config = testConfig({ databases: { shop: db.url }, migrationsDir: sampleMigrationsDir });
  const pgconvoy = { client: shared.client, taskQueue: config.temporal.taskQueue };

  const first = await withWorker(config, async () => {
    const handle = await startMigration(pgconvoy, { db: 'shop', migrationsDir: sampleMigrationsDir });
    assert.equal(handle.workflowId, 'pgconvoy/db/shop');
    const result = await handle.result();
    return { result, history: await handle.fetchHistory() };
  });

  assert.equal(first.result.status, 'applied');
  assert.equal(first.result.version, '3');
  assert.deepEqual(first.result.applied.map((s) => [s.version, s.status]), [['1', 'applied'], ['2', 'applied'], ['3', 'applied']]);
  assert.deepEqual(stepNames(first.history), [
    'planDatabase (inline)',
    'acquireLease (inline)',
    'holdLease',
    'beginRun',
    'takeBackup',
    'applyMigrations (inline)',
    'verifyRun',
    'releaseLease (inline)',
  ]);
  const lease = await db.query('SELECT * FROM pgconvoy.lease');
  assert.equal(lease.rowCount, 0, 'the lease is released');

  const ledger = await db.query<{ version: string; status: string; file: string; workflow_id: string }>(
    'SELECT version::text, status, file, workflow_id FROM pgconvoy.history ORDER BY id',
  );
  assert.deepEqual(ledger.rows, [
    { version: '1', status: 'applied', file: 'V1__create_customers.sql', workflow_id: 'pgconvoy/db/shop' },
    { version: '2', status: 'applied', file: 'V2__create_orders.sql', workflow_id: 'pgconvoy/db/shop' },
    { version: '3', status: 'applied', file: 'V3__order_totals_function.sql', workflow_id: 'pgconvoy/db/shop' },
  ]);
  const tables = await db.query<{ table_name: string }>(
    `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name`,
  );
  assert.deepEqual(tables.rows.map((r) => r.table_name), ['customers', 'orders']);
  await db.query(`INSERT INTO customers (email) VALUES ('a@example.com')`);
  await db.query(`INSERT INTO orders (customer_id, total_cents) SELECT id, 250 FROM customers`);
  const total = await db.query<{ total: string }>(`SELECT customer_total_cents(id)::text AS total FROM customers`);
  assert.equal(total.rows[0]?.total, '250');

  const historyJson = historyToJSON(first.history);
  assert.ok(historyJson.includes('pgconvoy/db/shop'), 'the history was fetched and holds the run');
  assert.ok(!historyJson.includes(password), 'the database password must not appear in workflow history');
  assert.ok(!historyJson.includes(db.url), 'the connection string must not appear in workflow history');
  maybeRecordHistory('migrate-database-applied-with-backup', first.history);

  const second = await withWorker(config, async () => {
    const handle = await startMigration(pgconvoy, { db: 'shop', migrationsDir: sampleMigrationsDir });
    return { result: await handle.result(), history: await handle.fetchHistory() };
  });
  assert.deepEqual(second.result, {
    status: 'up-to-date',
    db: 'shop',
    workflowId: 'pgconvoy/db/shop',
    runId: second.result.runId,
    manifestDigest: first.result.manifestDigest,
    versionBefore: '3',
    versionAfter: '3',
    migrations: [],
    version: '3',
    applied: [],
  });
  assert.notEqual(second.result.runId, first.result.runId);
  assert.deepEqual(stepNames(second.history), ['planDatabase (inline)']);
  maybeRecordHistory('migrate-database-up-to-date', second.history);
  const count = await db.query<{ n: string }>('SELECT count(*)::text AS n FROM pgconvoy.history');
  assert.equal(count.rows[0]?.n, '3');
});

test('with --on-failure halt, a failing migration rolls back entirely, is recorded as failed, and fails the workflow with its SQLSTATE and line', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const set = writeMigrations({
    'V1__ok.sql': 'CREATE TABLE kept (id int);',
    'V2__broken.sql': 'CREATE TABLE half (id int);\nINSERT INTO half VALUES (1);\nSELECT * FROM no_such_table;\n',
    'V3__never.sql': 'CREATE TABLE never (id int);',
  });
  t.after(() => set.remove());
  const config = testConfig({ databases: { broken: db.url }, migrationsDir: set.dir });

  const error = await withWorker(config, () =>
    migrate({ client: shared.client, taskQueue: config.temporal.taskQueue }, { db: 'broken', migrationsDir: set.dir, onFailure: 'halt' }).then(
      () => assert.fail('the run should have failed'),
      (e: unknown) => e,
    ),
  );
  assert.ok(error instanceof WorkflowFailedError, 'the workflow itself fails, so the Temporal UI shows it failed');
  maybeRecordHistory('migrate-database-halted-with-backup', await shared.client.workflow.getHandle('pgconvoy/db/broken').fetchHistory());
  const failure = summarizeFailure(error);
  assert.equal(failure.type, 'MigrationFailed');
  assert.equal(
    failure.message,
    'V2__broken.sql (version 2) failed at statement 3 of 3, line 3, column 15: SQLSTATE 42P01: relation "no_such_table" does not exist',
  );

  const ledger = await db.query<{ version: string; status: string; error_sqlstate: string | null }>(
    'SELECT version::text, status, error_sqlstate FROM pgconvoy.history ORDER BY id',
  );
  assert.deepEqual(ledger.rows, [
    { version: '1', status: 'applied', error_sqlstate: null },
    { version: '2', status: 'failed', error_sqlstate: '42P01' },
  ]);
  const tables = await db.query<{ table_name: string }>(
    `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name`,
  );
  assert.deepEqual(tables.rows.map((r) => r.table_name), ['kept'], 'nothing of V2 remains and V3 never ran');
});

test('a short migration that fails after others in the same inline call is recorded failed once: the call ends before it, and it fails again first in the next', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  // All three predicted short (new tables, no SELECT): they start in one inline call.
  const set = writeMigrations({
    'V1__a.sql': 'CREATE TABLE a (id int);',
    'V2__b.sql': 'CREATE TABLE b (id int);',
    'V3__boom.sql': 'CREATE TABLE c (id int);\nINSERT INTO c VALUES (1 / 0);',
  });
  t.after(() => set.remove());
  const config = testConfig({ databases: { batch: db.url }, migrationsDir: set.dir });
  const { error, history } = await withWorker(config, async () => {
    const handle = await startMigration({ client: shared.client, taskQueue: config.temporal.taskQueue }, { db: 'batch', migrationsDir: set.dir, onFailure: 'halt' });
    const e = await handle.result().then(() => assert.fail('the run should have failed'), (x: unknown) => x);
    return { error: e, history: await handle.fetchHistory() };
  });
  assert.equal(summarizeFailure(error).type, 'MigrationFailed');
  assert.match(summarizeFailure(error).message, /^V3__boom\.sql \(version 3\) failed at statement 2 of 2, .*SQLSTATE 22012: division by zero$/);
  const inline = activitySteps(history).filter((s) => s.name === 'applyMigrations');
  assert.ok(inline.length >= 2 && inline.every((s) => s.local), `V3 ran again in a call of its own: ${JSON.stringify(inline)}`);
  const ledger = await db.query<{ version: string; status: string }>('SELECT version::text, status FROM pgconvoy.history ORDER BY id');
  assert.deepEqual(ledger.rows, [
    { version: '1', status: 'applied' },
    { version: '2', status: 'applied' },
    { version: '3', status: 'failed' },
  ], 'one failed row for V3: its first failure, inside the call with V1 and V2, was not recorded');
  assert.equal((await db.query(`SELECT to_regclass('public.c') AS c`)).rows[0]?.c, null, 'nothing of V3 remains');
});

test('an unknown alias and a broken set fail at once, without retries, naming the alias and the file', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const good = writeMigrations({ 'V1__a.sql': 'SELECT 1;' });
  const set = writeMigrations({ 'V1__a.sql': 'SELECT 1;', 'V01__b.sql': 'SELECT 2;' });
  t.after(() => set.remove());
  t.after(() => good.remove());
  const config = testConfig({ databases: { known: db.url }, migrationsDir: set.dir });
  const pgconvoy = { client: shared.client, taskQueue: config.temporal.taskQueue };

  const failures = await withWorker(config, async () => {
    const unknown = await failureOf(migrate(pgconvoy, { db: 'unknown', migrationsDir: good.dir }));
    const broken = await failureOf(migrate(pgconvoy, { db: 'known', migrationsDir: set.dir }));
    return { unknown, broken };
  });
  assert.deepEqual(
    [failures.unknown.type, failures.unknown.message],
    ['UnknownDatabase', 'database alias "unknown" is not configured: add it under "databases" in the config file or set PGCONVOY_DB_UNKNOWN'],
  );
  assert.equal(failures.broken.type, 'InvalidMigrationSet');
  assert.equal(failures.broken.message, `invalid migration set in ${set.dir}:\n  V1__a.sql: duplicate version 1: also in V01__b.sql`);
  const history = await shared.client.workflow.getHandle('pgconvoy/db/known').fetchHistory();
  assert.deepEqual(activitySteps(history).map((s) => [s.name, s.attempt]), [['planDatabase', 1]], 'a permanent failure is not retried');
});

test('the ledger refuses a run when an applied file was edited', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const set = writeMigrations({ 'V1__a.sql': 'CREATE TABLE a (id int);' });
  t.after(() => set.remove());
  const config = testConfig({ databases: { edited: db.url }, migrationsDir: set.dir });
  const pgconvoy = { client: shared.client, taskQueue: config.temporal.taskQueue };
  const failure = await withWorker(config, async () => {
    await migrate(pgconvoy, { db: 'edited', migrationsDir: set.dir });
    writeFileSync(join(set.dir, 'V1__a.sql'), 'CREATE TABLE a (id bigint);');
    writeFileSync(join(set.dir, 'V2__b.sql'), 'CREATE TABLE b (id int);');
    return failureOf(migrate(pgconvoy, { db: 'edited', migrationsDir: set.dir }));
  });
  assert.equal(failure.type, 'IntegrityCheckFailed');
  maybeRecordHistory('migrate-database-refused', await shared.client.workflow.getHandle('pgconvoy/db/edited').fetchHistory());
  assert.match(failure.message, /version 1 \(V1__a\.sql\) was applied with checksum [0-9a-f]{12} but the file now has [0-9a-f]{12}/);
  const b = await db.query(`SELECT to_regclass('public.b') AS b`);
  assert.equal(b.rows[0]?.b, null, 'nothing ran');
});

test('--group runs the whole set in one applyGroup activity', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const config = testConfig({ databases: { grouped: db.url }, migrationsDir: sampleMigrationsDir });
  const { result, history } = await withWorker(config, async () => {
    const handle = await startMigration({ client: shared.client, taskQueue: config.temporal.taskQueue }, { db: 'grouped', migrationsDir: sampleMigrationsDir, group: true });
    return { result: await handle.result(), history: await handle.fetchHistory() };
  });
  assert.equal(result.status, 'applied');
  assert.deepEqual(result.applied.map((s) => s.version), ['1', '2', '3']);
  assert.deepEqual(stepNames(history), ['planDatabase (inline)', 'acquireLease (inline)', 'holdLease', 'beginRun', 'takeBackup', 'applyGroup', 'verifyRun', 'releaseLease (inline)']);
  maybeRecordHistory('migrate-database-group-with-backup', history);
  const ledger = await db.query<{ n: string }>(`SELECT count(*)::text AS n FROM pgconvoy.history WHERE status = 'applied'`);
  assert.equal(ledger.rows[0]?.n, '3');
});
