import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ExitCode } from '../../src/client/exit-codes';
import type { Config } from '../../src/config/config';
import { cliFixture } from '../helpers/cli-fixture';
import type { TestDatabase } from '../helpers/database';
import { services } from '../helpers/services';
import { testConfig, withWorker } from '../helpers/temporal';

/**
 * A server newer than the machine's pg_dump (the harness's PostgreSQL 18,
 * whose package ships no pg_dump): the run is refused before the lease with
 * an error that says what to set, and `backup.scope: "none"` runs it.
 */
const backupDefaults = testConfig({ databases: {}, migrationsDir: '/nonexistent' }).backup;
const noBackup = (reason: string): Partial<Config> => ({ backup: { ...backupDefaults, scope: 'none', reason } });
const on18 = (config: Partial<Config> = {}) => ({ adminUrl: services.newerAdminUrl, config });

async function pgconvoySchema(db: TestDatabase): Promise<number> {
  return (await db.query(`SELECT 1 FROM pg_namespace WHERE nspname = 'pgconvoy'`)).rowCount ?? 0;
}

test('PostgreSQL 18 with pg_dump 15: plan and up refuse before the lease, name both versions and the setting, and change nothing', async (t) => {
  const { db, config, cli } = await cliFixture(t, { 'V1__a.sql': 'CREATE TABLE a (id int);' }, 'app', undefined, on18());
  const server = (await db.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]!.v;
  assert.match(server, /^18\./);
  await withWorker(config, async () => {
    const plan = await cli('plan', '--db', 'app');
    assert.equal(plan.code, ExitCode.badInput, plan.stderr);
    assert.match(plan.stdout, /\nbackup: cannot be taken, so a run is refused: cannot back up "app": the server is PostgreSQL 18\.\d+/);

    const up = await cli('up', '--db', 'app');
    assert.equal(up.code, ExitCode.badInput, up.stderr);
    assert.match(up.stderr, /\[BackupToolMismatch\] cannot back up "app": the server is PostgreSQL 18\.\d+ and the backup tools from PATH \(no backup\.pgBinDir set, no \/usr\/lib\/postgresql\/18\/bin\) cannot serve it/);
    assert.match(up.stderr, /pg_dump is pg_dump \(PostgreSQL\) 15\.\d+[^\n]* \(pg_dump\), older than the server/);
    assert.match(up.stderr, /set backup\.pgBinDir or PGCONVOY_PG_BIN_DIR to their bin directory, or set backup\.scope to "none" with a backup\.reason/);
    assert.match(up.stderr, /Nothing was changed\./);
  });
  // Refused before the lease: the lease would have created the ledger.
  assert.equal(await pgconvoySchema(db), 0);
  assert.equal((await db.query(`SELECT 1 FROM pg_tables WHERE tablename = 'a'`)).rowCount, 0);

  // What the message says to do, on the same database: a run without a backup.
  await withWorker({ ...config, ...noBackup('no pg_dump 18 on this worker yet') }, async () => {
    const up = await cli('up', '--db', 'app');
    assert.equal(up.code, ExitCode.ok, up.stderr);
    assert.match(up.stdout, /\nno backup was taken \(backup\.scope "none": no pg_dump 18 on this worker yet\)\n1 migration applied/);
  });
  assert.equal((await db.query(`SELECT 1 FROM pg_tables WHERE tablename = 'a'`)).rowCount, 1);
});

test('backup.pgBinDir is the one used: its pg_dump 15 named for PostgreSQL 18, and on PostgreSQL 15 it takes the backup', async (t) => {
  const bin = mkdtempSync(join(tmpdir(), 'pgconvoy-bin-'));
  t.after(() => rmSync(bin, { recursive: true, force: true }));
  const calls = join(bin, 'calls');
  // Real tools behind a wrapper that records each call.
  for (const tool of ['pg_dump', 'pg_restore']) {
    writeFileSync(join(bin, tool), `#!/bin/sh\necho "${tool} $*" >> ${calls}\nexec /usr/lib/postgresql/15/bin/${tool} "$@"\n`);
    chmodSync(join(bin, tool), 0o755);
  }
  const withBin: Partial<Config> = { backup: { ...backupDefaults, pgBinDir: bin } };

  const newer = await cliFixture(t, { 'V1__a.sql': 'CREATE TABLE a (id int);' }, 'app', undefined, on18(withBin));
  await withWorker(newer.config, async () => {
    const up = await newer.cli('up', '--db', 'app');
    assert.equal(up.code, ExitCode.badInput, up.stderr);
    assert.ok(up.stderr.includes(`the backup tools from backup.pgBinDir / PGCONVOY_PG_BIN_DIR (${bin}) cannot serve it: pg_dump is pg_dump (PostgreSQL) 15.`), up.stderr);
  });
  assert.equal(await pgconvoySchema(newer.db), 0);

  const current = await cliFixture(t, { 'V1__a.sql': 'CREATE TABLE a (id int);' }, 'app', undefined, { config: withBin });
  await withWorker(current.config, async () => {
    const plan = await current.cli('plan', '--db', 'app');
    assert.equal(plan.code, ExitCode.ok, plan.stderr);
    assert.ok(plan.stdout.includes(`\nbackup: the whole database, by pg_dump (PostgreSQL) 15.`) && plan.stdout.includes(`(${join(bin, 'pg_dump')})\n`), plan.stdout);
    const up = await current.cli('up', '--db', 'app');
    assert.equal(up.code, ExitCode.ok, up.stderr);
    assert.match(up.stdout, /\nbackup taken before the first change: app\/\S+\.dump\n1 migration applied/);
  });
  const called = readFileSync(calls, 'utf8');
  assert.match(called, /^pg_dump --format=custom /m, 'the backup ran the pg_dump of backup.pgBinDir');
  assert.match(called, /^pg_restore --file=\/dev\/null/m, 'its verification ran the pg_restore of backup.pgBinDir');
});

test('unset, pg_dump comes from /usr/lib/postgresql/<server major>/bin', async (t) => {
  const { config, cli } = await cliFixture(t, { 'V1__a.sql': 'CREATE TABLE a (id int);' });
  await withWorker(config, async () => {
    const plan = await cli('plan', '--db', 'app');
    assert.equal(plan.code, ExitCode.ok, plan.stderr);
    assert.match(plan.stdout, /\nbackup: the whole database, by pg_dump \(PostgreSQL\) 15\.[^\n]*\(\/usr\/lib\/postgresql\/15\/bin\/pg_dump\)\n/);
  });
});

test('backup.scope "none" on PostgreSQL 18: plan, up and status say no backup is taken, and the ledger records why', async (t) => {
  const reason = 'managed snapshots every hour';
  const { db, config, cli } = await cliFixture(t, { 'V1__a.sql': 'CREATE TABLE a (id int);', 'V2__b.sql': 'CREATE TABLE b (id int);' }, 'app', undefined, on18(noBackup(reason)));
  await withWorker(config, async () => {
    const plan = await cli('plan', '--db', 'app');
    assert.equal(plan.code, ExitCode.ok, plan.stderr);
    assert.ok(plan.stdout.includes(`\nbackup: NONE is taken (backup.scope "none": ${reason}); a failed run is rolled back only by undo scripts, otherwise it halts\n`), plan.stdout);
    const dry = await cli('up', '--db', 'app', '--mode', 'dry-run');
    assert.equal(dry.code, ExitCode.ok, dry.stderr);
    assert.ok(dry.stdout.includes(`backup: NONE is taken (backup.scope "none": ${reason})`), dry.stdout);

    const up = await cli('up', '--db', 'app');
    assert.equal(up.code, ExitCode.ok, up.stderr);
    assert.ok(up.stdout.includes(`\nno backup was taken (backup.scope "none": ${reason})\n2 migrations applied`), up.stdout);
    const json = await cli('history', '--db', 'app', '--json');
    assert.deepEqual((JSON.parse(json.stdout) as Array<{ version: string; backup: string }>).map((r) => [r.version, r.backup]), [
      ['1', `none: ${reason}`],
      ['2', `none: ${reason}`],
    ]);
    const status = await cli('status', '--db', 'app');
    assert.ok(status.stdout.includes(`backup: NONE is taken (backup.scope "none": ${reason})`), status.stdout);
  });
  assert.deepEqual((await db.query(`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`)).rows, [{ table_name: 'a' }, { table_name: 'b' }]);
});

test('backup.scope "none": a failure is rolled back by undo scripts when every applied version has one, and halts with the reason when one has none', async (t) => {
  const undoable = await cliFixture(
    t,
    {
      'V1__a.sql': 'CREATE TABLE a (id int);',
      'U1__a.sql': 'DROP TABLE a;',
      'V2__broken.sql': 'CREATE TABLE b (id int);\nSELECT 1/0;\n',
    },
    'app',
    undefined,
    on18(noBackup('too large to dump')),
  );
  await withWorker(undoable.config, async () => {
    const up = await undoable.cli('up', '--db', 'app');
    assert.equal(up.code, ExitCode.rolledBack, up.stderr);
    assert.match(up.stderr, /compensated: undo scripts of V1 ran in reverse/);
  });
  assert.equal((await undoable.db.query(`SELECT 1 FROM pg_tables WHERE schemaname = 'public'`)).rowCount, 0);

  const plain = await cliFixture(
    t,
    { 'V1__a.sql': 'CREATE TABLE a (id int);', 'V2__broken.sql': 'SELECT 1/0;' },
    'app',
    undefined,
    on18(noBackup('too large to dump')),
  );
  await withWorker(plain.config, async () => {
    const up = await plain.cli('up', '--db', 'app');
    assert.equal(up.code, ExitCode.failed, up.stderr);
    assert.match(up.stderr, /NOT COMPENSATED: no backup was taken \(backup\.scope "none": too large to dump\) and V1 has no undo script; the database is as the ledger says/);
  });
  const rows = await plain.db.query<{ version: string; status: string }>('SELECT version::text AS version, status FROM pgconvoy.history ORDER BY id');
  assert.deepEqual(rows.rows, [
    { version: '1', status: 'applied' },
    { version: '2', status: 'failed' },
  ]);
});
