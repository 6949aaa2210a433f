import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, statSync, truncateSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { CreateBucketCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import pg from 'pg';
import { applyRetention, backupDatabase, BackupCorruptError, BackupFailedError, libpqEnv, listBackups, restoreDatabase, verifyBackup } from '../../src/backup/backup';
import { withClient } from '../../src/db/connection';
import { fingerprint, fingerprintDiff } from '../../src/db/fingerprint';
import { ensureLedger, insertHistory } from '../../src/db/ledger';
import { FilesystemStore } from '../../src/backup/filesystem-store';
import type { BackupStore } from '../../src/backup/store';
import { S3Store } from '../../src/backup/s3-store';
import { adminQuery, createTestDatabase, type TestDatabase } from '../helpers/database';
import { runInProcess } from '../helpers/in-process-cli';
import { openConnectionsTo } from '../helpers/minio';
import { services } from '../helpers/services';
import { testConfig, withWorker } from '../helpers/temporal';

function scratch(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'pgconvoy-backup-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** `rows` customers, each with 64 hex characters that compress poorly, and 100 notes. */
async function seeded(t: { after(fn: () => unknown): void }, rows = 20_000): Promise<TestDatabase> {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  await db.query(`CREATE TABLE customers (id int PRIMARY KEY, email text NOT NULL, token text); CREATE TABLE notes (id int, body text);
    INSERT INTO customers SELECT g, 'user' || g || '@example.com', md5(g::text) || md5((g * 7)::text) FROM generate_series(1, ${rows}) g;
    INSERT INTO notes SELECT g, repeat('x', 50) FROM generate_series(1, 100) g;`);
  return db;
}

const s3 = () => ({
  endpoint: process.env.PGCONVOY_TEST_S3_ENDPOINT!,
  credentials: { accessKeyId: process.env.PGCONVOY_TEST_S3_ACCESS_KEY!, secretAccessKey: process.env.PGCONVOY_TEST_S3_SECRET_KEY! },
});

async function bucket(name: string): Promise<void> {
  const client = new S3Client({ region: 'us-east-1', forcePathStyle: true, ...s3() });
  await client.send(new CreateBucketCommand({ Bucket: name }));
  client.destroy();
}

test('a backup to the local store streams pg_dump with its sha256 and size, verifies, and restores every row', async (t) => {
  const db = await seeded(t);
  const store = new FilesystemStore(scratch(t));
  const manifest = await backupDatabase({ alias: 'shop', url: db.url, store, serverVersion: '15', ledgerVersion: '3' });
  const file = join(store.location.replace('file://', ''), manifest.key);
  assert.equal(statSync(file).size, manifest.bytes);
  assert.equal(manifest.sha256, execFileSync('sha256sum', [file]).toString().split(' ')[0]);
  assert.match(manifest.pgDumpVersion, /^pg_dump \(PostgreSQL\) \d+/);
  assert.deepEqual([manifest.db, manifest.format, manifest.ledgerVersion, manifest.tables], ['shop', 'custom', '3', null]);
  assert.deepEqual(await verifyBackup(store, manifest), { bytes: manifest.bytes, sha256: manifest.sha256 });
  assert.deepEqual((await listBackups(store, 'shop')).map((m) => m.id), [manifest.id]);

  const restored = await createTestDatabase();
  t.after(() => restored.drop());
  execFileSync('pg_restore', ['--no-owner', '--dbname', restored.name, file], { env: { ...libpqEnv(restored.url) } });
  assert.deepEqual((await restored.query(`SELECT count(*)::int AS n, sum(id)::text AS ids, count(*) FILTER (WHERE token = md5(id::text) || md5((id * 7)::text))::int AS intact FROM customers`)).rows, [
    { n: 20_000, ids: '200010000', intact: 20_000 },
  ]);
});

test('verification judges the bytes, not how the stream ended: all of them then an error passes, an error halfway fails', async (t) => {
  const db = await seeded(t, 2_000);
  const files = new FilesystemStore(scratch(t));
  const manifest = await backupDatabase({ alias: 'shop', url: db.url, store: files, serverVersion: '15', ledgerVersion: null });
  /** The real store, with its stream failing after `limit` bytes (Infinity: after the last one), as a reset connection would. */
  const failingAfter = (limit: number): BackupStore => ({
    location: files.location,
    put: (key, body) => files.put(key, body),
    list: (prefix) => files.list(prefix),
    delete: (key) => files.delete(key),
    close: () => files.close(),
    get: async (key) => {
      const source = await files.get(key);
      return Readable.from(
        (async function* () {
          let sent = 0;
          for await (const chunk of source) {
            const buffer = Buffer.from(chunk as Buffer);
            if (sent + buffer.length > limit) {
              yield buffer.subarray(0, limit - sent);
              throw new Error('connection reset by peer');
            }
            sent += buffer.length;
            yield buffer;
          }
          throw new Error('connection reset by peer');
        })(),
      );
    },
  });
  assert.deepEqual(await verifyBackup(failingAfter(Infinity), manifest), { bytes: manifest.bytes, sha256: manifest.sha256 });
  await assert.rejects(verifyBackup(failingAfter(Math.floor(manifest.bytes / 2)), manifest), (error: unknown) => {
    assert.ok(error instanceof BackupCorruptError);
    assert.match(error.message, new RegExp(`size is ${Math.floor(manifest.bytes / 2)} bytes, the manifest says ${manifest.bytes}`));
    assert.match(error.message, /reading stopped: connection reset by peer/);
    return true;
  });
});

test('verification catches a truncated backup and a changed byte', async (t) => {
  const db = await seeded(t);
  const store = new FilesystemStore(scratch(t));
  const truncated = await backupDatabase({ alias: 'shop', url: db.url, store, serverVersion: '15', ledgerVersion: null });
  const changed = await backupDatabase({ alias: 'shop', url: db.url, store, serverVersion: '15', ledgerVersion: null });
  const path = (key: string) => join(store.location.replace('file://', ''), key);

  truncateSync(path(truncated.key), Math.floor(truncated.bytes * 0.6));
  await assert.rejects(verifyBackup(store, truncated), (error: unknown) => {
    assert.ok(error instanceof BackupCorruptError);
    assert.match(error.message, new RegExp(`size is ${Math.floor(truncated.bytes * 0.6)} bytes, the manifest says ${truncated.bytes}`));
    assert.match(error.message, /pg_restore could not read it \(exit 1\)/, 'pg_restore itself rejects the truncated archive');
    return true;
  });

  const fd = openSync(path(changed.key), 'r+');
  const middle = Math.floor(changed.bytes / 2);
  const original = readFileSync(path(changed.key))[middle]!;
  writeSync(fd, Buffer.from([original ^ 0xff]), 0, 1, middle);
  closeSync(fd);
  await assert.rejects(verifyBackup(store, changed), (error: unknown) => {
    assert.ok(error instanceof BackupCorruptError);
    assert.match(error.message, /sha256 is [0-9a-f]{16}…, the manifest says [0-9a-f]{16}…/);
    return true;
  });
});

test('a pg_dump that fails, also mid-stream, never becomes a backup', async (t) => {
  const db = await seeded(t, 300_000);
  const store = new FilesystemStore(scratch(t));
  await assert.rejects(
    backupDatabase({ alias: 'shop', url: db.url, store, serverVersion: '15', ledgerVersion: null, tables: ['no_such_table'] }),
    (error: unknown) => error instanceof BackupFailedError && /pg_dump exited with code 1: pg_dump: error: no matching tables were found/.test(error.message),
  );
  // Kill pg_dump's session while it streams the big table.
  const backup = backupDatabase({ alias: 'shop', url: db.url, store, serverVersion: '15', ledgerVersion: null });
  for (let i = 0; i < 500; i++) {
    const killed = await adminQuery(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${db.name}' AND application_name = 'pgconvoy-backup' AND query LIKE 'COPY%'`,
    );
    if (killed.rowCount) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  await assert.rejects(backup, (error: unknown) => error instanceof BackupFailedError && /pg_dump exited with code 1/.test(error.message));
  assert.deepEqual(await store.list('shop/'), [], 'neither data nor manifest was kept');
});

test('a backup to the S3-compatible server: multipart upload with server-side encryption, verified, listed, and kept to the last N', async (t) => {
  const db = await seeded(t, 200_000);
  const name = `pgconvoy-test-${Date.now()}`;
  await bucket(name);
  const store = new S3Store({ bucket: name, prefix: 'backups', region: 'us-east-1', ...s3(), partSizeBytes: 5 * 1024 * 1024, queueSize: 2, serverSideEncryption: 'AES256' });
  t.after(() => store.destroy());
  const first = await backupDatabase({ alias: 'shop', url: db.url, store, serverVersion: '15', ledgerVersion: '1', now: new Date('2026-01-01T00:00:00Z') });
  assert.ok(first.bytes > 5 * 1024 * 1024, `large enough for several parts (${first.bytes} bytes)`);
  await verifyBackup(store, first);
  const client = new S3Client({ region: 'us-east-1', forcePathStyle: true, ...s3() });
  t.after(() => client.destroy());
  const head = await client.send(new HeadObjectCommand({ Bucket: name, Key: `backups/${first.key}` }));
  assert.equal(head.ServerSideEncryption, 'AES256');
  assert.equal(head.ContentLength, first.bytes);
  assert.match(head.ETag ?? '', /-\d+"$/, 'stored with a multipart upload');

  const second = await backupDatabase({ alias: 'shop', url: db.url, store, serverVersion: '15', ledgerVersion: '2', now: new Date('2026-01-02T00:00:00Z'), tables: ['notes'] });
  const third = await backupDatabase({ alias: 'shop', url: db.url, store, serverVersion: '15', ledgerVersion: '3', now: new Date('2026-01-03T00:00:00Z') });
  assert.deepEqual(second.tables, ['notes']);
  assert.ok(second.bytes < first.bytes / 10, 'a table-limited dump holds only that table');
  assert.deepEqual((await listBackups(store, 'shop')).map((m) => m.id), [third.id, second.id, first.id]);
  assert.deepEqual(await applyRetention(store, 'shop', 2), [first.id]);
  assert.deepEqual((await listBackups(store, 'shop')).map((m) => m.id), [third.id, second.id]);
  assert.deepEqual((await store.list('shop/')).sort(), [second.key, `${second.key}.manifest.json`, third.key, `${third.key}.manifest.json`].sort());
});

test('a restore puts back a dropped column with every row and removes what came after, in one transaction, leaving the ledger alone', async (t) => {
  const db = await seeded(t);
  await db.query(`CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int PRIMARY KEY); INSERT INTO billing.invoices VALUES (1), (2);`);
  await withClient({ alias: 'shop', url: db.url }, async (c) => {
    await ensureLedger(c);
    await insertHistory(c, { version: '1', description: 'kept', file: 'V1__kept.sql', checksum: 'c', status: 'applied', startedAt: new Date(), executionMs: 1 });
  });
  const before = await withClient({ alias: 'shop', url: db.url }, (c) => fingerprint(c));
  const store = new FilesystemStore(scratch(t));
  const manifest = await backupDatabase({ alias: 'shop', url: db.url, store, serverVersion: '15', ledgerVersion: '1' });

  // What a destructive migration does before a later statement fails.
  await db.query('ALTER TABLE customers DROP COLUMN email; CREATE TABLE extra (id int); DROP SCHEMA billing CASCADE;');
  const bystander = new pg.Client({ connectionString: db.url });
  bystander.on('error', () => undefined);
  await bystander.connect();
  t.after(() => bystander.end().catch(() => undefined));

  const terminated: number[] = [];
  await withClient({ alias: 'shop', url: db.url }, (c) =>
    restoreDatabase({ alias: 'shop', url: db.url, store, manifest, onTerminate: (s) => terminated.push(...s.map((x) => x.pid)) }, async (sql) => (await c.query<Record<string, unknown>>(sql)).rows),
  );
  assert.ok(terminated.length >= 1, 'other sessions were terminated first');
  const after = await withClient({ alias: 'shop', url: db.url }, (c) => fingerprint(c));
  assert.equal(after.sha256, before.sha256, fingerprintDiff(before, after).join('\n'));
  assert.deepEqual((await db.query(`SELECT count(email)::int AS n FROM customers`)).rows, [{ n: 20_000 }], 'every row of the dropped column is back');
  assert.deepEqual((await db.query(`SELECT count(*)::int AS n FROM billing.invoices`)).rows, [{ n: 2 }]);
  assert.equal((await db.query(`SELECT to_regclass('public.extra') AS t`)).rows[0]?.t, null);
  assert.deepEqual((await db.query(`SELECT version::text, description FROM pgconvoy.history`)).rows, [{ version: '1', description: 'kept' }], 'the ledger is not rewound');
});

test('`pgconvoy backup` takes a verified backup on a worker into the S3-compatible server and keeps the configured number', async (t) => {
  const db = await seeded(t, 1_000);
  const name = `pgconvoy-cli-${Date.now()}`;
  await bucket(name);
  const config = testConfig({
    databases: { shop: db.url },
    migrationsDir: '/unused',
    backup: { store: `s3://${name}/nightly`, keep: 2, drill: true, scope: 'database', s3: { region: 'us-east-1', ...s3(), partSizeBytes: 5 * 1024 * 1024, queueSize: 2 } },
  });
  const env = { ...services.temporalEnv, PGCONVOY_TASK_QUEUE: config.temporal.taskQueue, PGCONVOY_LOG_LEVEL: 'silent' };
  const runs = await withWorker(config, async () => {
    const out = [];
    for (let i = 0; i < 3; i++) out.push(await runInProcess(['--migrations', '/unused', '--json', 'backup', '--db', 'shop'], env));
    return out;
  });
  const results = runs.map((r) => {
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as { manifest: { id: string; key: string; bytes: number }; location: string; deleted: string[]; drill?: string };
  });
  assert.equal(results[0]!.location, `s3://${name}/nightly`);
  assert.match(results[0]!.drill ?? '', /^restored into pgconvoy_drill_[0-9a-f]{8} in \d+ ms$/, 'with drill on, each backup was restored into a scratch database');
  const leftovers = await adminQuery(`SELECT datname FROM pg_database WHERE datname LIKE 'pgconvoy_drill_%'`);
  assert.equal(leftovers.rowCount, 0, 'the scratch database was dropped');
  assert.deepEqual(results[2]!.deleted, [results[0]!.manifest.id], 'the third backup deleted the first (keep 2)');
  // The worker ran in this process: each backup's S3 client was destroyed with its activity, sockets and all.
  assert.equal(openConnectionsTo(Number(new URL(s3().endpoint).port)), 0, 'no connection to the S3 server is left open');
  const store = new S3Store({ bucket: name, prefix: 'nightly', region: 'us-east-1', ...s3(), partSizeBytes: 5 * 1024 * 1024, queueSize: 1 });
  t.after(() => store.destroy());
  assert.deepEqual((await listBackups(store, 'shop')).map((m) => m.id), [results[2]!.manifest.id, results[1]!.manifest.id]);
});
