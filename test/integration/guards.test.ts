import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { migrate, startMigration } from '../../src/client/api';
import { summarizeFailure } from '../../src/client/failure';
import type { Guards } from '../../src/config/config';
import type { GuardCrossedDetails, RolloutStatus, WaitHealthyResult } from '../../src/contracts';
import { getRollout, startRollout } from '../../src/client/rollout';
import { cliFixture } from '../helpers/cli-fixture';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { rolloutReaches } from '../helpers/fleet';
import { writeMigrations } from '../helpers/migrations';
import { runInProcess } from '../helpers/in-process-cli';
import { startPrimaryWithStandby } from '../helpers/standby';
import { sharedTestClient, testConfig, withWorker } from '../helpers/temporal';
import { waitFor } from '../helpers/workers';

const shared = sharedTestClient();

interface Failure {
  applicationFailureInfo?: { type?: string | null; details?: { payloads?: unknown[] | null } | null } | null;
  cause?: Failure | null;
}

/** What the run's history says of its guards: each GuardCrossed failure's details (a step stopped or not started) and each waitHealthy result (a hold that ended). */
async function guardHistory(alias: string): Promise<{ crossed: GuardCrossedDetails[]; waits: WaitHealthyResult[] }> {
  const history = await shared.client.workflow.getHandle(`pgconvoy/db/${alias}`).fetchHistory();
  const converter = shared.client.options.loadedDataConverter.payloadConverter;
  const crossed: GuardCrossedDetails[] = [];
  const waits: WaitHealthyResult[] = [];
  const scheduled = new Map<string, string>();
  for (const e of history.events ?? []) {
    if (e.activityTaskScheduledEventAttributes) scheduled.set(String(e.eventId), e.activityTaskScheduledEventAttributes.activityType?.name ?? '');
    const completed = e.activityTaskCompletedEventAttributes;
    if (completed && scheduled.get(String(completed.scheduledEventId)) === 'waitHealthy') waits.push(converter.fromPayload(completed.result!.payloads![0]!));
    // A step's failure: an activity's, or a local activity's in its marker.
    for (let f: Failure | null | undefined = (e.activityTaskFailedEventAttributes?.failure ?? e.markerRecordedEventAttributes?.failure); f; f = f.cause) {
      if (f.applicationFailureInfo?.type === 'GuardCrossed') crossed.push(converter.fromPayload(f.applicationFailureInfo.details!.payloads![0]!));
    }
  }
  return { crossed, waits };
}

const guarded = (alias: string, guards: Partial<Guards>) => ({ watch: { intervalMs: 250, longQueryMs: 1_000 }, guards: { [alias]: { guardTimeoutMs: 60_000, ...guards } } });

async function connect(t: { after(fn: () => unknown): void }, url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  t.after(() => client.end().catch(() => undefined));
  return client;
}

test('guards: a real standby whose replay is paused while the migration writes: status --watch shows its lag, maxReplicationLagMs holds the run, and it goes on when replay resumes', async (t) => {
  const cluster = await startPrimaryWithStandby();
  const alias = 'replicated';
  const f = await cliFixture(
    t,
    {
      'V1__events.sql': 'CREATE TABLE events (id int PRIMARY KEY, payload text);',
      // It writes, then goes on a while (as a long backfill would): the lag grows while it runs.
      'V2__fill.sql': `INSERT INTO events SELECT g, repeat('w', 200) FROM generate_series(1, 60000) g;\nSELECT pg_sleep(4);`,
      'V3__events_payload.sql': 'CREATE INDEX events_payload ON events (payload);',
    },
    alias,
    undefined,
    { adminUrl: cluster.primaryUrl, config: guarded(alias, { maxReplicationLagMs: 1_000 }) },
  ).catch((error: unknown) => {
    cluster.stop();
    throw error;
  });
  // Stopped after the fixture's own cleanup (a test's after-hooks run in the order they were added): its database is on this primary.
  t.after(() => cluster.stop());
  const standby = await connect(t, cluster.standbyUrl);
  await standby.query('SELECT pg_wal_replay_pause()');

  await withWorker(f.config, async () => {
    const pgconvoy = { client: shared.client, taskQueue: f.config.temporal.taskQueue };
    const handle = await startMigration(pgconvoy, { db: alias, migrationsDir: f.set.dir });
    const live = { stderr: '' };
    const watching = runInProcess(['--migrations', f.set.dir, 'status', '--db', alias, '--watch'], f.env, f.set.dir, live);
    // The run holds: status --watch says so, with the standby's lag from the watch.
    await waitFor('status --watch to show the hold', () => Promise.resolve(/held by its guards: maxReplicationLagMs \d+ > 1000 \(standby1\)/.test(live.stderr) ? true : undefined), 60_000);
    assert.match(live.stderr, /watch: blocked 0, lock wait [\d.]+ s, size [\d.]+ MB \(\+[\d.]+ MB\), WAL [\d.]+ MB, standby1 lag [\d.]+ s \([\d.]+ MB\)/);
    const heldAt = await f.db.query<{ applied: string }>(`SELECT count(*)::text AS applied FROM pgconvoy.history WHERE status = 'applied'`);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const stillHeld = await f.db.query<{ applied: string }>(`SELECT count(*)::text AS applied FROM pgconvoy.history WHERE status = 'applied'`);
    assert.equal(stillHeld.rows[0]!.applied, heldAt.rows[0]!.applied, 'nothing applied while the run holds');

    await standby.query('SELECT pg_wal_replay_resume()');
    const result = await handle.result();
    assert.equal(result.status, 'applied');
    const watched = await watching;
    assert.equal(watched.code, 0, watched.stderr);
    assert.match(live.stderr, /phase applying/);
  });
  const history = await f.db.query<{ version: string; status: string }>(`SELECT version::text, status FROM pgconvoy.history ORDER BY id`);
  assert.deepEqual(history.rows.map((r) => [r.version, r.status]), [['1', 'applied'], ['2', 'applied'], ['3', 'applied']], 'each version applied once, no failure recorded');
  const { crossed, waits } = await guardHistory(alias);
  assert.ok(crossed.length >= 1 && crossed.every((c) => c.crossings.some((x) => x.guard === 'maxReplicationLagMs' && x.replica === 'standby1')), JSON.stringify(crossed));
  assert.equal(waits.at(-1)?.healthy, true, 'the last hold ended healthy');
  // The same database on the standby (the replica of the one the run migrates).
  const replica = await waitFor('the standby to have the database', () => connect(t, Object.assign(new URL(cluster.standbyUrl), { pathname: new URL(f.db.url).pathname }).toString()).catch(() => undefined), 30_000);
  const replayed = async () => {
    if ((await replica.query<{ here: boolean }>(`SELECT to_regclass('events') IS NOT NULL AS here`)).rows[0]!.here !== true) return undefined;
    return (await replica.query<{ n: string }>('SELECT count(*)::text AS n FROM events')).rows[0]!.n === '60000' ? true : undefined;
  };
  await waitFor('the standby to replay the run', replayed, 30_000);
});

/** The application: a loop of reads on the table being altered, until the test ends. */
function appLoop(t: { after(fn: () => unknown): void }, app: pg.Client): () => Promise<void> {
  let running = true;
  const loop = (async () => {
    while (running) {
      await app.query('SELECT count(*) FROM orders').catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  const stop = async () => {
    running = false;
    await loop;
  };
  t.after(stop);
  return stop;
}

const orders = `CREATE TABLE orders (id int PRIMARY KEY, total int);\nINSERT INTO orders SELECT g, g FROM generate_series(1, 1000) g;\nCREATE SEQUENCE v2_attempts;`;

/** Migrates `alias` while an application reads the table, with maxBlockedSessions 0; asserts the one cancelled attempt, the hold and the ledger. */
async function blockedRun(t: { after(fn: () => unknown): void }, alias: string, files: Record<string, string>) {
  const f = await cliFixture(t, { 'V1__orders.sql': orders, ...files }, alias, undefined, { config: guarded(alias, { maxBlockedSessions: 0 }) });
  const app = await connect(t, f.db.url);
  const appPid = (await app.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  const stopApp = appLoop(t, app);
  const started = Date.now();
  const result = await withWorker(f.config, () => migrate({ client: shared.client, taskQueue: f.config.temporal.taskQueue }, { db: alias, migrationsDir: f.set.dir }));
  assert.equal(result.status, 'applied');
  assert.ok(Date.now() - started < 20_000, 'the first attempt was cancelled, not waited out');
  await stopApp();

  const { crossed, waits } = await guardHistory(alias);
  assert.equal(crossed.length, 1, JSON.stringify(crossed));
  const held = crossed[0]!;
  assert.equal(held.cancelled, true, 'the running statement was cancelled');
  assert.deepEqual(held.crossings.map((c) => c.guard), ['maxBlockedSessions']);
  assert.ok(held.sample.blocked.pids.includes(appPid), `the application's session is the one blocked: ${JSON.stringify(held.sample.blocked)}`);
  assert.ok(held.sample.longestLockWaitMs > 0 && held.sample.blocked.longestWaitMs > 0, 'and waits for a lock, as the watch saw');
  assert.deepEqual(waits.map((w) => w.healthy), [true], 'one hold, ended by a healthy sample');
  assert.equal((await f.db.query<{ n: string }>(`SELECT last_value::text AS n FROM v2_attempts`)).rows[0]!.n, '2', 'V2 ran twice: cancelled, then again');
  const history = await f.db.query<{ version: string; status: string }>(`SELECT version::text, status FROM pgconvoy.history ORDER BY id`);
  assert.deepEqual(history.rows.map((r) => [r.version, r.status]), [['1', 'applied'], ['2', 'applied']], 'the cancelled attempt is not a failure in the ledger');
  assert.equal((await f.db.query<{ n: string }>(`SELECT count(*)::text AS n FROM orders WHERE note = 'n'`)).rows[0]!.n, '1000');
  return f;
}

test('guards: an application session blocked behind the migration shows in the watch, and maxBlockedSessions cancels the statement, holds and runs it again', async (t) => {
  // Slow on its first attempt only: it holds the table's lock while it waits, as a long rewrite would.
  await blockedRun(t, 'blockedapp', { 'V2__orders_note.sql': `ALTER TABLE orders ADD COLUMN note text;\nSELECT CASE WHEN nextval('v2_attempts') = 1 THEN pg_sleep(20) END;\nUPDATE orders SET note = 'n';` });
});

test('guards: a cancel that lands in an afterEachMigrate hook is the same hold, not a failed version or hook', async (t) => {
  const slowOnce = `DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'note') THEN
    IF nextval('v2_attempts') = 1 THEN PERFORM pg_sleep(20); END IF;
  END IF;
END $$;`;
  const f = await blockedRun(t, 'blockedhook', { 'V2__orders_note.sql': `ALTER TABLE orders ADD COLUMN note text;\nUPDATE orders SET note = 'n';`, 'hooks/afterEachMigrate.sql': slowOnce });
  const runs = await f.db.query<{ version: string; status: string }>(`SELECT version::text, status FROM pgconvoy.hook_runs ORDER BY id`);
  assert.deepEqual(runs.rows.map((r) => [r.version, r.status]), [['1', 'ok'], ['2', 'ok']]);
});

test('guards: a guard still crossed after guardTimeoutMs fails the run, with the sample in the report, and the run is compensated', async (t) => {
  const alias = 'growing';
  const f = await cliFixture(
    t,
    {
      'V1__blobs.sql': `CREATE TABLE blobs (id int, body text);\nINSERT INTO blobs SELECT g, repeat(md5(g::text), 40) FROM generate_series(1, 20000) g;`,
      'V2__blobs_id.sql': 'CREATE INDEX blobs_id ON blobs (id);',
    },
    alias,
    undefined,
    { config: guarded(alias, { maxDatabaseGrowthBytes: 1_000_000, guardTimeoutMs: 1_500 }) },
  );
  const error = await withWorker(f.config, () => migrate({ client: shared.client, taskQueue: f.config.temporal.taskQueue }, { db: alias, migrationsDir: f.set.dir }).then(() => assert.fail('the run should fail'), (e: unknown) => e));
  const failure = summarizeFailure(error);
  assert.equal(failure.type, 'GuardTimeout', failure.message);
  assert.match(failure.message, /"growing" stayed past its guards for 1500 ms \(guardTimeoutMs\): maxDatabaseGrowthBytes \d+ > 1000000; last sample: blocked 0, lock wait [\d.]+ s, size [\d.]+ MB \(\+[\d.]+ MB\)/);
  // Compensated from the backup: as before the run.
  assert.equal((await f.db.query(`SELECT to_regclass('public.blobs') AS t`)).rows[0]?.t, null);
  const { crossed, waits } = await guardHistory(alias);
  assert.deepEqual(crossed.map((c) => [c.cancelled, c.crossings.map((x) => x.guard)]), [[false, ['maxDatabaseGrowthBytes']]], 'V2 never started');
  assert.deepEqual(waits.map((w) => w.healthy), [false]);
});

test('guards in a rollout: the canary holds while its server’s standby lags, the rollout’s status shows why with the sample, the next database waits, and all go on when replay resumes', async (t) => {
  const cluster = await startPrimaryWithStandby();
  const made: TestDatabase[] = [];
  t.after(async () => {
    for (const db of made) await db.drop();
    cluster.stop();
  });
  for (let i = 0; i < 2; i++) made.push(await createTestDatabase({ adminUrl: cluster.primaryUrl }));
  const set = writeMigrations({
    'V1__events.sql': 'CREATE TABLE events (id int PRIMARY KEY, payload text);',
    'V2__fill.sql': `INSERT INTO events SELECT g, repeat('w', 200) FROM generate_series(1, 20000) g;\nSELECT pg_sleep(2);`,
  });
  t.after(() => set.remove());
  const aliases = ['lag-a', 'lag-b'];
  const limits = { maxReplicationLagMs: 1_000, guardTimeoutMs: 60_000 };
  const config = testConfig({
    databases: { 'lag-a': made[0]!.url, 'lag-b': made[1]!.url },
    migrationsDir: set.dir,
    watch: { intervalMs: 250, longQueryMs: 1_000 },
    guards: { 'lag-a': limits, 'lag-b': limits },
  });
  const standby = await connect(t, cluster.standbyUrl);
  await standby.query('SELECT pg_wal_replay_pause()');
  await withWorker(config, async () => {
    const { handle } = await startRollout({ client: shared.client, taskQueue: config.temporal.taskQueue }, {
      deployId: 'lagging-1',
      migrationsDir: set.dir,
      targets: aliases,
      strategy: { canary: { count: 1 }, bakeMs: 0, waveSize: { count: 1 }, maxParallel: 1, maxFailures: { count: 1 }, onFailure: 'halt', approveWaves: false },
    });
    // The first database to hold for its guards: the canary, unless its hold cleared between two of the standby's reports and the next one holds.
    const heldRow = (s: RolloutStatus) => s.databases.find((d) => /^its guards: maxReplicationLagMs \d+ > 1000 \(standby1\)$/.test(d.waitingFor ?? ''));
    const held = await rolloutReaches(shared.client, config, 'lagging-1', 'a database to hold for its guards', (s) => heldRow(s) !== undefined).catch(async (error: unknown) => {
      const now = await getRollout({ client: shared.client, taskQueue: config.temporal.taskQueue }, 'lagging-1').catch(() => null);
      throw new Error(`${(error as Error).message}; the rollout: ${JSON.stringify(now?.databases)}`);
    });
    const holding = heldRow(held)!;
    assert.ok((holding.watch?.replicas.find((r) => r.name === 'standby1')?.replayLagMs ?? 0) > 1_000, JSON.stringify(holding.watch));
    // Every database after it waits.
    for (const alias of aliases.slice(aliases.indexOf(holding.db) + 1)) assert.equal(held.databases.find((d) => d.db === alias)?.state, 'pending', `${alias} waits for ${holding.db}`);
    await standby.query('SELECT pg_wal_replay_resume()');
    const result = await handle.result();
    assert.equal(result.status, 'completed', JSON.stringify(result.databases, null, 2));
    assert.ok(result.databases.every((d) => d.version === '2' && d.waitingFor === null));
  });
});
