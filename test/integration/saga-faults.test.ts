import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { startMigration } from '../../src/client/api';
import { ExitCode, exitCodeForFailure } from '../../src/client/exit-codes';
import { summarizeFailure } from '../../src/client/failure';
import { withClient } from '../../src/db/connection';
import { fingerprint } from '../../src/db/fingerprint';
import { ensureLedger, insertHistory } from '../../src/db/ledger';
import { acquireLease, releaseLease } from '../../src/db/lease';
import type { MigrateDatabaseInput } from '../../src/contracts';
import { adminQuery, createTestDatabase, statementRunning, type TestDatabase } from '../helpers/database';
import { writeMigrations } from '../helpers/migrations';
import { sharedTestClient, testConfig, uniqueTaskQueue, withWorker } from '../helpers/temporal';
import { waitFor, workerPool } from '../helpers/workers';

const shared = sharedTestClient();

/**
 * A deferred constraint trigger on the ledger that sleeps inside COMMIT the
 * first time `when` matches: the transaction is committing, its client is
 * waiting for the answer, and a SIGKILL now lands exactly in the window
 * between the commit and the worker reporting it. It lives in the pgconvoy
 * schema, which backups and fingerprints leave out.
 */
async function slowCommitWhen(db: TestDatabase, event: 'INSERT' | 'UPDATE', when: string): Promise<void> {
  await withClient({ alias: 'fault', url: db.url }, (c) => ensureLedger(c));
  await db.query(`
    CREATE TABLE pgconvoy.test_commit_gate (fired boolean);
    CREATE FUNCTION pgconvoy.test_slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NOT EXISTS (SELECT 1 FROM pgconvoy.test_commit_gate) THEN
        INSERT INTO pgconvoy.test_commit_gate VALUES (true);
        PERFORM pg_notify('pgconvoy_test_commit', NEW.version::text);
        PERFORM pg_sleep(3);
      END IF;
      RETURN NULL;
    END $$;
    CREATE CONSTRAINT TRIGGER test_slow_commit AFTER ${event} ON pgconvoy.history DEFERRABLE INITIALLY DEFERRED
      FOR EACH ROW WHEN (${when}) EXECUTE FUNCTION pgconvoy.test_slow_commit();`);
}

/** A session of the test database is inside COMMIT, held there by the trigger. */
async function committing(db: TestDatabase): Promise<true | undefined> {
  const r = await adminQuery(`SELECT 1 FROM pg_stat_activity WHERE datname = '${db.name}' AND state = 'active' AND query = 'COMMIT' AND wait_event = 'PgSleep'`);
  return r.rowCount ? true : undefined;
}

/** Runs a migration on worker process A, SIGKILLs A while a ledger write is inside COMMIT, and lets worker B finish the run. */
async function killAtCommit(
  t: { after(fn: () => unknown): void },
  files: Record<string, string>,
  gate: { event: 'INSERT' | 'UPDATE'; when: string },
  input: Partial<MigrateDatabaseInput>,
  setup?: (db: TestDatabase) => Promise<unknown>,
) {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  await setup?.(db);
  const before = await withClient({ alias: 'fault', url: db.url }, (c) => fingerprint(c));
  await slowCommitWhen(db, gate.event, gate.when);
  const set = writeMigrations(files);
  t.after(() => set.remove());
  const taskQueue = uniqueTaskQueue();
  const pool = workerPool({ taskQueue, databases: { fault: db.url }, migrationsDir: set.dir });
  t.after(() => pool.stopAll());
  const a = pool.start();
  const handle = await startMigration({ client: shared.client, taskQueue }, { db: 'fault', migrationsDir: set.dir, ...input });
  await waitFor('a ledger write inside COMMIT', () => committing(db), 90_000);
  a.kill('SIGKILL');
  await a.exited;
  pool.start();
  const outcome = await handle.result().then(
    (result) => ({ result, failure: undefined }),
    (error: unknown) => {
      assert.ok(error instanceof WorkflowFailedError, String(error));
      return { result: undefined, failure: summarizeFailure(error) };
    },
  );
  const after = await withClient({ alias: 'fault', url: db.url }, (c) => fingerprint(c));
  const ledger = (await db.query<{ version: string; status: string; audited: boolean }>(
    `SELECT version::text, status, (fingerprint IS NOT NULL AND risk_level IS NOT NULL) AS audited FROM pgconvoy.history ORDER BY id`,
  )).rows;
  const history = await handle.fetchHistory();
  // A migration predicted short runs inline: the worker's death times out the workflow task it ran in, and the next worker runs it again.
  const retried = (history.events ?? []).filter((e) => (e.activityTaskStartedEventAttributes?.attempt ?? 1) > 1 || e.workflowTaskTimedOutEventAttributes).length;
  return { db, before, after, ledger, retried, ...outcome };
}

test('SIGKILL at the COMMIT of a migration, then a later one fails: the retry reports it applied, and the restore rolls it back in the ledger too', async (t) => {
  const { db, before, after, ledger, retried, failure } = await killAtCommit(
    t,
    { 'V1__a.sql': 'CREATE TABLE a (id int);', 'V2__b.sql': 'CREATE TABLE b (id int);\nINSERT INTO b VALUES (2);', 'V3__boom.sql': 'SELECT 1/0;' },
    { event: 'INSERT', when: `NEW.version = 2 AND NEW.status = 'applied'` },
    { onFailure: 'restore' },
    (d) => d.query('CREATE TABLE keep (id int PRIMARY KEY); INSERT INTO keep SELECT generate_series(1, 100);'),
  );
  assert.ok(retried >= 1, 'the migration whose COMMIT was cut off ran a second attempt');
  assert.ok(failure, 'the run fails on V3');
  assert.equal(failure.type, 'MigrationFailed');
  assert.match(failure.message, /^V3__boom\.sql \(version 3\) failed .*division by zero\ncompensated: restored from the verified backup fault\/\S+\.dump; the schema matches its fingerprint from before the run$/);
  assert.deepEqual((failure.details as { rolledBack: string[] }).rolledBack, ['1', '2']);
  assert.equal(after.sha256, before.sha256);
  assert.equal((await db.query(`SELECT to_regclass('public.b') AS t`)).rows[0]?.t, null, 'the restore removed what V2 created');
  assert.deepEqual((await db.query('SELECT count(*)::int AS n FROM keep')).rows, [{ n: 100 }]);
  assert.deepEqual(
    ledger.map(({ version, status }) => ({ version, status })),
    [
      { version: '1', status: 'rolled_back' },
      { version: '2', status: 'rolled_back' },
      { version: '3', status: 'failed' },
    ],
    'the ledger says V2 is rolled back: it is not in the database',
  );
  assert.ok(ledger.filter((r) => r.version !== '3').every((r) => r.audited), 'risk and fingerprint committed with each applied row, the cut-off one too');
  assert.equal((await db.query('SELECT 1 FROM pgconvoy.lease')).rowCount, 0);
});

test('SIGKILL at the COMMIT of an undo script: the retry finds it done and does not run it twice', async (t) => {
  const { db, before, after, ledger, retried, failure } = await killAtCommit(
    t,
    {
      'V1__a.sql': 'CREATE TABLE a (id int);',
      'U1__a.sql': 'DROP TABLE a;',
      // Not idempotent: run twice, it fails ("table b does not exist").
      'V2__b.sql': 'CREATE TABLE b (id int);',
      'U2__b.sql': 'DROP TABLE b;',
      'V3__boom.sql': 'SELECT 1/0;',
    },
    { event: 'UPDATE', when: `NEW.version = 2 AND NEW.status = 'rolled_back'` },
    { onFailure: 'undo' },
  );
  assert.ok(retried >= 1, 'the undo whose COMMIT was cut off ran a second attempt');
  assert.ok(failure);
  assert.match(failure.message, /\ncompensated: undo scripts of V1, V2 ran in reverse; the schema matches its fingerprint from before the run$/);
  assert.equal((failure.details as { compensated: string }).compensated, 'undo');
  assert.equal(after.sha256, before.sha256);
  assert.deepEqual(ledger.map(({ version, status }) => ({ version, status })), [
    { version: '1', status: 'rolled_back' },
    { version: '2', status: 'rolled_back' },
    { version: '3', status: 'failed' },
  ]);
  assert.equal((await db.query('SELECT 1 FROM pgconvoy.lease')).rowCount, 0);
});

test('a backup truncated during the run: the restore refuses it before touching anything, and the report says the backup was not used', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  await db.query('CREATE TABLE keep (id int PRIMARY KEY, note text); INSERT INTO keep SELECT g, repeat(md5(g::text), 20) FROM generate_series(1, 20000) g;');
  const set = writeMigrations({ 'V1__a.sql': 'CREATE TABLE a (id int);', 'V2__boom.sql': 'SELECT pg_sleep(2) /* before failing */;\nSELECT 1/0;' });
  t.after(() => set.remove());
  const config = testConfig({ databases: { cut: db.url }, migrationsDir: set.dir });
  const failure = await withWorker(config, async () => {
    const handle = await startMigration({ client: shared.client, taskQueue: config.temporal.taskQueue }, { db: 'cut', migrationsDir: set.dir });
    await waitFor('V2 to run', () => statementRunning(db, 'before failing'), 60_000);
    // A short read from the store: the backup file loses its last third.
    const dir = join(config.backup.store, 'cut');
    const dump = readdirSync(dir).find((f) => f.endsWith('.dump'));
    assert.ok(dump, `a backup in ${dir}`);
    truncateSync(join(dir, dump), Math.floor(statSync(join(dir, dump)).size * (2 / 3)));
    return handle.result().then(() => assert.fail('the run should fail'), summarizeFailure);
  });
  assert.equal(failure.type, 'CompensationFailed');
  assert.match(
    failure.message,
    /^V2__boom\.sql \(version 2\) failed at statement 2 of 2, .*division by zero\nCOMPENSATION FAILED \(restore\): .*\nthe database is NOT back to its state before the run: the backup cut\/\S+\.dump failed its check and was not used; the ledger says what is applied$/s,
  );
  assert.equal(exitCodeForFailure(failure.type, failure.details), ExitCode.failed);
  // Exactly as the failed run left it: V1 applied, every row and the primary key of the untouched table there.
  assert.equal((await db.query(`SELECT to_regclass('public.a') IS NOT NULL AS t`)).rows[0]?.t, true);
  assert.deepEqual((await db.query('SELECT count(*)::int AS n FROM keep')).rows, [{ n: 20000 }]);
  assert.equal((await db.query(`SELECT count(*)::int AS n FROM pg_constraint WHERE conrelid = 'public.keep'::regclass AND contype = 'p'`)).rows[0]?.n, 1);
  assert.deepEqual(
    (await db.query<{ version: string; status: string }>('SELECT version::text, status FROM pgconvoy.history ORDER BY id')).rows,
    [
      { version: '1', status: 'applied' },
      { version: '2', status: 'failed' },
    ],
    'the ledger says what is really there',
  );
  const idle = await adminQuery(`SELECT pid FROM pg_stat_activity WHERE datname = '${db.name}' AND state LIKE 'idle in transaction%'`);
  assert.equal(idle.rowCount, 0, 'no session left idle in transaction');
  const children = execFileSync('ps', ['-o', 'comm=', '--ppid', String(process.pid)]).toString();
  assert.doesNotMatch(children, /pg_restore|psql/, `no pg_restore or psql left running: ${children}`);
});

test('a run that lost its lease while someone else changed the database does not restore its older backup over their work', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const set = writeMigrations({
    'V1__a.sql': 'CREATE TABLE a (id int);',
    'V2__steps.sql': '-- pgconvoy:no-transaction\nSELECT pg_sleep(1.5) /* before the stop */;\nSELECT 1/0;\n',
  });
  t.after(() => set.remove());
  const taskQueue = uniqueTaskQueue();
  const pool = workerPool({ taskQueue, databases: { shared: db.url }, migrationsDir: set.dir, lease: { ttlMs: 2_000, renewEveryMs: 300 } });
  t.after(() => pool.stopAll());
  const a = pool.start();
  const handle = await startMigration({ client: shared.client, taskQueue }, { db: 'shared', migrationsDir: set.dir });
  await waitFor('V2 to run', () => statementRunning(db, 'before the stop'), 60_000);
  a.kill('SIGSTOP');
  await waitFor('the lease to expire', async () => ((await db.query('SELECT 1 FROM pgconvoy.lease WHERE expires_at < now()')).rowCount ? true : undefined));
  // Someone else (another cluster's run, a tool outside Temporal) takes the lease and changes the database.
  await withClient({ alias: 'shared', url: db.url }, async (c) => {
    const other = await acquireLease(c, 'shared', 'elsewhere', 60_000);
    await c.query('CREATE TABLE theirs (id int); INSERT INTO theirs VALUES (42);');
    await insertHistory(c, { version: '100', description: 'theirs', file: 'V100__theirs.sql', checksum: 'e'.repeat(64), status: 'applied', startedAt: new Date(), executionMs: 1, workflowId: 'elsewhere', runId: 'their-run' });
    await releaseLease(c, { alias: 'shared', token: other.token });
  });
  a.kill('SIGCONT');
  const failure = await handle.result().then(() => assert.fail('the run should fail'), summarizeFailure);
  assert.equal(failure.type, 'CompensationFailed');
  assert.match(failure.message, /division by zero\nNOT COMPENSATED: other runs changed the database after this run's backup: V100 \(applied, run their-run\); restoring it/);
  assert.deepEqual((await db.query('SELECT id FROM theirs')).rows, [{ id: 42 }], 'their work is still there');
  assert.equal((await db.query(`SELECT to_regclass('public.a') IS NOT NULL AS t`)).rows[0]?.t, true, 'and this run’s V1, as the ledger says');
  const ledger = (await db.query<{ version: string; status: string }>(`SELECT version::text, status FROM pgconvoy.history WHERE status = 'applied' ORDER BY version`)).rows;
  assert.deepEqual(ledger, [{ version: '1', status: 'applied' }, { version: '100', status: 'applied' }]);
  assert.equal((await db.query('SELECT 1 FROM pgconvoy.lease')).rowCount, 0);
});

test('a worker that stops (a short command ending, a deploy) abandons the migration it runs at once instead of finishing it first; the next worker completes it', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const set = writeMigrations({ 'V1__slow.sql': 'CREATE TABLE slow (id int);\nSELECT pg_sleep(60) /* abandoned */;' });
  t.after(() => set.remove());
  const config = testConfig({ databases: { slow: db.url }, migrationsDir: set.dir });
  let stoppedAt = 0;
  const handle = await withWorker(config, async () => {
    const h = await startMigration({ client: shared.client, taskQueue: config.temporal.taskQueue }, { db: 'slow', migrationsDir: set.dir });
    await waitFor('the slow statement', () => statementRunning(db, 'abandoned'), 60_000);
    stoppedAt = Date.now();
    return h;
  });
  const shutdownMs = Date.now() - stoppedAt;
  assert.ok(shutdownMs < 15_000, `the worker stopped in ${shutdownMs} ms, without waiting for the 60 s statement`);
  assert.equal((await db.query(`SELECT to_regclass('public.slow') AS t`)).rows[0]?.t, null, 'nothing of it was committed');
  await handle.terminate();
});
