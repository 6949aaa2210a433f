import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import type pg from 'pg';
import type { PreparedMigration } from '../../src/core/prepare';
import { withClient } from '../../src/db/connection';
import { CatalogCache } from '../../src/db/catalog-tracker';
import { applyGroup, applyMigration, type EngineContext } from '../../src/db/execute';
import { fingerprint, fingerprintDiff, hashParts } from '../../src/db/fingerprint';
import { ensureLedger } from '../../src/db/ledger';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { engineContext, prepared } from '../helpers/engine';

/**
 * Migrations whose changes reach beyond the relations they name through the
 * catalog's text: renames seen by views, foreign keys and defaults; indexes
 * and columns added to partitions and inheritance children; drops; serial
 * and identity sequences; quoted and schema-qualified names.
 */
const changes: Record<string, string> = {
  'V1__base.sql': `CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, customer_id int REFERENCES customers (id), total numeric(10, 2));
CREATE VIEW big_orders AS SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.total > 100;`,
  'V2__rename_table.sql': 'ALTER TABLE customers RENAME TO clients;',
  'V3__rename_column.sql': 'ALTER TABLE clients RENAME COLUMN id TO client_id;',
  'V4__index_and_trigger.sql': `CREATE INDEX orders_total ON orders (total);
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;`,
  'V5__trigger.sql': 'CREATE TRIGGER orders_touch BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch();',
  'V6__partitions.sql': `CREATE TABLE events (id int, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');`,
  'V7__partitioned_index.sql': 'CREATE INDEX events_at ON events (at);',
  'V8__inheritance.sql': 'CREATE TABLE base_log (msg text);\nCREATE TABLE app_log () INHERITS (base_log);',
  'V9__parent_column.sql': 'ALTER TABLE base_log ADD COLUMN level int DEFAULT 0;',
  'V10__rename_sequence.sql': 'ALTER SEQUENCE customers_id_seq RENAME TO clients_id_seq;',
  'V11__quoted.sql': 'CREATE SCHEMA "Sales";',
  'V12__qualified.sql': 'CREATE TABLE "Sales"."Quota" (id int PRIMARY KEY, "Amount" int);\nCREATE INDEX "Quota_amount" ON "Sales"."Quota" ("Amount");',
  'V13__drop_index.sql': 'DROP INDEX orders_total;',
  'V14__drop_view_and_table.sql': 'DROP VIEW big_orders;\nDROP TABLE app_log;',
  'V15__data.sql': "INSERT INTO clients (name) VALUES ('a');\nUPDATE orders SET total = 1 WHERE false;",
  'V16__drop_trigger.sql': 'DROP TRIGGER orders_touch ON orders;',
  'V17__add_serial.sql': 'ALTER TABLE "Sales"."Quota" ADD COLUMN seq serial;',
};

/** A new database with its ledger, the files parsed, and an engine context whose tracker follows run-1 on a fresh cache. */
async function onTrackedDatabase(
  t: TestContext,
  files: Record<string, string>,
  fn: (on: { db: TestDatabase; client: pg.Client; migrations: PreparedMigration[]; cache: CatalogCache; ctx: EngineContext }) => Promise<void>,
): Promise<void> {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const migrations = await prepared(files);
  const cache = new CatalogCache();
  await withClient({ alias: 'db', url: db.url }, async (client) => {
    await ensureLedger(client);
    await fn({ db, client, migrations, cache, ctx: { ...engineContext({}, 'run-1'), catalog: cache.tracker('db', 'run-1') } });
  });
}

test('the fingerprint a run records for each version, reading only what the migration touched, is the one a full read of the catalog gives', async (t) => {
  await onTrackedDatabase(t, changes, async ({ db, client, migrations, cache, ctx }) => {
    for (const m of migrations) {
      const result = await applyMigration(client, m, ctx);
      assert.equal(result.status, 'applied');
      const recorded = await db.query<{ fingerprint: string }>(`SELECT fingerprint FROM pgconvoy.history WHERE version = $1 AND status = 'applied'`, [m.version]);
      const full = await fingerprint(client);
      assert.equal(recorded.rows[0]?.fingerprint, full.sha256, `V${m.version} (${m.forward.file})`);
    }
    // V1 reads the whole catalog once (there is nothing to start from), V4 (a function) and V11 (a schema) read it whole; the other 15 only what they touched.
    assert.deepEqual(cache.reads, { whole: 3, touched: 15 });
  });
});

test('with --group, each version of the one transaction records the fingerprint after it', async (t) => {
  const files = { 'V1__a.sql': 'CREATE TABLE a (id serial PRIMARY KEY);', 'V2__b.sql': 'CREATE TABLE b (a_id int REFERENCES a (id));', 'V3__c.sql': 'ALTER TABLE a RENAME TO aa;' };
  await onTrackedDatabase(t, files, async ({ db, client, migrations, ctx }) => {
    // The truth for each version, one database beside it applying them one at a time with full reads.
    const other = await createTestDatabase();
    t.after(() => other.drop());
    const truths = await withClient({ alias: 'other', url: other.url }, async (o) => {
      await ensureLedger(o);
      const out: string[] = [];
      for (const m of migrations) {
        await applyMigration(o, m, engineContext());
        out.push((await fingerprint(o)).sha256);
      }
      return out;
    });
    await applyGroup(client, migrations, ctx);
    const recorded = await db.query<{ fingerprint: string }>(`SELECT fingerprint FROM pgconvoy.history WHERE status = 'applied' ORDER BY id`);
    assert.deepEqual(recorded.rows.map((r) => r.fingerprint), truths);
  });
});

test('when the ledger moved between two migrations (another run, a failed attempt), the tracker reads the whole catalog again; the schema before an undoable version hashes as the catalog it describes', async (t) => {
  const files = { 'V1__a.sql': 'CREATE TABLE a (id int);', 'V2__b.sql': 'CREATE TABLE b (id int);', 'U2__b.sql': 'DROP TABLE b;' };
  await onTrackedDatabase(t, files, async ({ db, client, migrations, ctx }) => {
    await applyMigration(client, migrations[0]!, ctx);
    // Someone else's ledger row (another run, a failed attempt) and a table the run knows nothing about.
    await db.query(`CREATE TABLE outsider (id int); INSERT INTO pgconvoy.history (version, description, file, checksum, status, started_at, execution_ms) VALUES (99, 'x', 'V99__x.sql', 'x', 'failed', now(), 0)`);
    await applyMigration(client, migrations[1]!, ctx);
    const row = await db.query<{ fingerprint: string; schema_before: Record<string, string[]> }>(`SELECT fingerprint, schema_before FROM pgconvoy.history WHERE version = 2 AND status = 'applied'`);
    const full = await fingerprint(client);
    assert.equal(row.rows[0]?.fingerprint, full.sha256);
    assert.ok(row.rows[0]?.schema_before.relations?.includes('public.outsider r'), 'the schema before V2 has the outsider');
    await db.query('DROP TABLE b');
    assert.equal(hashParts(row.rows[0].schema_before), (await fingerprint(client)).sha256, 'stored as jsonb (keys reordered), it hashes as the catalog it describes');
    assert.deepEqual(fingerprintDiff({ sha256: '', parts: row.rows[0].schema_before }, await fingerprint(client)), []);
  });
});

test('a migration whose transaction fails after its catalog was brought up to date leaves the followed catalog as it was: the next version records the fingerprint a full read gives', async (t) => {
  const files = { 'V1__a.sql': 'CREATE TABLE a (id int);', 'V2__b.sql': 'CREATE TABLE b (id int);', 'V3__c.sql': 'CREATE TABLE c (id int);' };
  await onTrackedDatabase(t, files, async ({ db, client, migrations, cache, ctx }) => {
    await applyMigration(client, migrations[0]!, ctx);
    // V2's statements and its catalog update succeed; writing its ledger row fails, so its transaction rolls back.
    await db.query(`CREATE FUNCTION pgconvoy.test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'ledger row refused'; END $$;
      CREATE TRIGGER test_refuse BEFORE INSERT ON pgconvoy.history FOR EACH ROW WHEN (NEW.version = 2) EXECUTE FUNCTION pgconvoy.test_refuse();`);
    await assert.rejects(applyMigration(client, migrations[1]!, ctx), /ledger row refused/);
    assert.equal((await db.query(`SELECT to_regclass('public.b') AS b`)).rows[0]?.b, null, 'V2 rolled back');
    const touchedBefore = cache.reads.touched;
    await applyMigration(client, migrations[2]!, ctx);
    assert.equal(cache.reads.touched, touchedBefore + 1, 'V3 read only what it touched, from the catalog the tracker follows');
    const row = await db.query<{ fingerprint: string }>(`SELECT fingerprint FROM pgconvoy.history WHERE version = 3 AND status = 'applied'`);
    assert.equal(row.rows[0]?.fingerprint, (await fingerprint(client)).sha256, 'no trace of the rolled-back table b');
  });
});

test('names a migration leaves unqualified resolve on the session search_path, not on the one the catalog is read under: alone and in a group', async (t) => {
  const files = {
    'V1__base.sql': 'CREATE SCHEMA app;\nCREATE TABLE app.items (id int PRIMARY KEY);\nCREATE TABLE public.items (id int PRIMARY KEY);\nCREATE TABLE public.extra (id int);',
    'V2__column.sql': 'ALTER TABLE items ADD COLUMN note text;',
    'V3__index.sql': 'CREATE INDEX items_note ON items (note);',
    // Before it, "extra" is public.extra; after it, app.extra (app comes first on the path).
    'V4__extra.sql': 'CREATE TABLE extra (id int);',
    'V5__rename.sql': 'ALTER TABLE extra RENAME TO extra2;',
    'V6__extra_column.sql': 'ALTER TABLE extra2 ADD COLUMN y int;',
  };
  const db = await createTestDatabase();
  t.after(() => db.drop());
  // Every new session in this database starts with app first on its path.
  await db.query(`ALTER DATABASE "${new URL(db.url).pathname.slice(1)}" SET search_path = app, public`);
  const migrations = await prepared(files);
  const cache = new CatalogCache();
  const recordedIs = async (client: pg.Client, version: string) => {
    const recorded = await db.query<{ fingerprint: string }>(`SELECT fingerprint FROM pgconvoy.history WHERE version = $1 AND status = 'applied'`, [version]);
    assert.equal(recorded.rows[0]?.fingerprint, (await fingerprint(client)).sha256, `V${version}: the fingerprint a full read gives`);
  };
  await withClient({ alias: 'db', url: db.url }, async (client) => {
    await ensureLedger(client);
    const ctx = { ...engineContext({}, 'run-1'), catalog: cache.tracker('db', 'run-1') };
    for (const m of migrations.slice(0, 4)) {
      await applyMigration(client, m, ctx);
      await recordedIs(client, m.version);
    }
    await applyGroup(client, migrations.slice(4), ctx);
    await recordedIs(client, '6');
  });
  const placed = await db.query<{ table: string }>(
    `SELECT n.nspname || '.' || c.relname AS table FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid AND c.relkind = 'r' JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE a.attname IN ('note', 'y') ORDER BY 1`,
  );
  assert.deepEqual(placed.rows.map((r) => r.table), ['app.extra2', 'app.items'], 'the migrations changed the tables on the session path (app first), as psql would');
  assert.equal(cache.reads.touched, 5, 'V2 to V6 read only what they touched');
});

test('a migration runs under the session’s own settings, not those pgconvoy sets for its own queries around it: alone and in a group', async (t) => {
  const seen = `SELECT current_setting('search_path') AS path, current_setting('plan_cache_mode') AS plans`;
  const files = {
    'V1__a.sql': `CREATE TABLE seen_1 AS ${seen};`,
    'V2__b.sql': `CREATE TABLE seen_2 AS ${seen};`,
    'V3__c.sql': `CREATE TABLE seen_3 AS ${seen};`,
  };
  await onTrackedDatabase(t, files, async ({ client, migrations, ctx }) => {
    const session = (await client.query<{ path: string; plans: string }>(seen)).rows[0]!;
    await applyMigration(client, migrations[0]!, ctx);
    await applyGroup(client, migrations.slice(1), ctx);
    for (const table of ['seen_1', 'seen_2', 'seen_3']) {
      assert.deepEqual((await client.query<{ path: string; plans: string }>(`SELECT path, plans FROM ${table}`)).rows[0], session, table);
    }
    assert.deepEqual((await client.query<{ path: string; plans: string }>(seen)).rows[0], session, 'and the connection is left as it was');
  });
});
