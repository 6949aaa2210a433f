import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ExitCode } from '../../src/client/exit-codes';
import { cliFixture } from '../helpers/cli-fixture';
import { maybeRecordHistory } from '../helpers/histories';
import type { TestDatabase } from '../helpers/database';
import { progressQuery } from '../../src/workflows/messages';
import { testClient, withWorker } from '../helpers/temporal';
import { waitFor } from '../helpers/workers';

/** Three versions with undo scripts; each test varies one file. */
const files = (overrides: Record<string, string | null> = {}) => {
  const base: Record<string, string> = {
    'V1__customers.sql': 'CREATE TABLE customers (id bigint PRIMARY KEY, email text NOT NULL);',
    'U1__customers.sql': 'DROP TABLE customers;',
    'V2__orders.sql': 'CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint REFERENCES customers);',
    'U2__orders.sql': 'DROP TABLE orders;',
    'V3__order_notes.sql': 'ALTER TABLE orders ADD COLUMN note text;\nCREATE INDEX orders_customer ON orders (customer_id);',
    'U3__order_notes.sql': 'DROP INDEX orders_customer;\nALTER TABLE orders DROP COLUMN note;',
  };
  for (const [name, content] of Object.entries(overrides)) {
    if (content === null) delete base[name];
    else base[name] = content;
  }
  return base;
};

const ledger = async (db: TestDatabase) =>
  (await db.query<{ version: string; status: string }>(`SELECT version::text AS version, status FROM pgconvoy.history ORDER BY id`)).rows.map((r) => `V${r.version} ${r.status}`);
const tables = async (db: TestDatabase) =>
  (await db.query<{ t: string }>(`SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`)).rows.map((r) => r.t);

test('undo --steps 2 runs the newest two undo scripts in reverse, marks them undone and proves the schema is the one recorded after V1; up applies them again', async (t) => {
  const { db, config, cli } = await cliFixture(t, files(), 'undo-steps');
  const { client, close } = await testClient();
  t.after(close);
  await withWorker(config, async () => {
    assert.equal((await cli('up', '--db', 'undo-steps')).code, ExitCode.ok);
    const recordedAfterV1 = (await db.query<{ fingerprint: string }>(`SELECT fingerprint FROM pgconvoy.history WHERE version = 1 AND status = 'applied'`)).rows[0]!.fingerprint;
    const undo = await cli('undo', '--db', 'undo-steps', '--steps', '2', '--approval-timeout', '20s', '--json');
    assert.equal(undo.code, ExitCode.ok, undo.stderr);
    const result = JSON.parse(undo.stdout) as { status: string; versionAfter: string; steps: Array<{ version: string; status: string }>; proof: { expected: string; actual: string }; backup: { key?: string } };
    assert.equal(result.status, 'reverted');
    assert.equal(result.versionAfter, '1');
    assert.deepEqual(result.steps.map((s) => [s.version, s.status]), [['3', 'undone'], ['2', 'undone']]);
    assert.equal(result.proof.expected, recordedAfterV1);
    assert.equal(result.proof.actual, recordedAfterV1);
    assert.ok(result.backup.key, 'a verified backup was taken before the first undo');
    assert.deepEqual(await ledger(db), ['V1 applied', 'V2 undone', 'V3 undone']);
    assert.deepEqual(await tables(db), ['customers']);
    maybeRecordHistory('revert-database-reverted', await client.workflow.getHandle('pgconvoy/db/undo-steps').fetchHistory());

    const human = await cli('status', '--db', 'undo-steps');
    assert.match(human.stdout, /1 applied, 2 pending/);
    const again = await cli('up', '--db', 'undo-steps');
    assert.equal(again.code, ExitCode.ok, again.stderr);
    assert.deepEqual(await ledger(db), ['V1 applied', 'V2 undone', 'V3 undone', 'V2 applied', 'V3 applied']);
  });
});

test('undo of every version proves the schema against the one recorded before the first (stored as jsonb, whose keys come back in another order)', async (t) => {
  const { db, config, cli } = await cliFixture(t, files(), 'undo-all');
  await withWorker(config, async () => {
    assert.equal((await cli('up', '--db', 'undo-all')).code, ExitCode.ok);
    const undo = await cli('undo', '--db', 'undo-all', '--steps', '3', '--approval-timeout', '20s', '--json');
    assert.equal(undo.code, ExitCode.ok, undo.stderr);
    const result = JSON.parse(undo.stdout) as { status: string; steps: Array<{ version: string; status: string }>; proof: { expected: string; actual: string } };
    assert.equal(result.status, 'reverted');
    assert.deepEqual(result.steps.map((s) => [s.version, s.status]), [['3', 'undone'], ['2', 'undone'], ['1', 'undone']]);
    assert.equal(result.proof.actual, result.proof.expected);
    assert.deepEqual(await ledger(db), ['V1 undone', 'V2 undone', 'V3 undone']);
    assert.deepEqual(await tables(db), []);
  });
});

test('undo --to 2 undoes only what is above version 2, and says so in words', async (t) => {
  const { db, config, cli } = await cliFixture(t, files(), 'undo-to');
  await withWorker(config, async () => {
    assert.equal((await cli('up', '--db', 'undo-to')).code, ExitCode.ok);
    const dry = await cli('undo', '--db', 'undo-to', '--to', '2', '--mode', 'dry-run');
    assert.equal(dry.code, ExitCode.ok, dry.stderr);
    assert.match(dry.stdout, /dry run: database "undo-to" is at version 3; undoing would take it to version 2, nothing was changed\n {2}not-run +V3 +order notes +U3__order_notes\.sql/);
    assert.deepEqual(await ledger(db), ['V1 applied', 'V2 applied', 'V3 applied']);
    const undo = await cli('undo', '--db', 'undo-to', '--to', '2', '--approval-timeout', '20s');
    assert.equal(undo.code, ExitCode.ok, undo.stderr);
    assert.match(undo.stdout, /1 version undone; database "undo-to" is at version 2; proven: the schema's fingerprint [0-9a-f]{12} is the one the ledger recorded\n$/);
    assert.deepEqual(await ledger(db), ['V1 applied', 'V2 applied', 'V3 undone']);
    const columns = await db.query<{ c: string }>(`SELECT column_name AS c FROM information_schema.columns WHERE table_name = 'orders' ORDER BY 1`);
    assert.deepEqual(columns.rows.map((r) => r.c), ['customer_id', 'id']);
  });
});

test('undo refuses the whole undo before anything runs when a version in range has no undo script', async (t) => {
  const { db, config, cli } = await cliFixture(t, files({ 'U2__orders.sql': null }), 'undo-missing');
  await withWorker(config, async () => {
    assert.equal((await cli('up', '--db', 'undo-missing')).code, ExitCode.ok);
    const undo = await cli('undo', '--db', 'undo-missing', '--steps', '2');
    assert.equal(undo.code, ExitCode.badInput, undo.stderr);
    assert.match(undo.stderr, /\[UndoNotPossible\] refusing to undo on "undo-missing"; nothing ran:\n {2}V2 \(V2__orders\.sql\) has no undo script \(U2__orders\.sql\)/);
    assert.deepEqual(await ledger(db), ['V1 applied', 'V2 applied', 'V3 applied'], 'not even V3, which has one, was undone');
    assert.deepEqual(await tables(db), ['customers', 'orders']);
  });
});

test('a failing undo script, gated by its risk and approved: the backup from before the undo is restored, proven by its fingerprint, and the ledger shows the versions applied again', async (t) => {
  const { db, config, cli } = await cliFixture(t, files({ 'U2__orders.sql': 'DROP TABLE orders_typo;' }), 'undo-fails');
  const { client, close } = await testClient();
  t.after(close);
  await withWorker(config, async () => {
    assert.equal((await cli('up', '--db', 'undo-fails')).code, ExitCode.ok);
    await db.query(`INSERT INTO customers VALUES (1, 'a@example.com'); INSERT INTO orders (id, customer_id, note) VALUES (10, 1, 'kept')`);
    // Dropping a table the set did not create is high risk: in the default mode the undo waits for an approval, as `up` would.
    const running = cli('undo', '--db', 'undo-fails', '--steps', '2', '--approval-timeout', '2min');
    const waiting = await waitFor('the undo to wait for approval', async () => {
      const progress = await client.workflow.getHandle('pgconvoy/db/undo-fails').query(progressQuery).catch(() => undefined);
      return progress?.phase === 'awaiting-approval' ? progress : undefined;
    });
    assert.match(waiting.approval.reason ?? '', /V2 \(orders\) is high risk/);
    assert.equal((await cli('approve', '--db', 'undo-fails', '--by', 'dba')).code, ExitCode.ok);
    const undo = await running;
    assert.equal(undo.code, ExitCode.rolledBack, undo.stderr);
    assert.match(undo.stderr, /\[UndoFailed\] undo U2__orders\.sql \(version 2\) failed at statement 1, line 1: SQLSTATE 42P01: table "orders_typo" does not exist/);
    assert.match(undo.stderr, /compensated: restored from the verified backup \S+; the schema matches its fingerprint from before the undo/);
    assert.deepEqual(await ledger(db), ['V1 applied', 'V2 applied', 'V3 applied'], 'V3 was undone, then put back with the backup');
    const rows = await db.query<{ note: string }>(`SELECT note FROM orders WHERE id = 10`);
    assert.equal(rows.rows[0]?.note, 'kept', 'the column U3 dropped is back, with its data');
  });
});

test('an undo script that does not restore the schema recorded before its version is rolled back and reported with the difference', async (t) => {
  const { db, config, cli } = await cliFixture(t, files({ 'U3__order_notes.sql': 'DROP INDEX orders_customer;' }), 'undo-differs');
  await withWorker(config, async () => {
    assert.equal((await cli('up', '--db', 'undo-differs')).code, ExitCode.ok);
    const undo = await cli('undo', '--db', 'undo-differs', '--steps', '1', '--approval-timeout', '20s');
    assert.equal(undo.code, ExitCode.rolledBack, undo.stderr);
    assert.match(undo.stderr, /\[UndoLeftDifference\] undo U3__order_notes\.sql \(version 3\) left the schema different from before version 3; it was rolled back:\n.*note/);
    assert.deepEqual(await ledger(db), ['V1 applied', 'V2 applied', 'V3 applied']);
    const index = await db.query(`SELECT 1 FROM pg_indexes WHERE indexname = 'orders_customer'`);
    assert.equal(index.rowCount, 1, 'the undo was rolled back: the index it dropped is there');
  });
});
