import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildMigrationSet } from '../../src/core/migration-set';
import { AlreadyAppliedDifferentlyError, applyMigration } from '../../src/db/apply';
import { withClient } from '../../src/db/connection';
import { ensureLedger, readHistory } from '../../src/db/ledger';
import { createTestDatabase } from '../helpers/database';

const migrationsOf = (files: Record<string, string>) =>
  buildMigrationSet('m', Object.entries(files).map(([name, content]) => ({ name, content: Buffer.from(content) }))).migrations;

test('the ledger is created on first use, also by several runners at once', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const target = { alias: 'db', url: db.url };
  await Promise.all(Array.from({ length: 6 }, () => withClient(target, (client) => ensureLedger(client))));
  const tables = await db.query<{ t: string }>(
    `SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'pgconvoy' ORDER BY 1`,
  );
  assert.deepEqual(tables.rows.map((r) => r.t), ['history', 'meta']);
  await withClient(target, (client) => ensureLedger(client));
  const steps = await db.query<{ value: string }>(`SELECT value FROM pgconvoy.meta WHERE key = 'ledger_steps'`);
  assert.equal(steps.rows[0]?.value, '1');
});

test('applying is idempotent: a version already applied with the same checksum is skipped', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const [first] = migrationsOf({ 'V1__counter.sql': 'CREATE TABLE counter (n int); INSERT INTO counter VALUES (1);' });
  assert.ok(first);
  await withClient({ alias: 'db', url: db.url }, async (client) => {
    await ensureLedger(client);
    const applied = await applyMigration(client, first, { workflowId: 'w', runId: 'r' });
    assert.equal(applied.status, 'applied');
    const again = await applyMigration(client, first, { workflowId: 'w', runId: 'r2' });
    assert.deepEqual(again, { status: 'skipped', version: '1', reason: 'already-applied' });
    const history = await readHistory(client);
    assert.deepEqual(history.map((h) => [h.version, h.status, h.workflowId]), [['1', 'applied', 'w']]);
  });
  const rows = await db.query<{ n: number }>('SELECT n FROM counter');
  assert.deepEqual(rows.rows, [{ n: 1 }], 'the migration ran once');
});

test('an applied version whose file changed is refused, not re-run', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const [original] = migrationsOf({ 'V1__t.sql': 'CREATE TABLE t (id int);' });
  const [edited] = migrationsOf({ 'V1__t.sql': 'CREATE TABLE t (id bigint);' });
  assert.ok(original && edited);
  await withClient({ alias: 'db', url: db.url }, async (client) => {
    await ensureLedger(client);
    await applyMigration(client, original, {});
    await assert.rejects(applyMigration(client, edited, {}), (error: unknown) => {
      assert.ok(error instanceof AlreadyAppliedDifferentlyError);
      assert.match(error.message, /^V1__t\.sql \(version 1\) is already applied with checksum [0-9a-f]{12}, but the file now has [0-9a-f]{12}$/);
      return true;
    });
  });
});

test('an empty file is a no-op migration that is still recorded', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const [empty] = migrationsOf({ 'V1__placeholder.sql': '' });
  assert.ok(empty);
  await withClient({ alias: 'db', url: db.url }, async (client) => {
    await ensureLedger(client);
    assert.equal((await applyMigration(client, empty, {})).status, 'applied');
    assert.deepEqual((await readHistory(client)).map((h) => [h.version, h.status]), [['1', 'applied']]);
  });
});

test('two runners applying the same version at once commit it exactly once', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const [migration] = migrationsOf({ 'V1__log.sql': 'CREATE TABLE IF NOT EXISTS log (n int); INSERT INTO log VALUES (1); SELECT pg_sleep(0.2);' });
  assert.ok(migration);
  await withClient({ alias: 'db', url: db.url }, (client) => ensureLedger(client));
  const results = await Promise.allSettled(
    [1, 2].map(() => withClient({ alias: 'db', url: db.url }, (client) => applyMigration(client, migration, {}))),
  );
  const outcomes = results.map((r) => (r.status === 'fulfilled' ? r.value.status : `rejected: ${String(r.reason)}`)).sort();
  assert.deepEqual(outcomes, ['applied', 'skipped'], 'one runner applied it, the other waited and skipped it');
  const rows = await db.query<{ n: string }>('SELECT count(*)::text AS n FROM log');
  assert.equal(rows.rows[0]?.n, '1');
  const ledger = await db.query<{ n: string }>(`SELECT count(*)::text AS n FROM pgconvoy.history WHERE status = 'applied'`);
  assert.equal(ledger.rows[0]?.n, '1');
  const failed = await db.query<{ n: string }>(`SELECT count(*)::text AS n FROM pgconvoy.history WHERE status <> 'applied'`);
  assert.equal(failed.rows[0]?.n, '0', 'the runner that lost the race recorded no failure');
});
