import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ExitCode } from '../../src/client/exit-codes';
import { progressQuery } from '../../src/workflows/messages';
import { maybeRecordHistory } from '../helpers/histories';
import { runInProcess } from '../helpers/in-process-cli';
import { testClient, withWorker } from '../helpers/temporal';
import { waitFor } from '../helpers/workers';
import { cliFixture } from '../helpers/cli-fixture';

/** Each test uses its own alias: a query to a finished run of another test would wait for that test's (gone) worker. */
async function fixture(t: { after(fn: () => unknown): void }, files: Record<string, string>, alias: string) {
  const f = await cliFixture(t, files, alias);
  const { client, close } = await testClient();
  t.after(close);
  const history = () => client.workflow.getHandle(`pgconvoy/db/${alias}`).fetchHistory();
  const phase = async () => (await client.workflow.getHandle(`pgconvoy/db/${alias}`).query(progressQuery).catch(() => undefined))?.phase;
  return { ...f, phase, history };
}

test('--require-approval waits, status says why, and `pgconvoy approve` lets it run, recording who approved', async (t) => {
  const { db, config, cli, env, phase, history } = await fixture(t, { 'V1__a.sql': 'CREATE TABLE a (id int);' }, 'gated');
  await withWorker(config, async () => {
    const live = { stderr: '' };
    const up = runInProcess(['--migrations', config.migrationsDir, 'up', '--db', 'gated', '--require-approval'], env, config.migrationsDir, live);
    await waitFor('the approval wait', async () => ((await phase()) === 'awaiting-approval' ? true : undefined));
    assert.equal((await db.query(`SELECT to_regclass('public.a') AS t`)).rows[0]?.t, null, 'nothing ran before approval');
    const status = await cli('status', '--db', 'gated');
    assert.match(status.stdout, /running: phase awaiting-approval, 0\/1 done — waiting for approval since \S+ \(the run was started with --require-approval\); approve with `pgconvoy approve --db gated`/);
    const tooEarly = await cli('cancel', '--db', 'nobody');
    assert.equal(tooEarly.code, ExitCode.notApplicable);
    assert.match(tooEarly.stderr, /no migration of "nobody" is running/);

    await waitFor('up to announce the wait', () => Promise.resolve(live.stderr.includes('waiting for approval since') ? true : undefined));
    const approved = await cli('approve', '--db', 'gated', '--by', 'dba@example', '--note', 'reviewed in PR 7');
    assert.equal(approved.code, ExitCode.ok, approved.stderr);
    assert.equal(approved.stdout, 'approved the migration of "gated" as dba@example (the run was awaiting-approval)\n');
    const result = await up;
    assert.equal(result.code, ExitCode.ok, result.stderr);
    assert.match(result.stderr, /pgconvoy: waiting for approval since \S+:\n  the run was started with --require-approval\napprove with `pgconvoy approve --db gated`, or stop with `pgconvoy cancel --db gated`\n/);
    const again = await cli('approve', '--db', 'gated');
    assert.equal(again.code, ExitCode.notApplicable, 'nothing waits any more');
    maybeRecordHistory('migrate-database-approved', await history());
  });
  assert.equal((await db.query(`SELECT to_regclass('public.a') IS NOT NULL AS t`)).rows[0]?.t, true);
});

test('`pgconvoy cancel` ends a waiting run at once with nothing applied (exit 5)', async (t) => {
  const { db, config, cli, phase } = await fixture(t, { 'V1__a.sql': 'CREATE TABLE a (id int);' }, 'gated-cancel');
  await withWorker(config, async () => {
    const up = cli('up', '--db', 'gated-cancel', '--require-approval');
    await waitFor('the approval wait', async () => ((await phase()) === 'awaiting-approval' ? true : undefined));
    const cancelled = await cli('cancel', '--db', 'gated-cancel', '--by', 'oncall', '--reason', 'release postponed');
    assert.equal(cancelled.code, ExitCode.ok, cancelled.stderr);
    const result = await up;
    assert.equal(result.code, ExitCode.cancelled, result.stderr);
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /\npgconvoy: cancelled by oncall \(release postponed\): nothing was applied; database "gated-cancel" is at no version\n$/);
  });
  assert.equal((await db.query(`SELECT 1 FROM pg_namespace WHERE nspname = 'pgconvoy'`)).rowCount, 0, 'the database was not touched');
});

test('`pgconvoy cancel` during a run stops after the migration in progress and releases the lease', async (t) => {
  const { db, config, cli, phase, history } = await fixture(t, {
    'V1__slow.sql': 'CREATE TABLE first (id int);\nSELECT pg_sleep(1.5);',
    'V2__never.sql': 'CREATE TABLE second (id int);',
  }, 'gated-run');
  await withWorker(config, async () => {
    const up = cli('up', '--db', 'gated-run', '--json');
    let ended: unknown;
    void up.then((r) => (ended = r));
    await waitFor('the first migration', async () => {
      if (ended) assert.fail(`up ended before it could be cancelled: ${JSON.stringify(ended)}`);
      return (await phase()) === 'applying' ? true : undefined;
    });
    const cancelled = await cli('cancel', '--db', 'gated-run', '--by', 'oncall');
    assert.equal(cancelled.code, ExitCode.ok, cancelled.stderr);
    const result = await up;
    assert.equal(result.code, ExitCode.cancelled, result.stderr);
    const body = JSON.parse(result.stdout) as { status: string; applied: Array<{ version: string }>; version: string };
    assert.deepEqual([body.status, body.applied.map((a) => a.version), body.version], ['cancelled', ['1'], '1']);
    maybeRecordHistory('migrate-database-cancelled', await history());
  });
  assert.equal((await db.query(`SELECT to_regclass('public.second') AS t`)).rows[0]?.t, null, 'the next migration did not start');
  assert.equal((await db.query('SELECT 1 FROM pgconvoy.lease')).rowCount, 0, 'the lease was released');
});

test('an approval that never comes times out: exit 1, nothing ran', async (t) => {
  const { db, config, cli } = await fixture(t, { 'V1__a.sql': 'CREATE TABLE a (id int);' }, 'gated-timeout');
  const result = await withWorker(config, () => cli('up', '--db', 'gated-timeout', '--require-approval', '--approval-timeout', '1s'));
  assert.equal(result.code, ExitCode.failed);
  assert.match(result.stderr, /\[ApprovalTimedOut\] nobody approved the migration of "gated-timeout" within 1 s; nothing ran/);
  assert.equal((await db.query(`SELECT 1 FROM pg_namespace WHERE nspname = 'pgconvoy'`)).rowCount, 0);
});

test('--mode dry-run plans and reports without changing anything', async (t) => {
  const { db, config, cli } = await fixture(t, { 'V1__a.sql': 'CREATE TABLE a (id int);', 'V2__b.sql': '-- pgconvoy:no-transaction\nCREATE INDEX CONCURRENTLY a_id ON a (id);' }, 'gated-dry');
  const result = await withWorker(config, () => cli('up', '--db', 'gated-dry', '--mode', 'dry-run'));
  assert.equal(result.code, ExitCode.ok, result.stderr);
  assert.equal(
    result.stdout.replace(/\(PostgreSQL\) 15\.[^\n]*/, '(PostgreSQL) 15.x'),
    'dry run: database "gated-dry" has no migrations applied; 2 would be applied, nothing was changed\n  V1  a  transaction     1 statement  low risk\n  V2  b  no-transaction  1 statement  low risk\n' +
      'backup: the whole database, by pg_dump (PostgreSQL) 15.x\n',
  );
  assert.equal((await db.query(`SELECT 1 FROM pg_namespace WHERE nspname = 'pgconvoy'`)).rowCount, 0);
});
