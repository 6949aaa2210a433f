import assert from 'node:assert/strict';
import { test } from 'node:test';
import { migrate } from '../../src/client/api';
import { summarizeFailure } from '../../src/client/failure';
import { ExitCode, exitCodeForFailure } from '../../src/client/exit-codes';
import { withClient } from '../../src/db/connection';
import { fingerprint } from '../../src/db/fingerprint';
import type { FailurePolicy } from '../../src/contracts';
import { adminQuery, createTestDatabase, type TestDatabase } from '../helpers/database';
import { maybeRecordHistory } from '../helpers/histories';
import { writeMigrations } from '../helpers/migrations';
import { sharedTestClient, testConfig, withWorker } from '../helpers/temporal';

const shared = sharedTestClient();

async function runFailing(
  t: { after(fn: () => unknown): void },
  alias: string,
  files: Record<string, string>,
  onFailure: FailurePolicy,
  setup?: (db: TestDatabase) => Promise<void>,
  scope: 'database' | 'touched-tables' = 'database',
) {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  await setup?.(db);
  const set = writeMigrations(files);
  t.after(() => set.remove());
  const before = await withClient({ alias, url: db.url }, (c) => fingerprint(c));
  const base = testConfig({ databases: { [alias]: db.url }, migrationsDir: set.dir });
  const config = { ...base, backup: { ...base.backup, scope } };
  const failure = await withWorker(config, () =>
    migrate({ client: shared.client, taskQueue: config.temporal.taskQueue }, { db: alias, migrationsDir: set.dir, onFailure }).then(
      () => assert.fail('the run should fail'),
      summarizeFailure,
    ),
  );
  const after = await withClient({ alias, url: db.url }, (c) => fingerprint(c));
  const ledger = (await db.query<{ version: string; status: string }>('SELECT version::text, status FROM pgconvoy.history ORDER BY id')).rows;
  const history = await shared.client.workflow.getHandle(`pgconvoy/db/${alias}`).fetchHistory();
  return { db, failure, before, after, ledger, history };
}

test('restore: a failing migration after a destructive one brings back every row of the dropped column, and the schema matches its fingerprint', async (t) => {
  const { db, failure, before, after, ledger, history } = await runFailing(
    t,
    'restored',
    { 'V1__drop_email.sql': '-- pgconvoy:allow drop-column the application stopped reading it\nALTER TABLE customers DROP COLUMN email;', 'V2__boom.sql': 'CREATE TABLE audit (id int);\nSELECT * FROM nowhere;' },
    'restore',
    (d) => d.query(`CREATE TABLE customers (id int PRIMARY KEY, email text); INSERT INTO customers SELECT g, 'c' || g || '@x' FROM generate_series(1, 5000) g;`).then(() => undefined),
  );
  assert.equal(failure.type, 'MigrationFailed');
  assert.match(failure.message, /^V2__boom\.sql \(version 2\) failed at statement 2 of 2, line 2, column 15: SQLSTATE 42P01: relation "nowhere" does not exist\ncompensated: restored from the verified backup restored\/\S+\.dump; the schema matches its fingerprint from before the run$/);
  assert.equal(exitCodeForFailure(failure.type, failure.details), ExitCode.rolledBack);
  assert.equal(after.sha256, before.sha256);
  assert.deepEqual((await db.query(`SELECT count(email)::int AS n FROM customers`)).rows, [{ n: 5000 }], 'every row of the dropped column is back');
  assert.deepEqual(ledger, [{ version: '1', status: 'rolled_back' }, { version: '2', status: 'failed' }]);
  maybeRecordHistory('migrate-database-compensated-restore', history);
});

test('undo: when every applied step has an undo script they run in reverse instead of a restore', async (t) => {
  const { db, failure, before, after, ledger } = await runFailing(
    t,
    'undone',
    {
      'V1__a.sql': 'CREATE TABLE a (id int);',
      'U1__a.sql': 'DROP TABLE a;',
      'V2__b.sql': 'CREATE TABLE b (id int);\nCREATE INDEX b_id ON b (id);',
      'U2__b.sql': 'DROP TABLE b;',
      'V3__boom.sql': 'SELECT 1/0;',
    },
    'undo',
    (d) => d.query('CREATE TABLE keep_me (id int); INSERT INTO keep_me VALUES (1);').then(() => undefined),
  );
  assert.match(failure.message, /\ncompensated: undo scripts of V1, V2 ran in reverse; the schema matches its fingerprint from before the run$/);
  assert.equal(after.sha256, before.sha256);
  assert.deepEqual((await db.query('SELECT id FROM keep_me')).rows, [{ id: 1 }]);
  assert.deepEqual(ledger, [
    { version: '1', status: 'rolled_back' },
    { version: '2', status: 'rolled_back' },
    { version: '3', status: 'failed' },
  ]);
});

test('halt: the database is left as the ledger says, with a precise failure', async (t) => {
  const { failure, before, after, ledger } = await runFailing(t, 'halted', { 'V1__a.sql': 'CREATE TABLE a (id int);', 'V2__boom.sql': 'SELECT 1/0;' }, 'halt');
  assert.equal(failure.message, 'V2__boom.sql (version 2) failed at statement 1 of 1, line 1, column 1: SQLSTATE 22012: division by zero');
  assert.notEqual(after.sha256, before.sha256, 'V1 stays applied');
  assert.deepEqual(ledger, [{ version: '1', status: 'applied' }, { version: '2', status: 'failed' }]);
});

test('a failing user check is a failed migration: the run is compensated', async (t) => {
  const { db, failure, before, after, ledger } = await runFailing(
    t,
    'checked',
    {
      'V1__orders.sql': 'CREATE TABLE orders (id int, customer_id int);\nINSERT INTO orders VALUES (1, 42);',
      'checks/no_orphans.sql': 'SELECT o.id, o.customer_id FROM orders o WHERE o.customer_id NOT IN (SELECT id FROM customers)',
    },
    'restore',
    (d) => d.query('CREATE TABLE customers (id int PRIMARY KEY); INSERT INTO customers VALUES (1);').then(() => undefined),
  );
  assert.equal(failure.type, 'VerificationFailed');
  assert.match(failure.message, /^verification of "checked" failed:\n {2}check checks\/no_orphans\.sql returned 1 row \(it must return none\): \{"id":1,"customer_id":42\}\ncompensated: restored/);
  assert.equal(after.sha256, before.sha256);
  assert.equal((await db.query(`SELECT to_regclass('public.orders') AS t`)).rows[0]?.t, null);
  assert.deepEqual(ledger, [{ version: '1', status: 'rolled_back' }]);
});

test('an undo script that fails: compensation falls back to the verified backup, and says so', async (t) => {
  const { failure, before, after, ledger } = await runFailing(
    t,
    'doubly',
    { 'V1__a.sql': 'CREATE TABLE a (id int);', 'U1__a.sql': 'DROP TABLE not_a;', 'V2__boom.sql': 'SELECT 1/0;' },
    'undo',
  );
  assert.equal(failure.type, 'MigrationFailed');
  assert.match(
    failure.message,
    /^V2__boom\.sql \(version 2\) failed at statement 1 of 1, line 1, column 1: SQLSTATE 22012: division by zero\ncompensated: the undo failed \(undo U1__a\.sql \(version 1\) failed at statement 1, line 1: SQLSTATE 42P01: table "not_a" does not exist\); restored from the verified backup doubly\/\S+\.dump instead; the schema matches its fingerprint from before the run$/,
  );
  assert.equal((failure.details as { compensated: string }).compensated, 'undo-then-restore');
  assert.equal(exitCodeForFailure(failure.type, failure.details), ExitCode.rolledBack);
  assert.equal(after.sha256, before.sha256);
  assert.deepEqual(ledger, [{ version: '1', status: 'rolled_back' }, { version: '2', status: 'failed' }]);
});

test('an undo script that leaves the schema different: the version and the difference are named, and the backup puts it right', async (t) => {
  const { failure, before, after, ledger } = await runFailing(
    t,
    'leftover',
    {
      'V1__a.sql': 'CREATE TABLE a (id int);',
      'U1__a.sql': 'DROP TABLE a;',
      'V2__b.sql': "CREATE TABLE b (id int);\nCREATE TYPE mood AS ENUM ('ok', 'sad');",
      'U2__b.sql': 'DROP TABLE b;',
      'V3__boom.sql': 'SELECT 1/0;',
    },
    'undo',
  );
  assert.equal(failure.type, 'MigrationFailed');
  assert.match(
    failure.message,
    /\ncompensated: the undo failed \(undo U2__b\.sql \(version 2\) left the schema different from before version 2; it was rolled back:\n {2}types: \+ public\.mood e ok,sad\); restored from the verified backup leftover\/\S+\.dump instead; the schema matches its fingerprint from before the run$/,
  );
  assert.equal(after.sha256, before.sha256);
  assert.deepEqual(ledger, [
    { version: '1', status: 'rolled_back' },
    { version: '2', status: 'rolled_back' },
    { version: '3', status: 'failed' },
  ]);
});

test('undo of a no-transaction migration on a schema with serial and enum columns: the proof compares like with like, so the undo is accepted', async (t) => {
  const { failure, before, after, ledger } = await runFailing(
    t,
    'concurrent',
    {
      'V1__idx.sql': 'CREATE INDEX CONCURRENTLY orders_state ON orders (state);',
      'U1__idx.sql': 'DROP INDEX CONCURRENTLY orders_state;',
      'V2__boom.sql': 'SELECT 1/0;',
    },
    'undo',
    (d) => d.query("CREATE TYPE order_state AS ENUM ('new', 'paid'); CREATE TABLE orders (id serial PRIMARY KEY, state order_state NOT NULL DEFAULT 'new');").then(() => undefined),
  );
  assert.match(failure.message, /\ncompensated: undo scripts of V1 ran in reverse; the schema matches its fingerprint from before the run$/);
  assert.equal((failure.details as { compensated: string }).compensated, 'undo');
  assert.equal(after.sha256, before.sha256);
  assert.deepEqual(ledger, [{ version: '1', status: 'rolled_back' }, { version: '2', status: 'failed' }]);
});

test('session state a migration sets (SET ROLE, search_path, default_transaction_read_only) leaks neither into its ledger row nor into the next migration', async (t) => {
  const role = `pgconvoy_test_lowpriv_${process.pid}`;
  await adminQuery(`DROP ROLE IF EXISTS ${role}; CREATE ROLE ${role} NOLOGIN`);
  t.after(() => adminQuery(`DROP ROLE IF EXISTS ${role}`));
  const files = {
    'V1__settings.sql': `SET ROLE ${role};\nSET search_path = nowhere;\nSET default_transaction_read_only = on;\nSELECT 1;`,
    'V2__next.sql': 'CREATE TABLE after_settings (id int);',
    'V3__steps.sql': `-- pgconvoy:no-transaction\nSET ROLE ${role};\nSET default_transaction_read_only = on;\nSELECT 1;`,
    'V4__last.sql': 'CREATE TABLE last_one (id int);',
  };
  for (const group of [false, true]) {
    const db = await createTestDatabase();
    t.after(() => db.drop());
    const set = writeMigrations(group ? { 'V1__settings.sql': files['V1__settings.sql'], 'V2__next.sql': files['V2__next.sql'] } : files);
    t.after(() => set.remove());
    const config = testConfig({ databases: { settings: db.url }, migrationsDir: set.dir });
    const result = await withWorker(config, () => migrate({ client: shared.client, taskQueue: config.temporal.taskQueue }, { db: 'settings', migrationsDir: set.dir, ...(group ? { group: true } : {}) }));
    assert.equal(result.status, 'applied', `group: ${group}`);
    assert.equal((await db.query(`SELECT to_regclass('public.after_settings') IS NOT NULL AS t`)).rows[0]?.t, true, 'V2 ran in public, as the connecting user');
    const rows = (await db.query<{ version: string; status: string; installed_by: string }>('SELECT version::text, status, installed_by FROM pgconvoy.history ORDER BY id')).rows;
    assert.ok(rows.length >= 2 && rows.every((r) => r.status === 'applied' && r.installed_by === 'postgres'), JSON.stringify(rows));
  }
});

test('touched-tables backups: only the tables the run locks are dumped, and a restore puts them back', async (t) => {
  const { db, failure, before, after, ledger } = await runFailing(
    t,
    'touched',
    { 'V1__drop_email.sql': '-- pgconvoy:allow drop-column the application stopped reading it\nALTER TABLE customers DROP COLUMN email;', 'V2__boom.sql': 'SELECT 1/0;' },
    'restore',
    (d) =>
      d
        .query(`CREATE TABLE customers (id int PRIMARY KEY, email text); INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 1000) g;
          CREATE TABLE unrelated (id int); INSERT INTO unrelated SELECT generate_series(1, 10);`)
        .then(() => undefined),
    'touched-tables',
  );
  assert.match(failure.message, /\ncompensated: restored from the verified backup touched\/\S+\.dump/);
  assert.equal(after.sha256, before.sha256);
  assert.deepEqual((await db.query('SELECT count(email)::int AS n FROM customers')).rows, [{ n: 1000 }]);
  assert.deepEqual((await db.query('SELECT count(*)::int AS n FROM unrelated')).rows, [{ n: 10 }], 'tables the run did not touch were left alone');
  assert.deepEqual(ledger, [{ version: '1', status: 'rolled_back' }, { version: '2', status: 'failed' }]);
  const details = failure.details as { backupKey: string };
  const { listBackups } = await import('../../src/backup/backup');
  const { FilesystemStore } = await import('../../src/backup/filesystem-store');
  const manifest = (await listBackups(new FilesystemStore(testConfig({ databases: {}, migrationsDir: '' }).backup.store), 'touched')).find((m) => m.key === details.backupKey);
  assert.deepEqual(manifest?.tables, ['customers']);
});

test('--group records the catalog fingerprint after each version, like one migration at a time', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const set = writeMigrations({ 'V1__a.sql': 'CREATE TABLE a (id int);', 'V2__b.sql': 'CREATE TABLE b (id int);', 'V3__c.sql': 'CREATE TABLE c (id int);' });
  t.after(() => set.remove());
  const config = testConfig({ databases: { grouped: db.url }, migrationsDir: set.dir });
  const result = await withWorker(config, () => migrate({ client: shared.client, taskQueue: config.temporal.taskQueue }, { db: 'grouped', migrationsDir: set.dir, group: true }));
  assert.equal(result.status, 'applied');
  const rows = (await db.query<{ version: string; fingerprint: string | null }>('SELECT version::text, fingerprint FROM pgconvoy.history ORDER BY id')).rows;
  assert.equal(rows.length, 3);
  assert.ok(rows.every((r) => r.fingerprint !== null), JSON.stringify(rows));
  assert.equal(new Set(rows.map((r) => r.fingerprint)).size, 3, 'each version has the fingerprint of the schema it left');
  assert.equal(rows[2]!.fingerprint, (await withClient({ alias: 'grouped', url: db.url }, (c) => fingerprint(c))).sha256);
});
