import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ExitCode } from '../../src/client/exit-codes';
import { startMigration } from '../../src/client/api';
import { summarizeFailure } from '../../src/client/failure';
import { approveSignal, cancelSignal, progressQuery } from '../../src/workflows/messages';
import { type TestDatabase } from '../helpers/database';
import { testClient, withWorker } from '../helpers/temporal';
import { waitFor } from '../helpers/workers';
import { cliFixture } from '../helpers/cli-fixture';

/** Each test uses its own alias: a query to a finished run of another test would wait for that test's (gone) worker. */
async function fixture(t: { after(fn: () => unknown): void }, files: Record<string, string>, alias: string, seed?: (db: TestDatabase) => Promise<unknown>) {
  const f = await cliFixture(t, files, alias, seed);
  const { client, close } = await testClient();
  t.after(close);
  const phase = async () => (await client.workflow.getHandle(`pgconvoy/db/${alias}`).query(progressQuery).catch(() => undefined))?.phase;
  return { ...f, phase };
}

test('--approval-timeout also bounds a wait of the risk gate (without --require-approval)', async (t) => {
  const { db, config, cli } = await fixture(
    t,
    { 'V1__rename.sql': 'ALTER TABLE accounts RENAME COLUMN balance TO balance_cents;\n' },
    'risk-timeout',
    (d) => d.query('CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL, balance integer NOT NULL)'),
  );
  await withWorker(config, async () => {
    const up = cli('up', '--db', 'risk-timeout', '--approval-timeout', '2s');
    const timer = new Promise<'waited'>((resolve) => setTimeout(() => resolve('waited'), 60_000).unref());
    const first = await Promise.race([up, timer]);
    if (first === 'waited') {
      await cli('cancel', '--db', 'risk-timeout');
      await up;
      assert.fail('the risk-gated run ignored --approval-timeout 2s and still waited after a minute');
    }
    assert.equal(first.code, ExitCode.failed, first.stderr);
    assert.match(first.stderr, /\[ApprovalTimedOut\] nobody approved the migration of "risk-timeout" within 2 s; nothing ran/);
  });
  assert.deepEqual((await db.query(`SELECT column_name FROM information_schema.columns WHERE table_name = 'accounts' AND column_name = 'balance'`)).rowCount, 1);
});

test('after `pgconvoy cancel`, the waiting `up` says who cancelled, why and what was applied', async (t) => {
  const { config, cli, phase } = await fixture(t, { 'V1__a.sql': 'CREATE TABLE a (id int);' }, 'cancel-told');
  await withWorker(config, async () => {
    const up = cli('up', '--db', 'cancel-told', '--require-approval');
    await waitFor('the approval wait', async () => ((await phase()) === 'awaiting-approval' ? true : undefined));
    const cancelled = await cli('cancel', '--db', 'cancel-told', '--by', 'oncall', '--reason', 'release postponed');
    assert.equal(cancelled.code, ExitCode.ok, cancelled.stderr);
    const result = await up;
    assert.equal(result.code, ExitCode.cancelled, result.stderr);
    assert.match(result.stderr, /\npgconvoy: cancelled by oncall \(release postponed\): nothing was applied; database "cancel-told" is at no version\n$/);
  });
});

test('approve and cancel: nothing running and a refused message exit 6 with the reason; cancel is refused while verifying and compensating', async (t) => {
  const verifying = await fixture(
    t,
    { 'V1__a.sql': 'CREATE TABLE a (id int);', 'checks/slow.sql': "SELECT x FROM (SELECT pg_sleep(4)::text AS x) s WHERE x = 'never'" },
    'refuse-verifying',
  );
  await withWorker(verifying.config, async () => {
    const none = await verifying.cli('cancel', '--db', 'refuse-verifying');
    assert.equal(none.code, ExitCode.notApplicable, none.stderr);
    assert.equal(none.stderr, 'pgconvoy: no migration of "refuse-verifying" is running\n');
    const noneJson = await verifying.cli('approve', '--db', 'refuse-verifying', '--json');
    assert.equal(noneJson.code, ExitCode.notApplicable, noneJson.stderr);
    assert.deepEqual(JSON.parse(noneJson.stdout), { status: 'rejected', reason: 'no-run', message: 'no migration of "refuse-verifying" is running' });

    const up = verifying.cli('up', '--db', 'refuse-verifying');
    await waitFor('verification', async () => ((await verifying.phase()) === 'verifying' ? true : undefined));
    const cancel = await verifying.cli('cancel', '--db', 'refuse-verifying', '--by', 'oncall');
    assert.equal(cancel.code, ExitCode.notApplicable, cancel.stdout + cancel.stderr);
    assert.match(cancel.stderr, /^pgconvoy: too late to cancel: every migration is applied and the run is verifying them/);
    const approve = await verifying.cli('approve', '--db', 'refuse-verifying');
    assert.equal(approve.code, ExitCode.notApplicable, approve.stderr);
    assert.equal(approve.stderr, 'pgconvoy: nothing to approve: the run is verifying\n');
    const result = await up;
    assert.equal(result.code, ExitCode.ok, result.stderr);
  });

  const compensating = await fixture(
    t,
    { 'V1__a.sql': 'CREATE TABLE a (id int);', 'U1__a.sql': 'SELECT pg_sleep(4);\nDROP TABLE a;', 'V2__boom.sql': 'SELECT 1 / 0;' },
    'refuse-compensating',
  );
  await withWorker(compensating.config, async () => {
    const up = compensating.cli('up', '--db', 'refuse-compensating', '--on-failure', 'undo');
    await waitFor('compensation', async () => ((await compensating.phase()) === 'compensating' ? true : undefined));
    const cancel = await compensating.cli('cancel', '--db', 'refuse-compensating');
    assert.equal(cancel.code, ExitCode.notApplicable, cancel.stdout + cancel.stderr);
    assert.match(cancel.stderr, /^pgconvoy: too late to cancel: the run failed and is rolling back what it applied/);
    const result = await up;
    assert.equal(result.code, ExitCode.rolledBack, result.stderr);
  });
});

test('approve and cancel as signals (what a parent workflow can send): the same logic as the updates, a signal that does not apply is recorded, not obeyed', async (t) => {
  const { db, config, phase } = await fixture(t, { 'V1__a.sql': 'CREATE TABLE a (id int);' }, 'by-signal');
  const { client, close } = await testClient();
  t.after(close);
  const pgconvoy = { client, taskQueue: config.temporal.taskQueue };
  await withWorker(config, async () => {
    const handle = await startMigration(pgconvoy, { db: 'by-signal', migrationsDir: config.migrationsDir, requireApproval: true });
    await waitFor('the approval wait', async () => ((await phase()) === 'awaiting-approval' ? true : undefined));
    await handle.signal(approveSignal, { by: 'rollout/wave-1', note: 'wave approved' });
    const result = await handle.result();
    assert.equal(result.status, 'applied');
    assert.equal(result.status === 'applied' ? result.approvedBy : undefined, 'rollout/wave-1');
    // Too late: the run is done; a signal to a finished run is refused by Temporal itself.
    await assert.rejects(handle.signal(cancelSignal, { by: 'rollout' }));
  });
  assert.equal((await db.query(`SELECT approved_by FROM pgconvoy.history WHERE version = 1`)).rows[0]?.approved_by, 'rollout/wave-1');

  const early = await fixture(t, { 'V1__a.sql': 'CREATE TABLE a (id int);\nSELECT pg_sleep(2);' }, 'signal-refused');
  await withWorker(early.config, async () => {
    const handle = await startMigration({ client, taskQueue: early.config.temporal.taskQueue }, { db: 'signal-refused', migrationsDir: early.config.migrationsDir });
    await waitFor('the migration', async () => ((await early.phase()) === 'applying' ? true : undefined));
    await handle.signal(approveSignal, { by: 'rollout' });
    const progress = await handle.query(progressQuery);
    assert.deepEqual(progress.refusedSignals, [{ signal: 'approve', by: 'rollout', reason: 'nothing to approve: the run is applying' }]);
    assert.equal((await handle.result()).status, 'applied');
  });
});

test('a run pinned to a manifest digest refuses another set before anything runs', async (t) => {
  const { db, config } = await fixture(t, { 'V1__a.sql': 'CREATE TABLE a (id int);' }, 'pinned');
  const { client, close } = await testClient();
  t.after(close);
  const pgconvoy = { client, taskQueue: config.temporal.taskQueue };
  const error = await withWorker(config, async () => {
    const handle = await startMigration(pgconvoy, { db: 'pinned', migrationsDir: config.migrationsDir, expect: { manifestDigest: 'f'.repeat(64) } });
    return handle.result().then(
      () => assert.fail('a run pinned to another set ran'),
      (e: unknown) => e,
    );
  });
  const failure = summarizeFailure(error);
  assert.equal(failure.type, 'ManifestChanged');
  assert.match(failure.message, /^refusing to migrate "pinned": the run was pinned to manifest ffffffffffff, but the worker reads [0-9a-f]{12} in .*; nothing ran$/);
  assert.equal((await db.query(`SELECT 1 FROM pg_namespace WHERE nspname = 'pgconvoy'`)).rowCount, 0, 'not even the lease was taken');
});

test('cancel is refused, not acknowledged and ignored, while the last migration or a --group transaction runs', async (t) => {
  const last = await fixture(t, { 'V1__a.sql': 'CREATE TABLE a (id int);', 'V2__slow.sql': 'SELECT pg_sleep(4);\nCREATE TABLE b (id int);' }, 'cancel-last');
  await withWorker(last.config, async () => {
    const up = last.cli('up', '--db', 'cancel-last');
    const { client, close } = await testClient();
    t.after(close);
    await waitFor('the last migration', async () => {
      const p = await client.workflow.getHandle('pgconvoy/db/cancel-last').query(progressQuery).catch(() => undefined);
      return p?.phase === 'applying' && p.current?.version === '2' ? true : undefined;
    });
    const cancel = await last.cli('cancel', '--db', 'cancel-last');
    assert.equal(cancel.code, ExitCode.notApplicable, cancel.stdout + cancel.stderr);
    assert.match(cancel.stderr, /^pgconvoy: too late to cancel: the last pending migration \(V2\) is running, and a run is never stopped mid-migration/);
    const result = await up;
    assert.equal(result.code, ExitCode.ok, result.stderr);
  });

  const group = await fixture(t, { 'V1__a.sql': 'CREATE TABLE a (id int);', 'V2__slow.sql': 'SELECT pg_sleep(4);' }, 'cancel-group');
  await withWorker(group.config, async () => {
    const up = group.cli('up', '--db', 'cancel-group', '--group');
    await waitFor('the group transaction', async () => ((await group.phase()) === 'applying' ? true : undefined));
    const cancel = await group.cli('cancel', '--db', 'cancel-group');
    assert.equal(cancel.code, ExitCode.notApplicable, cancel.stdout + cancel.stderr);
    assert.match(cancel.stderr, /^pgconvoy: too late to cancel: the --group run applies every pending migration in one transaction, running now/);
    const result = await up;
    assert.equal(result.code, ExitCode.ok, result.stderr);
  });
});
