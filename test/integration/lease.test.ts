import assert from 'node:assert/strict';
import { test } from 'node:test';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { approve, startMigration } from '../../src/client/api';
import { withClient } from '../../src/db/connection';
import { acquireLease, releaseLease } from '../../src/db/lease';
import { ensureLedger } from '../../src/db/ledger';
import { progressQuery } from '../../src/workflows/messages';
import { createTestDatabase, statementRunning } from '../helpers/database';
import { activitySteps } from '../helpers/histories';
import { runInProcess } from '../helpers/in-process-cli';
import { writeMigrations } from '../helpers/migrations';
import { services } from '../helpers/services';
import { sharedTestClient, testConfig, uniqueTaskQueue, withWorker } from '../helpers/temporal';
import { waitFor, workerPool } from '../helpers/workers';

const shared = sharedTestClient();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a worker whose lease expired while it was stopped (SIGSTOP) cannot write to the ledger after another holder took over', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const set = writeMigrations({ 'V1__fenced.sql': '-- pgconvoy:no-transaction\nSELECT pg_sleep(1) /* before the stop */;\nCREATE TABLE after_stop (id int);\n' });
  t.after(() => set.remove());
  const taskQueue = uniqueTaskQueue();
  const pool = workerPool({ taskQueue, databases: { fenced: db.url }, migrationsDir: set.dir, lease: { ttlMs: 2_000, renewEveryMs: 300 } });
  t.after(() => pool.stopAll());
  const a = pool.start();
  const handle = await startMigration({ client: shared.client, taskQueue }, { db: 'fenced', migrationsDir: set.dir });

  await waitFor('statement 1 to run', () => statementRunning(db, 'before the stop'), 60_000);
  a.kill('SIGSTOP');
  await waitFor('the lease to expire', async () => ((await db.query('SELECT 1 FROM pgconvoy.lease WHERE expires_at < now()')).rowCount ? true : undefined));
  // Another holder (a tool outside Temporal, say) takes the expired lease.
  const intruder = await withClient({ alias: 'fenced', url: db.url }, (c) => acquireLease(c, 'fenced', 'intruder', 60_000));
  a.kill('SIGCONT');
  await sleep(3_000);

  const tables = await db.query(`SELECT to_regclass('public.after_stop') AS t`);
  assert.equal(tables.rows[0]?.t, null, 'the stale worker did not run its next statement');
  const rows = await db.query<{ status: string; statements_done: number }>('SELECT status, statements_done FROM pgconvoy.history ORDER BY id');
  assert.deepEqual(rows.rows, [{ status: 'running', statements_done: 0 }], 'the stale worker wrote nothing to the ledger after the takeover');
  assert.match(a.output(), /LeaseLost/, 'the stale worker learned it lost the lease');

  // The run waits for the other holder, then takes the lease again and completes.
  await withClient({ alias: 'fenced', url: db.url }, (c) => releaseLease(c, { alias: 'fenced', token: intruder.token }));
  const result = await handle.result();
  assert.equal(result.status, 'applied');
  assert.equal((await db.query(`SELECT to_regclass('public.after_stop') IS NOT NULL AS t`)).rows[0]?.t, true);
  const final = await db.query<{ status: string }>('SELECT status FROM pgconvoy.history ORDER BY id');
  assert.deepEqual(final.rows.map((r) => r.status), ['failed', 'applied']);
  assert.equal((await db.query('SELECT 1 FROM pgconvoy.lease')).rowCount, 0);
});

test('a run waits for the lease another holder has, past the first attempts, answering queries meanwhile, and applies once it is released', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const set = writeMigrations({ 'V1__waited.sql': 'CREATE TABLE waited (id int);' });
  t.after(() => set.remove());
  const other = await withClient({ alias: 'held', url: db.url }, async (c) => {
    await ensureLedger(c);
    return acquireLease(c, 'held', 'elsewhere', 120_000);
  });
  const config = testConfig({ databases: { held: db.url }, migrationsDir: set.dir });
  await withWorker(config, async () => {
    const handle = await startMigration({ client: shared.client, taskQueue: config.temporal.taskQueue }, { db: 'held', migrationsDir: set.dir });
    // The lease is asked for inline; past its first few seconds of attempts each one waits on a workflow timer, and the run answers between them.
    await sleep(9_000);
    const asked = Date.now();
    const progress = await handle.query(progressQuery);
    assert.equal(progress.phase, 'locking');
    assert.ok(Date.now() - asked < 5_000, `the run answered a query while it waited (${Date.now() - asked} ms)`);
    assert.equal((await db.query(`SELECT to_regclass('public.waited') AS t`)).rows[0]?.t, null, 'nothing ran under the other holder');
    await withClient({ alias: 'held', url: db.url }, (c) => releaseLease(c, { alias: 'held', token: other.token }));
    const result = await handle.result();
    assert.equal(result.status, 'applied');
    const attempts = activitySteps(await handle.fetchHistory()).filter((s) => s.name === 'acquireLease');
    assert.ok(attempts.length >= 2 && attempts.every((s) => s.local), `the lease was asked for inline, again after a timer: ${JSON.stringify(attempts)}`);
  });
  assert.equal((await db.query(`SELECT to_regclass('public.waited') IS NOT NULL AS t`)).rows[0]?.t, true);
  assert.equal((await db.query('SELECT 1 FROM pgconvoy.lease')).rowCount, 0);
});

test('ten concurrent `pgconvoy up` for one database: exactly one workflow runs and all ten report its outcome', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const set = writeMigrations({ 'V1__slow.sql': 'CREATE TABLE crowd (id int);\nSELECT pg_sleep(2);\nINSERT INTO crowd VALUES (1);' });
  t.after(() => set.remove());
  const config = testConfig({ databases: { crowd: db.url }, migrationsDir: set.dir });
  const env = { ...services.temporalEnv, PGCONVOY_TASK_QUEUE: config.temporal.taskQueue, PGCONVOY_LOG_LEVEL: 'silent' };
  const results = await withWorker(config, () =>
    Promise.all(Array.from({ length: 10 }, () => runInProcess(['--migrations', set.dir, '--json', 'up', '--db', 'crowd'], env, set.dir))),
  );
  const outcomes = results.map((r) => {
    assert.equal(r.code, 0, r.stderr);
    const { runId, status, applied } = JSON.parse(r.stdout) as { runId: string; status: string; applied: Array<{ version: string }> };
    assert.match(runId, /^[0-9a-f-]{36}$/, 'each reports the run it attached to');
    return JSON.stringify({ runId, status, applied: applied.map((a) => a.version) });
  });
  assert.equal(new Set(outcomes).size, 1, `all ten report the same run and outcome:\n${outcomes.join('\n')}`);
  assert.match(outcomes[0]!, /"status":"applied","applied":\["1"\]/);
  const runs: string[] = [];
  for await (const w of shared.client.workflow.list({ query: `WorkflowId = 'pgconvoy/db/crowd'` })) runs.push(w.runId);
  assert.equal(runs.length, 1, 'exactly one workflow ran');
  assert.deepEqual((await db.query('SELECT id FROM crowd')).rows, [{ id: 1 }]);
});

test('no workflow input, result, update, query answer or failure in history carries a connection string or password', async (t) => {
  const password = 'Secr3t-in-url-9f2b';
  const db = await createTestDatabase({ password });
  t.after(() => db.drop());
  const set = writeMigrations({ 'V1__a.sql': 'CREATE TABLE a (id int);', 'V2__broken.sql': 'SELECT * FROM nowhere;' });
  t.after(() => set.remove());
  const config = testConfig({ databases: { secretive: db.url }, migrationsDir: set.dir });
  const pgconvoy = { client: shared.client, taskQueue: config.temporal.taskQueue };
  const { history, answers } = await withWorker(config, async () => {
    const handle = await startMigration(pgconvoy, { db: 'secretive', migrationsDir: set.dir, requireApproval: true });
    const answers: unknown[] = [];
    await waitFor('the approval wait', async () => {
      const p = await handle.query(progressQuery);
      answers.push(p);
      return p.phase === 'awaiting-approval' ? true : undefined;
    });
    answers.push(await approve(pgconvoy, 'secretive', { by: 'reviewer', note: 'looks fine' }));
    await handle.result().catch((e: unknown) => answers.push(String(e)));
    answers.push(await handle.query(progressQuery));
    return { history: await handle.fetchHistory(), answers };
  });
  const text = historyToJSON(history) + JSON.stringify(answers);
  assert.ok(text.includes('reviewer') && text.includes('MigrationFailed'), 'the history holds the approval and the failure');
  for (const secret of [password, db.url, 'postgres://', 'postgresql://', encodeURIComponent(password)]) {
    assert.ok(!text.includes(secret), `workflow history or a query answer contains ${JSON.stringify(secret)}`);
  }
});
