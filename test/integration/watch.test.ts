import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { sampleDatabase } from '../../src/db/watch';
import { createTestDatabase } from '../helpers/database';
import { startPrimaryWithStandby } from '../helpers/standby';
import { waitFor } from '../helpers/workers';

async function connect(t: { after(fn: () => unknown): void }, url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined); // ended by the database's drop at the test's end
  await client.connect();
  t.after(() => client.end().catch(() => undefined));
  return client;
}

test('the watch: a session blocked behind the migration’s lock shows (its pid, how long it has waited), the sample itself never waits behind that lock, and growth and WAL are measured from the first sample', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  await db.query('CREATE TABLE orders (id int PRIMARY KEY, note text)');
  const migration = await connect(t, db.url);
  const app = await connect(t, db.url);
  const watcher = await connect(t, db.url);
  const backendPid = (await migration.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  const appPid = (await app.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;

  const first = await sampleDatabase(watcher, { backendPid });
  assert.equal(first.sample.blocked.count, 0);
  assert.equal(first.sample.growthBytes, null, 'no baseline yet');

  // The migration takes an ACCESS EXCLUSIVE lock and writes; the application's query queues behind it.
  await migration.query('BEGIN');
  await migration.query('LOCK TABLE orders IN ACCESS EXCLUSIVE MODE');
  await migration.query(`INSERT INTO orders SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g`);
  const blockedQuery = app.query('SELECT count(*) FROM orders');
  const seen = await waitFor('the application to wait', async () => {
    const { sample } = await sampleDatabase(watcher, { backendPid, baseline: first.baseline, longQueryMs: 200 });
    return sample.blocked.count === 1 && sample.blocked.longestWaitMs >= 200 ? sample : undefined;
  }, 10_000);
  assert.deepEqual(seen.blocked.pids, [appPid]);
  assert.ok(seen.longestLockWaitMs >= seen.blocked.longestWaitMs);
  const long = seen.longQueries.find((q) => q.pid === appPid);
  assert.ok(long?.waiting, JSON.stringify(seen.longQueries));
  assert.match(long.query, /SELECT count\(\*\) FROM orders/);
  assert.ok(!seen.longQueries.some((q) => q.pid === backendPid), 'the watched backend is not its own long query');
  assert.ok((seen.walBytes ?? 0) > 2_000_000, `WAL since the first sample: ${seen.walBytes}`);

  await migration.query('COMMIT');
  await blockedQuery;
  const after = await sampleDatabase(watcher, { backendPid, baseline: first.baseline });
  assert.equal(after.sample.blocked.count, 0);
  assert.ok((after.sample.growthBytes ?? 0) > 1_000_000, `the table's growth: ${after.sample.growthBytes}`);
});

test('the watch: a real standby’s replay lag (pg_basebackup -R, replay paused while the primary writes), and back to none when replay resumes', async (t) => {
  const cluster = await startPrimaryWithStandby();
  t.after(() => cluster.stop());
  const primary = await connect(t, cluster.primaryUrl);
  const standby = await connect(t, cluster.standbyUrl);
  await primary.query('CREATE TABLE events (id int, payload text)');
  const { baseline } = await sampleDatabase(primary);
  await waitFor('the standby to replay the table', async () => ((await standby.query<{ here: boolean }>(`SELECT to_regclass('events') IS NOT NULL AS here`)).rows[0]!.here ? true : undefined), 10_000);

  await standby.query('SELECT pg_wal_replay_pause()');
  await primary.query(`INSERT INTO events SELECT g, repeat('y', 100) FROM generate_series(1, 50000) g`);
  const lagging = await waitFor('the lag to show', async () => {
    const { sample } = await sampleDatabase(primary, { baseline });
    const replica = sample.replicas.find((r) => r.name === cluster.standbyName);
    return replica && replica.lagBytes > 1_000_000 ? replica : undefined;
  }, 10_000);
  assert.equal(lagging.state, 'streaming');
  // The standby itself reports no WAL position and no replicas.
  const fromStandby = await sampleDatabase(standby);
  assert.equal(fromStandby.sample.walBytes, null);
  assert.deepEqual(fromStandby.sample.replicas, []);

  await standby.query('SELECT pg_wal_replay_resume()');
  await waitFor('the standby to catch up', async () => {
    const { sample } = await sampleDatabase(primary, { baseline });
    return sample.replicas.find((r) => r.name === cluster.standbyName)?.lagBytes === 0 ? true : undefined;
  }, 20_000);
  assert.equal((await standby.query<{ n: string }>('SELECT count(*)::text AS n FROM events')).rows[0]!.n, '50000');
});
