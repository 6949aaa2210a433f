import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import pg from 'pg';
import { backupDatabase, BackupCorruptError, drillRestore, restoreDatabase, verifyBackup, type BackupManifest } from '../../src/backup/backup';
import { FilesystemStore } from '../../src/backup/filesystem-store';
import { S3Store } from '../../src/backup/s3-store';
import type { BackupStore } from '../../src/backup/store';
import { withClient } from '../../src/db/connection';
import { fingerprint } from '../../src/db/fingerprint';
import { ensureLedger } from '../../src/db/ledger';
import { adminQuery, createTestDatabase, type TestDatabase } from '../helpers/database';
import { services } from '../helpers/services';

/*
 * A restore is the last line of defence: whatever goes wrong while it runs
 * (a backup that is short, gone or changed, a store read that breaks
 * halfway, before or during the replay), the database must be exactly as it
 * was, with no pg_restore or psql left running and no session left holding
 * the restore's transaction open.
 */

type Context = { after(fn: () => unknown): void };

/** Everything a failed restore must leave as it was: schema, every row, large objects, comments, the public schema. */
async function snapshot(db: TestDatabase): Promise<Record<string, unknown>> {
  return withClient({ alias: 'shop', url: db.url }, async (c) => {
    // A lock a failed restore left behind fails the snapshot instead of hanging it.
    await c.query(`SET lock_timeout = '5s'`);
    const tables = (
      await c.query<{ t: string }>(
        `SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema', 'pgconvoy') ORDER BY 1`,
      )
    ).rows.map((r) => r.t);
    const rows: Record<string, unknown> = {};
    for (const t of tables) {
      rows[t] = (await c.query(`SELECT count(*)::int AS n, md5(coalesce(string_agg(x::text, ',' ORDER BY x::text), '')) AS content FROM ${t} x`)).rows[0];
    }
    const q = async (sql: string): Promise<unknown[]> => (await c.query<Record<string, unknown>>(sql)).rows;
    return {
      fingerprint: (await fingerprint(c)).sha256,
      rows,
      largeObjects: await q(`SELECT oid::text, md5(lo_get(oid)) AS content FROM pg_largeobject_metadata ORDER BY oid`),
      comments: await q(`SELECT c.relname, obj_description(c.oid, 'pg_class') AS comment FROM pg_class c WHERE obj_description(c.oid, 'pg_class') IS NOT NULL ORDER BY 1`),
      sequences: await q(`SELECT sequencename, last_value::text FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1`),
      publicSchema: await q(`SELECT nspowner::regrole::text AS owner, obj_description(oid, 'pg_namespace') AS comment, nspacl::text AS acl FROM pg_namespace WHERE nspname = 'public'`),
    };
  });
}

/** pg_restore and psql processes whose parent is this test process. */
function childTools(): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === process.pid && (comm === 'pg_restore' || comm === 'psql')) found.push(`${comm} (pid ${pid})`);
  }
  return found;
}

/** Sessions of the database a failed restore could have left: open transactions, or the restore's own. */
async function lingeringSessions(db: TestDatabase): Promise<unknown[]> {
  const r: { rows: unknown[] } = await adminQuery(
    `SELECT pid, state, application_name FROM pg_stat_activity
      WHERE datname = '${db.name}' AND (state LIKE 'idle in transaction%' OR application_name LIKE 'pgconvoy-restore%')`,
  );
  return r.rows;
}

/**
 * A database with what makes a restore hard: keys, a foreign key, a unique
 * index, a check, a sequence, a large object, a procedure whose body has a
 * `COMMIT;` line, a row whose text is `COMMIT;`, and a comment pg_dump
 * stores uncompressed (where a changed byte goes unnoticed by pg_restore).
 */
async function seeded(t: Context, rows = 20_000): Promise<TestDatabase> {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  await db.query(`
    CREATE TABLE customers (id int PRIMARY KEY, email text NOT NULL CHECK (email LIKE '%@%'), token text);
    CREATE UNIQUE INDEX customers_email ON customers (email);
    CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers (id), note text);
    CREATE INDEX orders_customer ON orders (customer_id);
    COMMENT ON TABLE customers IS 'pgconvoy-marker-aaaaaaaa';
    INSERT INTO customers SELECT g, 'user' || g || '@example.com', md5(g::text) || md5((g * 7)::text) FROM generate_series(1, ${rows}) g;
    INSERT INTO orders (customer_id, note) SELECT g, CASE g % 3 WHEN 0 THEN 'COMMIT;' WHEN 1 THEN '' ELSE 'BEGIN;' END FROM generate_series(1, ${rows}) g;
    SELECT lo_from_bytea(0, convert_to(repeat('large object ', 1000), 'UTF8'));
    CREATE PROCEDURE archive_orders() LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM orders WHERE note = '';
COMMIT;
END
$$;
  `);
  return db;
}

/** What a destructive migration does before a later statement fails: the state a failed restore must keep. */
async function damage(db: TestDatabase): Promise<void> {
  await db.query(`ALTER TABLE customers DROP COLUMN token; CREATE TABLE extra (id int PRIMARY KEY); INSERT INTO extra VALUES (1), (2);
    DELETE FROM orders WHERE id > 15000; SELECT lo_unlink(oid) FROM pg_largeobject_metadata;`);
}

function restore(db: TestDatabase, store: BackupStore, manifest: BackupManifest): Promise<void> {
  return withClient({ alias: 'shop', url: db.url }, (c) =>
    restoreDatabase({ alias: 'shop', url: db.url, store, manifest }, async (sql) => (await c.query<Record<string, unknown>>(sql)).rows),
  );
}

/** Reads of the real store, each (1st, 2nd, ...) changed by `fault` if it returns a change for it. */
function faulty(store: BackupStore, fault: (read: number) => ((data: Buffer) => AsyncGenerator<Buffer>) | null): BackupStore {
  let reads = 0;
  return {
    location: store.location,
    put: (key, body, type) => store.put(key, body, type),
    list: (prefix) => store.list(prefix),
    delete: (key) => store.delete(key),
    close: () => store.close(),
    get: async (key) => {
      const change = fault(++reads);
      const stream = await store.get(key);
      if (!change) return stream;
      const chunks: Buffer[] = [];
      for await (const c of stream) chunks.push(Buffer.from(c as Buffer));
      return Readable.from(change(Buffer.concat(chunks)));
    },
  };
}

/** The bytes in 64 KiB chunks, failing like a reset connection after `limit` of them. */
async function* failingAfter(data: Buffer, limit: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < limit; at += 65536) yield data.subarray(at, Math.min(at + 65536, limit));
  await new Promise((r) => setTimeout(r, 20));
  throw new Error('read ECONNRESET (injected)');
}

async function* chunked(data: Buffer): AsyncGenerator<Buffer> {
  for (let at = 0; at < data.length; at += 65536) yield await Promise.resolve(data.subarray(at, at + 65536));
}

/** The backup with one byte of the uncompressed table comment changed: pg_restore reads it without complaint. */
function quietlyChanged(data: Buffer): Buffer {
  const copy = Buffer.from(data);
  const at = copy.indexOf('pgconvoy-marker-aaaaaaaa');
  assert.ok(at > 0, 'the marker comment is in the archive');
  copy[at + 20] = 'b'.charCodeAt(0);
  return copy;
}

interface Kind {
  name: string;
  store(t: Context): Promise<BackupStore>;
  /** Replaces the stored backup's bytes (undefined: deletes it). */
  replace(store: BackupStore, key: string, data: Buffer | undefined): Promise<void>;
}

const filesystem: Kind = {
  name: 'filesystem',
  store: (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'pgconvoy-restore-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    return Promise.resolve(new FilesystemStore(dir));
  },
  replace: (store, key, data) => (data === undefined ? store.delete(key) : store.put(key, Readable.from([data]), 'application/octet-stream')),
};

const s3: Kind = {
  name: 'S3',
  store: async (t) => {
    const endpoint = process.env.PGCONVOY_TEST_S3_ENDPOINT!;
    const credentials = { accessKeyId: process.env.PGCONVOY_TEST_S3_ACCESS_KEY!, secretAccessKey: process.env.PGCONVOY_TEST_S3_SECRET_KEY! };
    const bucket = `pgconvoy-restore-${Date.now()}-${Math.floor(Math.random() * 1e6)}`;
    const client = new S3Client({ region: 'us-east-1', forcePathStyle: true, endpoint, credentials });
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    client.destroy();
    const store = new S3Store({ bucket, prefix: 'backups', region: 'us-east-1', endpoint, credentials, partSizeBytes: 5 * 1024 * 1024, queueSize: 2 });
    t.after(() => store.destroy());
    return store;
  },
  replace: (store, key, data) => filesystem.replace(store, key, data),
};

async function read(store: BackupStore, key: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of await store.get(key)) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks);
}

interface Fault {
  name: string;
  /** Before the check: the backup as stored is wrong; nothing may be touched, not even other sessions. */
  beforeCheck: boolean;
  apply(kind: Kind, store: BackupStore, manifest: BackupManifest): Promise<BackupStore>;
  error: (manifest: BackupManifest) => { type: string; message: RegExp };
}

const faults: Fault[] = [
  {
    name: 'a truncated backup',
    beforeCheck: true,
    apply: async (kind, store, m) => {
      await kind.replace(store, m.key, (await read(store, m.key)).subarray(0, Math.floor(m.bytes * 0.6)));
      return store;
    },
    error: (m) => ({ type: 'BackupCorrupt', message: new RegExp(`does not match its manifest: size is ${Math.floor(m.bytes * 0.6)} bytes, the manifest says ${m.bytes}; the database was not changed`) }),
  },
  {
    name: 'a deleted backup',
    beforeCheck: true,
    apply: async (kind, store, m) => {
      await kind.replace(store, m.key, undefined);
      return store;
    },
    error: (m) => ({ type: 'BackupCorrupt', message: new RegExp(`backup ${m.id} of "shop" in \\S+ is gone \\(shop/\\S+\\.dump\\); the database was not changed`) }),
  },
  {
    name: 'a bit-flipped backup',
    beforeCheck: true,
    apply: async (kind, store, m) => {
      const data = await read(store, m.key);
      data[Math.floor(data.length / 2)]! ^= 0x10;
      await kind.replace(store, m.key, data);
      return store;
    },
    error: () => ({ type: 'BackupCorrupt', message: /does not match its manifest: sha256 is [0-9a-f]{16}…, the manifest says [0-9a-f]{16}…; the database was not changed/ }),
  },
  {
    name: 'a store read that fails halfway',
    beforeCheck: true,
    apply: (_kind, store, m) => Promise.resolve(faulty(store, () => (data) => failingAfter(data, Math.floor(m.bytes / 2)))),
    error: (m) => ({ type: 'RestoreFailed', message: new RegExp(`reading backup ${m.id} .* failed after \\d+ of ${m.bytes} bytes: read ECONNRESET \\(injected\\); the database was not changed`) }),
  },
  {
    name: 'a store read that fails halfway through the replay',
    beforeCheck: false,
    apply: (_kind, store, m) => Promise.resolve(faulty(store, (n) => (n === 2 ? (data) => failingAfter(data, Math.floor(m.bytes / 2)) : null))),
    error: (m) => ({ type: 'RestoreFailed', message: new RegExp(`failed and was rolled back; the database is as it was before the restore: .*\\d+ of the backup's ${m.bytes} bytes had been read`) }),
  },
  {
    name: 'a backup cut short between the check and the replay',
    beforeCheck: false,
    apply: (_kind, store, m) => Promise.resolve(faulty(store, (n) => (n === 2 ? (data) => chunked(data.subarray(0, Math.floor(m.bytes * 0.6))) : null))),
    error: () => ({ type: 'BackupCorrupt', message: /failed and was rolled back; the database is as it was before the restore: pg_restore failed/ }),
  },
  {
    name: 'a backup changed between the check and the replay where pg_restore cannot see it, large object included',
    beforeCheck: false,
    apply: (_kind, store) => Promise.resolve(faulty(store, (n) => (n === 2 ? (data) => chunked(quietlyChanged(data)) : null))),
    error: () => ({ type: 'BackupCorrupt', message: /failed and was rolled back; the database is as it was before the restore: the bytes read hash to sha256 [0-9a-f]{16}…, the manifest says/ }),
  },
];

for (const kind of [filesystem, s3]) {
  for (const fault of faults) {
    test(`restore from ${kind.name}: ${fault.name} leaves the database exactly as it was, no process and no open transaction`, async (t) => {
      const db = await seeded(t);
      const store = await kind.store(t);
      const manifest = await backupDatabase({ alias: 'shop', url: db.url, store, serverVersion: '15', ledgerVersion: null });
      await damage(db);
      const before = await snapshot(db);
      // Another session of the application's: a restore refused by its check must not even end it.
      const session = new pg.Client({ connectionString: db.url });
      session.on('error', () => undefined);
      await session.connect();
      t.after(() => session.end().catch(() => undefined));

      const faultyStore = await fault.apply(kind, store, manifest);
      const outcome = await restore(db, faultyStore, manifest).then(
        () => undefined,
        (error: unknown) => error as Error & { type?: string },
      );

      assert.deepEqual(childTools(), [], 'no pg_restore or psql outlives the restore');
      assert.deepEqual(await lingeringSessions(db), [], 'no session is left idle in transaction');
      assert.deepEqual(await snapshot(db), before, 'the database is exactly as before the restore');
      const expected = fault.error(manifest);
      assert.ok(outcome, 'the restore fails');
      assert.equal(outcome.type, expected.type, outcome.message);
      assert.match(outcome.message, expected.message);
      if (expected.type === 'BackupCorrupt') assert.ok(outcome instanceof BackupCorruptError);
      if (fault.beforeCheck) {
        const alive = await session.query('SELECT 1 AS one').then(
          () => true,
          () => false,
        );
        assert.ok(alive, 'a backup that fails its check terminates no session: the database is not touched at all');
      }
    });
  }
}

test('a restore brings back every row, key, index, sequence, large object, procedure body and the public schema as it was', async (t) => {
  const db = await seeded(t);
  // Enough large objects that psql's answers to their writes would fill a pipe nobody reads.
  await db.query(`SELECT count(lo_from_bytea(0, convert_to('object ' || g, 'UTF8'))) FROM generate_series(1, 3000) g`);
  const original = await snapshot(db);
  const store = await filesystem.store(t);
  const manifest = await backupDatabase({ alias: 'shop', url: db.url, store, serverVersion: '15', ledgerVersion: null });
  await damage(db);
  assert.notDeepEqual(await snapshot(db), original);
  await restore(db, store, manifest);
  assert.deepEqual(await snapshot(db), original);
  assert.match(
    (await db.query<{ def: string }>(`SELECT pg_get_functiondef('archive_orders'::regproc) AS def`)).rows[0]!.def,
    /\nCOMMIT;\nEND/,
    "the procedure's COMMIT line is intact",
  );
  assert.deepEqual(childTools(), []);
  assert.deepEqual(await lingeringSessions(db), []);
});

test("a restore keeps the public schema's owner, comment and privileges", async (t) => {
  const suffix = Math.floor(Math.random() * 1e9).toString(36);
  const [owner, reader] = [`pgconvoy_owner_${suffix}`, `pgconvoy_reader_${suffix}`];
  await adminQuery(`CREATE ROLE ${owner}; CREATE ROLE ${reader}`);
  const db = await createTestDatabase();
  t.after(async () => {
    await db.drop();
    await adminQuery(`DROP ROLE IF EXISTS ${owner}; DROP ROLE IF EXISTS ${reader}`);
  });
  await db.query(`ALTER SCHEMA public OWNER TO ${owner}; COMMENT ON SCHEMA public IS 'the shop''s tables';
    REVOKE CREATE ON SCHEMA public FROM PUBLIC; GRANT USAGE, CREATE ON SCHEMA public TO ${reader} WITH GRANT OPTION;
    CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items VALUES (1);`);
  const schemaOf = () =>
    withClient({ alias: 'shop', url: db.url }, async (c): Promise<unknown[]> =>
      (
        await c.query<Record<string, unknown>>(`SELECT nspowner::regrole::text AS owner, obj_description(oid, 'pg_namespace') AS comment,
          (SELECT array_agg(g ORDER BY g COLLATE "C") FROM (SELECT format('%s %s %s', CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END,
             a.privilege_type, a.is_grantable::text) AS g FROM aclexplode(nspacl) a) x) AS grants
          FROM pg_namespace WHERE nspname = 'public'`)
      ).rows,
    );
  const before = await schemaOf();
  assert.deepEqual(before, [
    {
      owner,
      comment: "the shop's tables",
      grants: [`${owner} CREATE false`, `${owner} USAGE false`, `${reader} CREATE true`, `${reader} USAGE true`, 'PUBLIC USAGE false'].sort(),
    },
  ]);
  const store = await filesystem.store(t);
  const manifest = await backupDatabase({ alias: 'shop', url: db.url, store, serverVersion: '15', ledgerVersion: null });
  await db.query('DROP TABLE items');
  await restore(db, store, manifest);
  assert.deepEqual(await schemaOf(), before);
  assert.deepEqual((await withClient({ alias: 'shop', url: db.url }, (c) => c.query('SELECT id FROM items'))).rows, [{ id: 1 }]);

  // A fresh database's public schema (owner pg_database_owner, the standard comment) stays that too.
  const fresh = await seeded(t, 100);
  const freshBefore = await snapshot(fresh);
  const freshManifest = await backupDatabase({ alias: 'shop', url: fresh.url, store, serverVersion: '15', ledgerVersion: null });
  await restore(fresh, store, freshManifest);
  assert.deepEqual(await snapshot(fresh), freshBefore);
  assert.deepEqual((freshBefore.publicSchema as Array<{ owner: string; comment: string }>).map((s) => [s.owner, s.comment]), [['pg_database_owner', 'standard public schema']]);
});

test('connection parameters in the query string reach pg_dump, pg_restore and psql', async (t) => {
  const db = await seeded(t, 100);
  const before = await snapshot(db);
  const store = await filesystem.store(t);
  // Every parameter that matters only in the query string; the URL's own host, port and database are wrong.
  const url = `postgres://nobody@unused.invalid:1/wrong?host=127.0.0.1&port=5432&dbname=${db.name}&user=postgres&application_name=pgconvoy-query-string&connect_timeout=5&sslmode=disable`;
  const manifest = await backupDatabase({ alias: 'shop', url, store, serverVersion: '15', ledgerVersion: null });
  await damage(db);
  await withClient({ alias: 'shop', url: db.url }, (c) =>
    restoreDatabase({ alias: 'shop', url, store, manifest }, async (sql) => (await c.query<Record<string, unknown>>(sql)).rows),
  );
  assert.deepEqual(await snapshot(db), before);
});

test('verification and the restore drill of a backup that is gone fail at once, leaving no pg_restore behind', async (t) => {
  const db = await seeded(t, 100);
  const store = await filesystem.store(t);
  const manifest = await backupDatabase({ alias: 'shop', url: db.url, store, serverVersion: '15', ledgerVersion: null });
  await store.delete(manifest.key);
  await assert.rejects(verifyBackup(store, manifest), (error: unknown) => error instanceof BackupCorruptError && /reading stopped: ENOENT/.test(error.message));
  await assert.rejects(
    withClient({ alias: 'admin', url: services.adminUrl }, (c) => drillRestore({ alias: 'shop', url: db.url, store, manifest }, (sql) => c.query(sql))),
    (error: unknown) => error instanceof BackupCorruptError && /restore drill of backup \S+ of "shop" failed: reading it failed: ENOENT/.test(error.message),
  );
  assert.deepEqual(childTools(), []);
});

test('a restore commits only while the run holds the lease: with a lease that is gone it rolls back and says so', async (t) => {
  const db = await seeded(t, 2_000);
  const store = await filesystem.store(t);
  const manifest = await backupDatabase({ alias: 'shop', url: db.url, store, serverVersion: '15', ledgerVersion: null });
  await damage(db);
  await withClient({ alias: 'shop', url: db.url }, (c) => ensureLedger(c));
  const damaged = await snapshot(db);
  await assert.rejects(
    withClient({ alias: 'shop', url: db.url }, (c) =>
      restoreDatabase({ alias: 'shop', url: db.url, store, manifest, fenceToken: '424242' }, async (sql) => (await c.query<Record<string, unknown>>(sql)).rows),
    ),
    /failed and was rolled back; the database is as it was before the restore: .*lease 424242 on database "pgconvoy_test_\w+" is no longer held \(it expired or was taken over\); not restoring/s,
  );
  assert.deepEqual(await snapshot(db), damaged, 'nothing of the restore was kept');
  assert.deepEqual(childTools(), []);
  assert.deepEqual(await lingeringSessions(db), []);
});

test('a session that reconnects after the others were terminated cannot hold a restore (and the application behind it) for long: the restore gives up and rolls back', async (t) => {
  const db = await seeded(t, 2_000);
  const store = await filesystem.store(t);
  const manifest = await backupDatabase({ alias: 'shop', url: db.url, store, serverVersion: '15', ledgerVersion: null });
  await damage(db);
  const damaged = await snapshot(db);
  // Sessions like a connection pool's: terminated, they reconnect at once and take their lock again.
  let stop = false;
  const pool = [1, 2, 3].map(async () => {
    while (!stop) {
      const c = new pg.Client({ connectionString: db.url, application_name: 'app-pool' });
      c.on('error', () => undefined);
      try {
        await c.connect();
        await c.query('BEGIN; LOCK TABLE customers IN ACCESS SHARE MODE');
        while (!stop) await c.query('SELECT pg_sleep(0.05)');
      } catch {
        // terminated by the restore: reconnect
      } finally {
        await c.end().catch(() => undefined);
      }
    }
  });
  t.after(async () => {
    stop = true;
    await Promise.all(pool);
  });
  await new Promise((r) => setTimeout(r, 300));
  const started = Date.now();
  await assert.rejects(
    withClient({ alias: 'shop', url: db.url }, (c) =>
      restoreDatabase({ alias: 'shop', url: db.url, store, manifest, lockTimeoutMs: 1_000 }, async (sql) => (await c.query<Record<string, unknown>>(sql)).rows),
    ),
    /failed and was rolled back; the database is as it was before the restore: .*canceling statement due to lock timeout/s,
  );
  assert.ok(Date.now() - started < 30_000, 'the restore gave up instead of waiting for the lock');
  stop = true;
  await Promise.all(pool);
  assert.deepEqual(await snapshot(db), damaged, 'nothing of the restore was kept');
  assert.deepEqual(childTools(), []);
  assert.deepEqual(await lingeringSessions(db), []);
});
