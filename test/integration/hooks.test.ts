import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { approve, migrate, startMigration } from '../../src/client/api';
import { summarizeFailure } from '../../src/client/failure';
import { progressQuery } from '../../src/workflows/messages';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { writeMigrations } from '../helpers/migrations';
import { sharedTestClient, testConfig, withWorker } from '../helpers/temporal';
import { waitFor } from '../helpers/workers';

const shared = sharedTestClient();

const migrations = {
  'V1__accounts.sql': 'CREATE TABLE accounts (id int PRIMARY KEY);',
  'V2__accounts_note.sql': 'ALTER TABLE accounts ADD COLUMN note text;',
};
/** A log the hooks write to, made by the first of them. */
const log = (what: string) => `CREATE TABLE IF NOT EXISTS hook_log (n serial PRIMARY KEY, what text);\nINSERT INTO hook_log (what) VALUES (${what});`;

async function setup(t: { after(fn: () => unknown): void }, alias: string, files: Record<string, string>) {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const set = writeMigrations(files);
  t.after(() => set.remove());
  const config = testConfig({ databases: { [alias]: db.url }, migrationsDir: set.dir });
  const pgconvoy = { client: shared.client, taskQueue: config.temporal.taskQueue };
  return { db, set, config, pgconvoy };
}

const rows = async (db: TestDatabase, sql: string) => (await db.query<Record<string, string>>(sql)).rows;

test('SQL callbacks: beforeMigrate before the first migration, afterMigrate files in name order after the last, each file a row in pgconvoy.hook_runs', async (t) => {
  const { db, set, config, pgconvoy } = await setup(t, 'hooked', {
    ...migrations,
    'hooks/beforeMigrate__log.sql': log(`'before, applied: ' || (SELECT count(*) FROM pgconvoy.history WHERE status = 'applied')`),
    'hooks/afterMigrate__b_grant.sql': log(`'after b'`),
    'hooks/afterMigrate__a_refresh.sql': log(`'after a, applied: ' || (SELECT count(*) FROM pgconvoy.history WHERE status = 'applied')`),
  });
  const result = await withWorker(config, () => migrate(pgconvoy, { db: 'hooked', migrationsDir: set.dir }));
  assert.equal(result.status, 'applied');
  assert.deepEqual((await rows(db, 'SELECT what FROM hook_log ORDER BY n')).map((r) => r.what), ['before, applied: 0', 'after a, applied: 2', 'after b']);
  const runs = await rows(db, `SELECT event, file, status, version::text AS version, workflow_id FROM pgconvoy.hook_runs ORDER BY id`);
  assert.deepEqual(runs.map((r) => [r.event, r.file, r.status, r.version, r.workflow_id]), [
    ['beforeMigrate', 'hooks/beforeMigrate__log.sql', 'ok', null, 'pgconvoy/db/hooked'],
    ['afterMigrate', 'hooks/afterMigrate__a_refresh.sql', 'ok', null, 'pgconvoy/db/hooked'],
    ['afterMigrate', 'hooks/afterMigrate__b_grant.sql', 'ok', null, 'pgconvoy/db/hooked'],
  ]);
  // Each event's hooks are an event of the run, in its history (what status and the rollout read).
  const history = JSON.stringify(await shared.client.workflow.getHandle('pgconvoy/db/hooked').fetchHistory());
  assert.match(history, /runHooks/);
});

test('SQL callbacks: a failing beforeMigrate stops the run before any migration (its own transaction rolled back), named by file, statement and SQLSTATE', async (t) => {
  const { db, set, config, pgconvoy } = await setup(t, 'hookbefore', {
    ...migrations,
    'hooks/beforeMigrate.sql': `${log(`'before'`)}\nSELECT 1 / 0;`,
  });
  const error = await withWorker(config, () => migrate(pgconvoy, { db: 'hookbefore', migrationsDir: set.dir }).then(() => assert.fail('the run should fail'), (e: unknown) => e));
  const failure = summarizeFailure(error);
  assert.equal(failure.type, 'HookFailed');
  assert.match(failure.message, /^hooks\/beforeMigrate\.sql \(beforeMigrate hook\) failed at statement 3 of 3, line 3, column 1: SQLSTATE 22012: division by zero/);
  assert.deepEqual(await rows(db, `SELECT version FROM pgconvoy.history WHERE status = 'applied'`), [], 'no migration ran');
  assert.deepEqual(await rows(db, `SELECT to_regclass('hook_log')::text AS t`), [{ t: null }], 'the hook’s own statements rolled back');
  assert.deepEqual(await rows(db, `SELECT to_regclass('accounts')::text AS t`), [{ t: null }]);
  const runs = await rows(db, `SELECT event, status, error_message FROM pgconvoy.hook_runs`);
  assert.equal(runs.length, 1);
  assert.deepEqual([runs[0]!.event, runs[0]!.status], ['beforeMigrate', 'failed']);
  assert.match(runs[0]!.error_message!, /SQLSTATE 22012/);
});

test('SQL callbacks: a failing afterMigrate fails the run and keeps the migrations (no compensation); afterMigrateError runs after a failed migration', async (t) => {
  const after = await setup(t, 'hookafter', { ...migrations, 'hooks/afterMigrate.sql': `${log(`'after'`)}\nSELECT * FROM no_such_view;` });
  const error = await withWorker(after.config, () => migrate(after.pgconvoy, { db: 'hookafter', migrationsDir: after.set.dir }).then(() => assert.fail('the run should fail'), (e: unknown) => e));
  const failure = summarizeFailure(error);
  assert.equal(failure.type, 'HookFailed');
  assert.match(failure.message, /hooks\/afterMigrate\.sql \(afterMigrate hook\) failed at statement 3 of 3.*SQLSTATE 42P01/);
  assert.deepEqual((await rows(after.db, `SELECT version::text AS v FROM pgconvoy.history WHERE status = 'applied' ORDER BY version`)).map((r) => r.v), ['1', '2'], 'the migrations stay');
  assert.deepEqual(await rows(after.db, `SELECT to_regclass('hook_log')::text AS t`), [{ t: null }], 'the hook’s transaction rolled back');

  const broken = await setup(t, 'hookerror', {
    ...migrations,
    'V3__broken.sql': 'ALTER TABLE no_such_table ADD COLUMN x int;',
    'hooks/afterMigrateError__tell.sql': log(`'failed at ' || (SELECT max(version)::text FROM pgconvoy.history WHERE status = 'failed')`),
  });
  await withWorker(broken.config, () => migrate(broken.pgconvoy, { db: 'hookerror', migrationsDir: broken.set.dir, onFailure: 'halt' }).then(() => assert.fail('the run should fail'), () => undefined));
  assert.deepEqual((await rows(broken.db, 'SELECT what FROM hook_log')).map((r) => r.what), ['failed at 3']);
  assert.deepEqual((await rows(broken.db, `SELECT event, status FROM pgconvoy.hook_runs`)).map((r) => [r.event, r.status]), [['afterMigrateError', 'ok']]);
});

test('SQL callbacks: a hook file changed after the run planned stops it (the set’s digest covers the hooks); a badly named hook file is refused before anything runs', async (t) => {
  const { db, set, config, pgconvoy } = await setup(t, 'hookdigest', { ...migrations, 'hooks/afterMigrate.sql': log(`'after'`) });
  await withWorker(config, async () => {
    const handle = await startMigration(pgconvoy, { db: 'hookdigest', migrationsDir: set.dir, requireApproval: true });
    await waitFor('the run to wait for its approval', async () => ((await handle.query(progressQuery).catch(() => undefined))?.phase === 'awaiting-approval' ? true : undefined), 30_000);
    writeFileSync(join(set.dir, 'hooks', 'afterMigrate.sql'), log(`'changed'`));
    await approve(pgconvoy, 'hookdigest', { by: 'erin' });
    const failure = summarizeFailure(await handle.result().then(() => assert.fail('the run should fail'), (e: unknown) => e));
    assert.equal(failure.type, 'ManifestChanged');
  });
  assert.deepEqual(await rows(db, `SELECT version FROM pgconvoy.history WHERE status = 'applied'`), [], 'nothing ran');

  writeFileSync(join(set.dir, 'hooks', 'aftermigrate__x.sql'), 'SELECT 1;');
  const refused = await withWorker(config, () => migrate(pgconvoy, { db: 'hookdigest', migrationsDir: set.dir }).then(() => assert.fail('the run should fail'), (e: unknown) => e));
  const failure = summarizeFailure(refused);
  assert.equal(failure.type, 'InvalidMigrationSet');
  assert.match(failure.message, /hooks\/aftermigrate__x\.sql.*spelled "afterMigrate"/);
});
