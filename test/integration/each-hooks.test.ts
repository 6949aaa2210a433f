import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { migrate, revert } from '../../src/client/api';
import { summarizeFailure } from '../../src/client/failure';
import { fingerprint } from '../../src/db/fingerprint';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { writeMigrations } from '../helpers/migrations';
import { sharedTestClient, testConfig, withWorker } from '../helpers/temporal';

const shared = sharedTestClient();

/** A database whose hook_log exists before any migration (so it is in every version's "schema before"), a set, and a worker's config. */
async function setup(t: { after(fn: () => unknown): void }, alias: string, files: Record<string, string>) {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  await db.query('CREATE TABLE hook_log (n serial PRIMARY KEY, what text NOT NULL)');
  const set = writeMigrations(files);
  t.after(() => set.remove());
  const config = testConfig({ databases: { [alias]: db.url }, migrationsDir: set.dir });
  const pgconvoy = { client: shared.client, taskQueue: config.temporal.taskQueue };
  return { db, set, config, pgconvoy };
}

const logs = (what: string) => `INSERT INTO hook_log (what) VALUES ('${what}');`;
const rows = async (db: TestDatabase, sql: string) => (await db.query<Record<string, string>>(sql)).rows;
/** The log, each row with the transaction that wrote it (`xmin`). */
const logged = async (db: TestDatabase) => (await rows(db, 'SELECT what, xmin::text AS tx FROM hook_log ORDER BY n')).map((r) => [r.what!, r.tx!] as const);

test('beforeEachMigrate and afterEachMigrate run in each migration’s transaction, around its statements, with its ledger row; a no-transaction file’s in transactions of their own', async (t) => {
  const { db, set, config, pgconvoy } = await setup(t, 'eachhooks', {
    'V1__accounts.sql': `-- pgconvoy:no-transaction\nCREATE TABLE accounts (id int PRIMARY KEY);\nCREATE INDEX CONCURRENTLY accounts_id_desc ON accounts (id DESC);\n${logs('V1')}`,
    'V2__accounts_note.sql': `ALTER TABLE accounts ADD COLUMN note text;\n${logs('V2')}`,
    'V3__accounts_email.sql': `ALTER TABLE accounts ADD COLUMN email text;\n${logs('V3')}`,
    'hooks/beforeEachMigrate.sql': logs('before'),
    // Changes the catalog where no migration looks, a new table each time: the versions' fingerprints must see it.
    'hooks/afterEachMigrate__b_mark.sql': `${logs('after b')}\nDO $$ BEGIN EXECUTE format('CREATE TABLE hook_made_%s (id int)', (SELECT count(*) FROM hook_log)); END $$;`,
    'hooks/afterEachMigrate__a_log.sql': logs('after a'),
  });
  const result = await withWorker(config, () => migrate(pgconvoy, { db: 'eachhooks', migrationsDir: set.dir }));
  assert.equal(result.status, 'applied');

  const log = await logged(db);
  assert.deepEqual(log.map(([what]) => what), ['1', '2', '3'].flatMap((v) => ['before', `V${v}`, 'after a', 'after b']));
  const history = new Map((await rows(db, `SELECT version::text AS v, xmin::text AS tx FROM pgconvoy.history WHERE status = 'applied'`)).map((r) => [r.v!, r]));
  const v1 = log.slice(0, 4).map(([, tx]) => tx);
  assert.equal(new Set([v1[0], v1[1], v1[2]]).size, 3, 'V1 (no-transaction): its beforeEachMigrate, its statement and its afterEachMigrate each commit on their own');
  assert.equal(v1[2], v1[3], 'both afterEachMigrate files in one transaction');
  for (const [i, v] of ['2', '3'].entries()) {
    const txs = log.slice(4 + i * 4, 8 + i * 4).map(([, tx]) => tx);
    assert.deepEqual(new Set(txs), new Set([history.get(v)!.tx]), `V${v}: its hooks, its statements and its ledger row commit together`);
  }

  const runs = await rows(db, `SELECT event, file, version::text AS v, status, workflow_id, xmin::text AS tx FROM pgconvoy.hook_runs ORDER BY id`);
  assert.deepEqual(
    runs.map((r) => [r.event, r.file, r.v, r.status, r.workflow_id]),
    ['1', '2', '3'].flatMap((v) => [
      ['beforeEachMigrate', 'hooks/beforeEachMigrate.sql', v, 'ok', 'pgconvoy/db/eachhooks'],
      ['afterEachMigrate', 'hooks/afterEachMigrate__a_log.sql', v, 'ok', 'pgconvoy/db/eachhooks'],
      ['afterEachMigrate', 'hooks/afterEachMigrate__b_mark.sql', v, 'ok', 'pgconvoy/db/eachhooks'],
    ]),
  );
  for (const r of runs.filter((r) => r.v !== '1')) assert.equal(r.tx, history.get(r.v!)!.tx, `${r.file} for V${r.v}: its row commits with the migration`);

  // The catalog as the last version's ledger row records it includes what every hook changed.
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  const now = await fingerprint(client).finally(() => client.end());
  assert.deepEqual((await rows(db, `SELECT fingerprint FROM pgconvoy.history WHERE version = 3`)).map((r) => r.fingerprint), [now.sha256]);
});

test('a failing afterEachMigrate rolls its migration back and fails it, named by hook file, version, statement and SQLSTATE; hook_runs keeps the failure', async (t) => {
  const { db, set, config, pgconvoy } = await setup(t, 'eachfail', {
    'V1__accounts.sql': 'CREATE TABLE accounts (id int PRIMARY KEY);',
    'V2__orders.sql': 'CREATE TABLE orders (id int PRIMARY KEY);',
    // Fails once orders exists: in V2's transaction, after its statement.
    'hooks/afterEachMigrate.sql': `${logs('after')}\nSELECT 1 / (to_regclass('public.orders') IS NULL)::int;`,
  });
  const error = await withWorker(config, () => migrate(pgconvoy, { db: 'eachfail', migrationsDir: set.dir, onFailure: 'halt' }).then(() => assert.fail('the run should fail'), (e: unknown) => e));
  const failure = summarizeFailure(error);
  assert.equal(failure.type, 'HookFailed');
  const expected = /^hooks\/afterEachMigrate\.sql \(afterEachMigrate hook of version 2\) failed at statement 2 of 2, line 2, column 1: SQLSTATE 22012: division by zero/;
  assert.match(failure.message, expected);

  assert.deepEqual(await rows(db, `SELECT to_regclass('orders')::text AS t`), [{ t: null }], 'V2 rolled back');
  assert.deepEqual((await rows(db, 'SELECT what FROM hook_log')).map((r) => r.what), ['after'], 'V2’s hooks rolled back with it; V1’s stay');
  const ledger = await rows(db, `SELECT version::text AS v, status, error_sqlstate, error_message, statements_done FROM pgconvoy.history ORDER BY id`);
  assert.deepEqual(ledger.map((r) => [r.v, r.status, r.error_sqlstate]), [['1', 'applied', null], ['2', 'failed', '22012']]);
  assert.match(ledger[1]!.error_message!, expected);
  assert.equal(Number(ledger[1]!.statements_done), 0);
  const runs = await rows(db, `SELECT event, version::text AS v, status, error_message FROM pgconvoy.hook_runs ORDER BY id`);
  assert.deepEqual(runs.map((r) => [r.event, r.v, r.status]), [['afterEachMigrate', '1', 'ok'], ['afterEachMigrate', '2', 'failed']]);
  assert.match(runs[1]!.error_message!, expected);
});

test('a failing beforeEachMigrate fails the migration before its first statement; with --group every version’s hooks run in the one transaction', async (t) => {
  const before = await setup(t, 'eachbefore', {
    'V1__accounts.sql': `CREATE TABLE accounts (id int PRIMARY KEY);\n${logs('V1')}`,
    'hooks/beforeEachMigrate.sql': 'SELECT * FROM no_such_table;',
  });
  const error = await withWorker(before.config, () => migrate(before.pgconvoy, { db: 'eachbefore', migrationsDir: before.set.dir, onFailure: 'halt' }).then(() => assert.fail('the run should fail'), (e: unknown) => e));
  assert.match(summarizeFailure(error).message, /^hooks\/beforeEachMigrate\.sql \(beforeEachMigrate hook of version 1\) failed at statement 1 of 1, line 1, column 15: SQLSTATE 42P01/);
  assert.deepEqual(await rows(before.db, 'SELECT what FROM hook_log'), [], 'V1 did not run');
  assert.deepEqual((await rows(before.db, `SELECT status, error_sqlstate FROM pgconvoy.history`)).map((r) => [r.status, r.error_sqlstate]), [['failed', '42P01']]);

  const group = await setup(t, 'eachgroup', {
    'V1__accounts.sql': `CREATE TABLE accounts (id int PRIMARY KEY);\n${logs('V1')}`,
    'V2__orders.sql': `CREATE TABLE orders (id int PRIMARY KEY);\n${logs('V2')}`,
    'hooks/beforeEachMigrate.sql': logs('before'),
    'hooks/afterEachMigrate.sql': logs('after'),
  });
  assert.equal((await withWorker(group.config, () => migrate(group.pgconvoy, { db: 'eachgroup', migrationsDir: group.set.dir, group: true }))).status, 'applied');
  const log = await logged(group.db);
  assert.deepEqual(log.map(([what]) => what), ['before', 'V1', 'after', 'before', 'V2', 'after']);
  assert.equal(new Set(log.map(([, tx]) => tx)).size, 1, 'one transaction for the group');
  assert.deepEqual((await rows(group.db, `SELECT event, version::text AS v FROM pgconvoy.hook_runs ORDER BY id`)).map((r) => [r.event, r.v]), [
    ['beforeEachMigrate', '1'],
    ['afterEachMigrate', '1'],
    ['beforeEachMigrate', '2'],
    ['afterEachMigrate', '2'],
  ]);
});

test('beforeUndo and afterUndo run around each undo script of a revert, in its transaction, each file a row in hook_runs with the undone version', async (t) => {
  const { db, set, config, pgconvoy } = await setup(t, 'undohooks', {
    'V1__accounts.sql': 'CREATE TABLE accounts (id int PRIMARY KEY);',
    'U1__accounts.sql': `DROP TABLE accounts;\n${logs('U1')}`,
    'V2__orders.sql': 'CREATE TABLE orders (id int PRIMARY KEY);',
    'U2__orders.sql': `DROP TABLE orders;\n${logs('U2')}`,
    'hooks/beforeUndo.sql': logs('before undo'),
    'hooks/afterUndo__log.sql': logs('after undo'),
  });
  await withWorker(config, async () => {
    assert.equal((await migrate(pgconvoy, { db: 'undohooks', migrationsDir: set.dir })).status, 'applied');
    assert.deepEqual(await rows(db, 'SELECT what FROM hook_log'), [], 'undo hooks do not run with migrations');
    const result = await revert(pgconvoy, { db: 'undohooks', migrationsDir: set.dir, mode: 'aggressive' });
    assert.equal(result.status, 'reverted');
  });
  const log = await logged(db);
  assert.deepEqual(log.map(([what]) => what), ['before undo', 'U2', 'after undo', 'before undo', 'U1', 'after undo']);
  const undone = new Map((await rows(db, `SELECT version::text AS v, xmin::text AS tx FROM pgconvoy.history WHERE status = 'undone'`)).map((r) => [r.v!, r.tx!]));
  assert.deepEqual(new Set(log.slice(0, 3).map(([, tx]) => tx)), new Set([undone.get('2')]), 'U2, its hooks and its ledger update commit together');
  assert.deepEqual(new Set(log.slice(3).map(([, tx]) => tx)), new Set([undone.get('1')]));
  const runs = await rows(db, `SELECT event, file, version::text AS v, status, xmin::text AS tx FROM pgconvoy.hook_runs ORDER BY id`);
  assert.deepEqual(runs.map((r) => [r.event, r.file, r.v, r.status]), [
    ['beforeUndo', 'hooks/beforeUndo.sql', '2', 'ok'],
    ['afterUndo', 'hooks/afterUndo__log.sql', '2', 'ok'],
    ['beforeUndo', 'hooks/beforeUndo.sql', '1', 'ok'],
    ['afterUndo', 'hooks/afterUndo__log.sql', '1', 'ok'],
  ]);
  for (const r of runs) assert.equal(r.tx, undone.get(r.v!));
});
