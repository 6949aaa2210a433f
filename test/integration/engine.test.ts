import assert from 'node:assert/strict';
import { test as nodeTest, type TestContext } from 'node:test';
import pg from 'pg';
import { withClient } from '../../src/db/connection';
import { AlreadyAppliedDifferentlyError, LockTimeoutError, MigrationFailedError } from '../../src/db/errors';
import { applyGroup, applyMigration } from '../../src/db/execute';
import { ensureLedger, readHistory } from '../../src/db/ledger';
import { createTestDatabase as createOn, type TestDatabase } from '../helpers/database';
import { services } from '../helpers/services';
import { engineContext, prepared } from '../helpers/engine';

async function withLedger<T>(db: TestDatabase, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  return withClient({ alias: 'db', url: db.url }, async (client) => {
    await ensureLedger(client);
    return fn(client);
  });
}

/** Another session on the test database, closed before the database is dropped. */
async function sideSession(db: TestDatabase, t: { after(fn: () => Promise<void>): void }): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: db.url });
  client.on('error', () => undefined); // dropping the database terminates it
  await client.connect();
  t.after(() => client.end().catch(() => undefined));
  return client;
}

async function tables(db: TestDatabase): Promise<string[]> {
  const result = await db.query<{ t: string }>(`SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`);
  return result.rows.map((r) => r.t);
}

/**
 * Every test here runs on the machine's PostgreSQL and again on the harness's
 * PostgreSQL 18: the engine must behave the same on the newest server.
 */
const servers = [
  { label: '', adminUrl: () => services.adminUrl },
  { label: ' [PostgreSQL 18]', adminUrl: () => services.newerAdminUrl },
];

for (const server of servers) {
  const test = (name: string, fn: (t: TestContext) => Promise<void>): void => void nodeTest(`${name}${server.label}`, fn);
  const createTestDatabase = () => createOn({ adminUrl: server.adminUrl() });

  test('the ledger is created on first use, also by several runners at once', async (t) => {
    const db = await createTestDatabase();
    t.after(() => db.drop());
    const target = { alias: 'db', url: db.url };
    await Promise.all(Array.from({ length: 6 }, () => withClient(target, (client) => ensureLedger(client))));
    const result = await db.query<{ t: string }>(`SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'pgconvoy' ORDER BY 1`);
    assert.deepEqual(result.rows.map((r) => r.t), ['history', 'hook_runs', 'lease', 'meta']);
  });

  test('DO blocks and functions with semicolons inside run as single statements', async (t) => {
    const db = await createTestDatabase();
    t.after(() => db.drop());
    const [m] = await prepared({
      'V1__plpgsql.sql': `
  CREATE TABLE audit (n int);
  DO $$
  BEGIN
    INSERT INTO audit VALUES (1);
    INSERT INTO audit VALUES (2);
  END
  $$;
  CREATE FUNCTION bump() RETURNS int LANGUAGE plpgsql AS $body$
  DECLARE x int;
  BEGIN
    SELECT max(n) + 1 INTO x FROM audit; -- a comment; with a semicolon
    INSERT INTO audit VALUES (x);
    RETURN x;
  END;
  $body$;
  SELECT bump();
  `,
    });
    assert.ok(m);
    assert.deepEqual(m.forward.script.statements.map((s) => [s.kind, s.line]), [
      ['CreateStmt', 2],
      ['DoStmt', 3],
      ['CreateFunctionStmt', 9],
      ['SelectStmt', 17],
    ]);
    const result = await withLedger(db, (client) => applyMigration(client, m, engineContext()));
    assert.equal(result.status, 'applied');
    const rows = await db.query<{ n: number }>('SELECT n FROM audit ORDER BY n');
    assert.deepEqual(rows.rows.map((r) => r.n), [1, 2, 3]);
  });

  test('applying is idempotent: a version already applied with the same checksum is skipped by another run, reported applied to its own run, a changed one refused', async (t) => {
    const db = await createTestDatabase();
    t.after(() => db.drop());
    const [m] = await prepared({ 'V1__counter.sql': 'CREATE TABLE counter (n int); INSERT INTO counter VALUES (1);' });
    const [edited] = await prepared({ 'V1__counter.sql': 'CREATE TABLE counter (n bigint);' });
    assert.ok(m && edited);
    await withLedger(db, async (client) => {
      assert.equal((await applyMigration(client, m, engineContext())).status, 'applied');
      // The same run again (an attempt that committed and died before reporting): applied, as the ledger says.
      const again = await applyMigration(client, m, engineContext());
      assert.equal(again.status, 'applied');
      assert.deepEqual(await applyMigration(client, m, engineContext({}, 'another-run')), { status: 'skipped', version: '1', reason: 'already-applied' });
      await assert.rejects(applyMigration(client, edited, engineContext()), AlreadyAppliedDifferentlyError);
    });
    assert.deepEqual((await db.query('SELECT n FROM counter')).rows, [{ n: 1 }], 'the migration ran once');
  });

  test('two runners applying the same version at once commit it exactly once and record no failure', async (t) => {
    const db = await createTestDatabase();
    t.after(() => db.drop());
    const [m] = await prepared({ 'V1__log.sql': 'CREATE TABLE log (n int); INSERT INTO log VALUES (1); SELECT pg_sleep(0.2);' });
    assert.ok(m);
    await withClient({ alias: 'db', url: db.url }, (client) => ensureLedger(client));
    const results = await Promise.allSettled([1, 2].map((n) => withClient({ alias: 'db', url: db.url }, (client) => applyMigration(client, m, engineContext({}, `runner-${n}`)))));
    const outcomes = results.map((r) => (r.status === 'fulfilled' ? r.value.status : `rejected: ${String(r.reason)}`)).sort();
    assert.deepEqual(outcomes, ['applied', 'skipped']);
    const ledger = await db.query<{ status: string }>('SELECT status FROM pgconvoy.history');
    assert.deepEqual(ledger.rows, [{ status: 'applied' }]);
  });

  test('a failing statement in the middle of a transactional file leaves nothing of it, and the ledger says where', async (t) => {
    const db = await createTestDatabase();
    t.after(() => db.drop());
    const [m] = await prepared({
      'V7__half.sql': 'CREATE TABLE first_half (id int);\nINSERT INTO first_half VALUES (1);\nINSERT INTO first_half VALUES (\'not a number\');\nCREATE TABLE second_half (id int);\n',
    });
    assert.ok(m);
    await withLedger(db, async (client) => {
      await assert.rejects(applyMigration(client, m, engineContext()), (error: unknown) => {
        assert.ok(error instanceof MigrationFailedError);
        assert.equal(error.retryable, false);
        assert.equal(
          error.message,
          'V7__half.sql (version 7) failed at statement 3 of 4, line 3, column 32: SQLSTATE 22P02: invalid input syntax for type integer: "not a number"',
        );
        assert.deepEqual([error.point.statement, error.point.line, error.point.mode, error.point.statementsDone], [3, 3, 'transaction', 0]);
        return true;
      });
    });
    assert.deepEqual(await tables(db), []);
    const ledger = await db.query('SELECT version::text, status, error_sqlstate, error_statement, statements_done FROM pgconvoy.history');
    assert.deepEqual(ledger.rows, [{ version: '7', status: 'failed', error_sqlstate: '22P02', error_statement: 3, statements_done: 0 }]);
  });

  test('a concurrent index runs outside a transaction when the file says so, with progress in the ledger', async (t) => {
    const db = await createTestDatabase();
    t.after(() => db.drop());
    await db.query('CREATE TABLE items (id int, sku text)');
    const [m] = await prepared({
      'V2__indexes.sql': '-- pgconvoy:no-transaction\nCREATE INDEX CONCURRENTLY items_id ON items (id);\nCREATE INDEX CONCURRENTLY items_sku ON items (sku);\n',
    });
    assert.ok(m);
    assert.equal(m.forward.script.mode, 'no-transaction');
    const ctx = engineContext();
    const result = await withLedger(db, (client) => applyMigration(client, m, ctx));
    assert.equal(result.status, 'applied');
    const indexes = await db.query<{ i: string; valid: boolean }>(
      `SELECT c.relname AS i, x.indisvalid AS valid FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid WHERE x.indrelid = 'items'::regclass ORDER BY 1`,
    );
    assert.deepEqual(indexes.rows, [{ i: 'items_id', valid: true }, { i: 'items_sku', valid: true }]);
    const ledger = await db.query('SELECT status, statements_done, statements_total FROM pgconvoy.history');
    assert.deepEqual(ledger.rows, [{ status: 'applied', statements_done: 2, statements_total: 2 }]);
    assert.deepEqual(ctx.events.filter((e) => e.event === 'statement.done').map((e) => (e.event === 'statement.done' ? e.statement : 0)), [1, 2]);
  });

  test('a failed concurrent index build leaves an invalid index that is dropped before the retry, which then succeeds', async (t) => {
    const db = await createTestDatabase();
    t.after(() => db.drop());
    await db.query(`CREATE TABLE accounts (id int, email text); INSERT INTO accounts VALUES (1, 'a@x'), (2, 'a@x')`);
    const [m] = await prepared({
      'V3__unique_email.sql': '-- pgconvoy:no-transaction\nCREATE TABLE marker (id int);\nCREATE UNIQUE INDEX CONCURRENTLY accounts_email ON accounts (email);\n',
    });
    assert.ok(m);
    await withLedger(db, async (client) => {
      await assert.rejects(applyMigration(client, m, engineContext()), (error: unknown) => {
        assert.ok(error instanceof MigrationFailedError);
        assert.match(error.message, /^V3__unique_email\.sql \(version 3\) failed at statement 2 of 2, line 3, column 1: SQLSTATE 23505: could not create unique index "accounts_email"/);
        assert.equal(error.point.statementsDone, 1);
        return true;
      });
    });
    const invalid = await db.query(`SELECT indisvalid FROM pg_index WHERE indexrelid = 'accounts_email'::regclass`);
    assert.deepEqual(invalid.rows, [{ indisvalid: false }], 'PostgreSQL left an invalid index behind');
    const failed = await db.query('SELECT status, statements_done, error_statement FROM pgconvoy.history');
    assert.deepEqual(failed.rows, [{ status: 'failed', statements_done: 1, error_statement: 2 }]);

    await db.query(`DELETE FROM accounts WHERE id = 2`);
    const ctx = engineContext();
    const result = await withLedger(db, (client) => applyMigration(client, m, ctx));
    assert.equal(result.status, 'applied');
    assert.deepEqual(
      ctx.events.map((e) => e.event),
      ['migration.resumed', 'index.invalid_dropped', 'statement.done'],
      'resumed at statement 2 (statement 1 is not re-run), dropped the invalid index, built it',
    );
    const valid = await db.query(`SELECT indisvalid FROM pg_index WHERE indexrelid = 'accounts_email'::regclass`);
    assert.deepEqual(valid.rows, [{ indisvalid: true }]);
    const ledger = await db.query('SELECT status, statements_done FROM pgconvoy.history ORDER BY id');
    assert.deepEqual(ledger.rows, [{ status: 'failed', statements_done: 1 }, { status: 'applied', statements_done: 2 }]);
  });

  test('a lock held longer than lock_timeout: the migration retries, never blocks others longer than lock_timeout, and succeeds once released', async (t) => {
    const db = await createTestDatabase();
    t.after(() => db.drop());
    await db.query('CREATE TABLE busy (id int); INSERT INTO busy VALUES (1)');
    const [m] = await prepared({ 'V4__add_column.sql': '-- pgconvoy:lock-timeout 300ms\nALTER TABLE busy ADD COLUMN note text;\n' });
    assert.ok(m);

    // Another session holds a conflicting lock (a long transaction that read the table).
    const holder = await sideSession(db, t);
    await holder.query('BEGIN; SELECT * FROM busy;');

    const ctx = engineContext({ lockTimeoutInitialMs: 100, lockRetryPauseMs: 200, lockRetryMaxPauseMs: 400, lockRetryMaxAttempts: 20 });
    const migration = withLedger(db, (client) => applyMigration(client, m, ctx));

    // Meanwhile a third session keeps reading the table; each read may queue
    // behind the migration's pending lock, but never longer than its lock_timeout.
    const reader = await sideSession(db, t);
    const readMs: number[] = [];
    const deadline = Date.now() + 2_500;
    while (Date.now() < deadline) {
      const start = performance.now();
      await reader.query('SELECT count(*) FROM busy');
      readMs.push(performance.now() - start);
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(ctx.events.some((e) => e.event === 'migration.lock_timeout'), 'the migration timed out waiting and retried');
    await holder.query('COMMIT');
    const result = await migration;
    assert.equal(result.status, 'applied');
    assert.ok(Math.max(...readMs) < 300 + 150, `reads were blocked at most lock_timeout (300 ms) plus slack; longest ${Math.round(Math.max(...readMs))} ms`);
    const timeouts = ctx.events.filter((e) => e.event === 'migration.lock_timeout');
    assert.deepEqual(
      timeouts.slice(0, 3).map((e) => (e.event === 'migration.lock_timeout' ? e.lockTimeoutMs : 0)),
      [100, 200, 300],
      'short timeouts first, growing to the file\'s lock-timeout',
    );
    const columns = await db.query(`SELECT column_name FROM information_schema.columns WHERE table_name = 'busy' ORDER BY ordinal_position`);
    assert.deepEqual(columns.rows, [{ column_name: 'id' }, { column_name: 'note' }]);
  });

  test('a lock never released: the attempts are bounded and the failure says so', async (t) => {
    const db = await createTestDatabase();
    t.after(() => db.drop());
    await db.query('CREATE TABLE stuck (id int)');
    const [m] = await prepared({ 'V5__stuck.sql': 'ALTER TABLE stuck ADD COLUMN x int;' });
    assert.ok(m);
    const holder = await sideSession(db, t);
    await holder.query('BEGIN; LOCK TABLE stuck IN ACCESS SHARE MODE;');
    const ctx = engineContext({ lockTimeoutInitialMs: 50, lockTimeoutMs: 100, lockRetryMaxAttempts: 3, lockRetryPauseMs: 10 });
    await withLedger(db, async (client) => {
      await assert.rejects(applyMigration(client, m, ctx), (error: unknown) => {
        assert.ok(error instanceof LockTimeoutError);
        assert.equal(error.retryable, false, 'the schedule was the retry: the activity must not run it again');
        assert.match(error.message, /^V5__stuck\.sql \(version 5\) statement 1 at line 1: could not get its lock in 3 attempts \(longest wait 100 ms, SQLSTATE 55P03\)/);
        return true;
      });
    });
    assert.equal(ctx.events.length, 2, 'two pauses between three attempts');
    const ledger = await db.query('SELECT status, error_sqlstate FROM pgconvoy.history');
    assert.deepEqual(ledger.rows, [{ status: 'failed', error_sqlstate: '55P03' }]);
  });

  test('--group applies all pending migrations in one transaction: a failure in the last leaves none', async (t) => {
    const db = await createTestDatabase();
    t.after(() => db.drop());
    const ms = await prepared({ 'V1__a.sql': 'CREATE TABLE a (id int);', 'V2__b.sql': 'CREATE TABLE b (id int);', 'V3__bad.sql': 'CREATE TABLE a (id int);' });
    await withLedger(db, async (client) => {
      await assert.rejects(applyGroup(client, ms, engineContext()), (error: unknown) => {
        assert.ok(error instanceof MigrationFailedError);
        assert.equal(error.point.mode, 'group');
        assert.match(error.message, /^V3__bad\.sql \(version 3\) failed at statement 1 of 1, line 1, column 1: SQLSTATE 42P07: relation "a" already exists/);
        return true;
      });
    });
    assert.deepEqual(await tables(db), []);
    const ledger = await db.query('SELECT version::text, status FROM pgconvoy.history');
    assert.deepEqual(ledger.rows, [{ version: '3', status: 'failed' }]);

    const good = await prepared({ 'V1__a.sql': 'CREATE TABLE a (id int);', 'V2__b.sql': 'CREATE TABLE b (id int);' });
    const results = await withLedger(db, (client) => applyGroup(client, good, engineContext()));
    assert.deepEqual(results.map((r) => r.status), ['applied', 'applied']);
    assert.deepEqual(await tables(db), ['a', 'b']);
  });

  test('--group refuses a set with a no-transaction file before running anything', async (t) => {
    const db = await createTestDatabase();
    t.after(() => db.drop());
    const ms = await prepared({ 'V1__a.sql': 'CREATE TABLE a (id int);', 'V2__idx.sql': 'CREATE INDEX CONCURRENTLY a_id ON a (id);' });
    await withLedger(db, async (client) => {
      await assert.rejects(applyGroup(client, ms, engineContext()), /cannot apply the pending migrations in one transaction: V2__idx\.sql must run outside a transaction/);
    });
    assert.deepEqual(await tables(db), []);
    assert.deepEqual((await withLedger(db, (client) => readHistory(client))).length, 0);
  });
}
