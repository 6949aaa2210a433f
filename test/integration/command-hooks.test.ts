import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { migrate } from '../../src/client/api';
import { summarizeFailure } from '../../src/client/failure';
import type { CommandHooks } from '../../src/config/config';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { writeMigrations } from '../helpers/migrations';
import { sharedTestClient, testConfig, withWorker } from '../helpers/temporal';

const shared = sharedTestClient();

const migrations = {
  'V1__accounts.sql': 'CREATE TABLE accounts (id int PRIMARY KEY);',
  'V2__accounts_note.sql': 'ALTER TABLE accounts ADD COLUMN note text;',
};
const none: CommandHooks = { beforeMigrate: [], afterMigrate: [], afterMigrateError: [], afterMigrateFailure: 'keep' };

async function setup(t: { after(fn: () => unknown): void }, alias: string, hooks: Partial<CommandHooks>, files: Record<string, string> = migrations) {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const set = writeMigrations(files);
  t.after(() => set.remove());
  const out = mkdtempSync(join(tmpdir(), 'pgconvoy-hook-out-'));
  t.after(() => rmSync(out, { recursive: true, force: true }));
  const config = testConfig({ databases: { [alias]: db.url }, migrationsDir: set.dir, hooks: { ...none, ...hooks } });
  const pgconvoy = { client: shared.client, taskQueue: config.temporal.taskQueue };
  const up = (onFailure: 'halt' | 'restore' = 'restore') => withWorker(config, () => migrate(pgconvoy, { db: alias, migrationsDir: set.dir, onFailure }).then((r) => ({ result: r, error: undefined }), (error: unknown) => ({ result: undefined, error })));
  return { db, out, up };
}

const applied = async (db: TestDatabase) => (await db.query<{ v: string }>(`SELECT version::text AS v FROM pgconvoy.history WHERE status = 'applied' ORDER BY version`)).rows.map((r) => r.v);
const envOf = (file: string) => Object.fromEntries(readFileSync(file, 'utf8').trim().split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));

test('command hooks: before and after a run, with the run’s facts in PGCONVOY_* variables and a connection string only where a hook asks for it', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'pgconvoy-hook-facts-'));
  t.after(() => rmSync(out, { recursive: true, force: true }));
  const { db, up } = await setup(t, 'cmdhooks', {
    beforeMigrate: [{ run: `env | grep -E '^(PGCONVOY_|DATABASE_URL)' | sort > ${out}/before.env`, timeoutMs: 10_000 }],
    afterMigrate: [{ run: `env | grep -E '^(PGCONVOY_|DATABASE_URL)' | sort > ${out}/after.env`, timeoutMs: 10_000, connectionEnv: 'DATABASE_URL' }],
  });
  const { result, error } = await up();
  assert.equal(error, undefined, String(error));
  assert.equal(result?.status, 'applied');
  const before = envOf(join(out, 'before.env'));
  assert.deepEqual(
    before,
    { PGCONVOY_DB: 'cmdhooks', PGCONVOY_ERROR: '', PGCONVOY_EVENT: 'beforeMigrate', PGCONVOY_OUTCOME: '', PGCONVOY_PENDING: '2', PGCONVOY_VERSION_AFTER: '', PGCONVOY_VERSION_BEFORE: '', PGCONVOY_WORKFLOW_ID: 'pgconvoy/db/cmdhooks' },
    'no connection string for a hook that did not ask for one',
  );
  const after = envOf(join(out, 'after.env'));
  assert.equal(after.DATABASE_URL, db.url, 'the hook that asked for it');
  assert.deepEqual([after.PGCONVOY_EVENT, after.PGCONVOY_VERSION_AFTER, after.PGCONVOY_OUTCOME], ['afterMigrate', '2', 'applied']);
  assert.deepEqual(await applied(db), ['1', '2']);
});

test('command hooks: a failing or timed-out beforeMigrate stops the run before any change; a failing afterMigrate fails it and keeps the migrations, or compensates them when the config says so; afterMigrateError is told the error', async (t) => {
  const slow = await setup(t, 'cmdslow', { beforeMigrate: [{ run: 'sleep 30', timeoutMs: 300 }] });
  const timedOut = await slow.up();
  const timeoutFailure = summarizeFailure(timedOut.error);
  assert.equal(timeoutFailure.type, 'CommandHookFailed');
  assert.match(timeoutFailure.message, /hooks\.beforeMigrate\[0\] "sleep 30" ran past its 300 ms and was killed/);
  assert.deepEqual(await applied(slow.db), [], 'nothing ran');

  const keep = await setup(t, 'cmdkeep', { afterMigrate: [{ run: 'echo first; echo "cache warm-up failed" >&2; exit 3', timeoutMs: 10_000 }] });
  const kept = await keep.up();
  const keptFailure = summarizeFailure(kept.error);
  assert.equal(keptFailure.type, 'CommandHookFailed');
  assert.match(keptFailure.message, /hooks\.afterMigrate\[0\] ".*" exited with 3: cache warm-up failed/);
  assert.deepEqual(await applied(keep.db), ['1', '2'], 'the migrations stay');

  const undo = await setup(t, 'cmdundo', { afterMigrate: [{ run: 'exit 1', timeoutMs: 10_000 }], afterMigrateFailure: 'compensate' });
  const compensated = await undo.up();
  assert.equal(summarizeFailure(compensated.error).type, 'CommandHookFailed');
  assert.deepEqual(await applied(undo.db), [], 'compensated: restored from the backup');
  assert.deepEqual((await undo.db.query(`SELECT to_regclass('accounts')::text AS t`)).rows, [{ t: null }]);

  const out = mkdtempSync(join(tmpdir(), 'pgconvoy-hook-error-'));
  t.after(() => rmSync(out, { recursive: true, force: true }));
  const told = await setup(t, 'cmderror', { afterMigrateError: [{ run: `printf '%s' "$PGCONVOY_ERROR" > ${out}/error`, timeoutMs: 10_000 }] }, { ...migrations, 'V3__broken.sql': 'SELECT * FROM no_such_table;' });
  await told.up('halt');
  assert.match(readFileSync(join(out, 'error'), 'utf8'), /V3__broken\.sql \(version 3\) failed at statement 1 of 1.*SQLSTATE 42P01/);
});
