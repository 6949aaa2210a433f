import assert from 'node:assert/strict';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { migrationChecksum } from '../../src/core/checksum';
import { InvalidMigrationSetError } from '../../src/core/errors';
import { parseHookFileName } from '../../src/core/hooks';
import { buildMigrationSet, manifestDigest } from '../../src/core/migration-set';
import { prepareMigrations } from '../../src/core/prepare';
import { readMigrationSet } from '../../src/source/read-migration-set';
import { sampleMigrationsDir, writeMigrations } from '../helpers/migrations';

const file = (name: string, content = 'SELECT 1;') => ({ name, content: Buffer.from(content) });

test('a good set is ordered by version, pairs undo scripts and has a stable digest', () => {
  const set = buildMigrationSet('m', [
    file('V10__ten.sql'),
    file('V2__two.sql', 'CREATE TABLE t (id int);'),
    file('U2__two.sql', 'DROP TABLE t;'),
    file('V100000000000000000000__huge.sql'),
    file('V1__empty.sql', ''),
  ]);
  assert.deepEqual(set.migrations.map((m) => m.version), ['1', '2', '10', '100000000000000000000']);
  assert.equal(set.migrations[1]?.undo?.file, 'U2__two.sql');
  assert.equal(set.migrations[0]?.undo, undefined);
  assert.equal(set.migrations[0]?.forward.sql, '', 'an empty file is a valid no-op migration');
  assert.match(set.digest, /^[0-9a-f]{64}$/);
  const again = buildMigrationSet('m', [file('V1__empty.sql', ''), file('V10__ten.sql'), file('V100000000000000000000__huge.sql'), file('U2__two.sql', 'DROP TABLE t;'), file('V2__two.sql', 'CREATE TABLE t (id int);')]);
  assert.equal(again.digest, set.digest, 'the digest does not depend on the order files were listed');
});

test('the digest changes when a file, an undo script or a description changes', () => {
  const base = buildMigrationSet('m', [file('V1__a.sql', 'SELECT 1;'), file('U1__a.sql', 'SELECT 2;')]).digest;
  assert.notEqual(buildMigrationSet('m', [file('V1__a.sql', 'SELECT 3;'), file('U1__a.sql', 'SELECT 2;')]).digest, base);
  assert.notEqual(buildMigrationSet('m', [file('V1__a.sql', 'SELECT 1;'), file('U1__a.sql', 'SELECT 4;')]).digest, base);
  assert.notEqual(buildMigrationSet('m', [file('V1__b.sql', 'SELECT 1;'), file('U1__b.sql', 'SELECT 2;')]).digest, base);
});

test('the digest covers checks/*.sql: a check added, changed or renamed changes it', async (t) => {
  const set = writeMigrations({ 'V1__a.sql': 'CREATE TABLE a (id int);' });
  t.after(() => set.remove());
  const without = (await readMigrationSet(set.dir)).digest;
  assert.equal(without, buildMigrationSet(set.dir, [file('V1__a.sql', 'CREATE TABLE a (id int);')]).digest, 'a set without checks keeps the digest of its manifest');
  const put = (name: string, sql: string) => {
    mkdirSync(join(set.dir, 'checks'), { recursive: true });
    writeFileSync(join(set.dir, name), sql);
  };
  put('checks/no_orphans.sql', 'SELECT 1 WHERE false;');
  const withCheck = await readMigrationSet(set.dir);
  assert.notEqual(withCheck.digest, without);
  assert.deepEqual(withCheck.checks.map((c) => c.file), ['checks/no_orphans.sql']);
  put('checks/no_orphans.sql', 'SELECT 2 WHERE false;');
  const changed = (await readMigrationSet(set.dir)).digest;
  assert.notEqual(changed, withCheck.digest);
  rmSync(join(set.dir, 'checks/no_orphans.sql'));
  put('checks/other.sql', 'SELECT 2 WHERE false;');
  assert.notEqual((await readMigrationSet(set.dir)).digest, changed);
});

test('the digest covers hooks/*.sql; a set with checks and no hooks keeps its digest; hook files are named by Flyway’s events, each-migration and undo ones included, case and all', async (t) => {
  const set = writeMigrations({ 'V1__a.sql': 'CREATE TABLE a (id int);', 'checks/c.sql': 'SELECT 1 WHERE false;' });
  t.after(() => set.remove());
  const withChecks = await readMigrationSet(set.dir);
  assert.equal(withChecks.digest, manifestDigest(withChecks.manifest, withChecks.checks), 'no hooks: the digest of manifest and checks, as before hooks');
  mkdirSync(join(set.dir, 'hooks'));
  writeFileSync(join(set.dir, 'hooks', 'afterMigrate__refresh_views.sql'), 'SELECT 1;');
  const withHook = await readMigrationSet(set.dir);
  assert.notEqual(withHook.digest, withChecks.digest);
  assert.deepEqual(withHook.hooks.map((h) => [h.file, h.event, h.description]), [['hooks/afterMigrate__refresh_views.sql', 'afterMigrate', 'refresh views']]);
  writeFileSync(join(set.dir, 'hooks', 'afterMigrate__refresh_views.sql'), 'SELECT 2;');
  assert.notEqual((await readMigrationSet(set.dir)).digest, withHook.digest, 'a hook changed changes the digest');

  assert.deepEqual(parseHookFileName('hooks/beforeMigrate.sql'), { ok: true, event: 'beforeMigrate', description: '' });
  assert.deepEqual(parseHookFileName('hooks/afterMigrateError__page_oncall.sql'), { ok: true, event: 'afterMigrateError', description: 'page oncall' });
  const misspelt = parseHookFileName('hooks/aftermigrate.sql');
  assert.ok(!misspelt.ok && /spelled "afterMigrate"/.test(misspelt.reason));
  const unknown = parseHookFileName('hooks/afterEverything.sql');
  assert.ok(!unknown.ok && /<event>\[__description\]\.sql/.test(unknown.reason));
  for (const event of ['beforeEachMigrate', 'afterEachMigrate', 'beforeUndo', 'afterUndo']) {
    assert.deepEqual(parseHookFileName(`hooks/${event}__audit_trail.sql`), { ok: true, event, description: 'audit trail' });
    assert.deepEqual(parseHookFileName(`hooks/${event}.sql`), { ok: true, event, description: '' });
  }
  const lower = parseHookFileName('hooks/beforeeachmigrate.sql');
  assert.ok(!lower.ok && /spelled "beforeEachMigrate"/.test(lower.reason));
  const runLevelOnly = (await readMigrationSet(set.dir)).digest;
  writeFileSync(join(set.dir, 'hooks', 'afterEachMigrate__log.sql'), 'SELECT 1;');
  writeFileSync(join(set.dir, 'hooks', 'beforeUndo.sql'), 'SELECT 1;');
  const eachHooks = await readMigrationSet(set.dir);
  assert.deepEqual(eachHooks.hooks.map((h) => h.event).sort(), ['afterEachMigrate', 'afterMigrate', 'beforeUndo']);
  assert.notEqual(eachHooks.digest, runLevelOnly, 'each-migration and undo hooks are in the digest too');
});

test('checksums ignore line-ending style but nothing else', () => {
  assert.equal(migrationChecksum(Buffer.from('a\r\nb\r\n')), migrationChecksum(Buffer.from('a\nb\n')));
  assert.equal(migrationChecksum(Buffer.from('a\rb')), migrationChecksum(Buffer.from('a\nb')));
  assert.notEqual(migrationChecksum(Buffer.from('a\nb ')), migrationChecksum(Buffer.from('a\nb')));
  assert.equal(migrationChecksum(Buffer.from('')), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
});

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof InvalidMigrationSetError, `expected InvalidMigrationSetError, got ${String(error)}`);
    return error.problems.map((p) => `${p.file}: ${p.message}`);
  }
  assert.fail('expected the set to be rejected');
}

test('bad sets list every problem, each naming its file', () => {
  const problems = problemsOf(() =>
    buildMigrationSet('m', [
      file('V1__first.sql'),
      file('V001__first_again.sql'),
      file('U7__orphan.sql'),
      file('U1__undo.sql'),
      file('U01__undo_again.sql'),
      file('V2_bad_separator.sql'),
      { name: 'V3__latin1.sql', content: Buffer.from([0x53, 0xe9, 0x4c]) },
    ]),
  );
  assert.deepEqual(problems, [
    'U1__undo.sql: duplicate undo for version 1: also in U01__undo_again.sql',
    'V1__first.sql: duplicate version 1: also in V001__first_again.sql',
    'V2_bad_separator.sql: version and description must be separated by two underscores; expected V<version>__<description>.sql or U<version>__<description>.sql',
    'V3__latin1.sql: file is not valid UTF-8',
    'U7__orphan.sql: undo script for version 7 has no forward migration V7__*.sql',
  ]);
});

test('the reader takes .sql files only, skips sub-folders, and names unreadable files', async () => {
  const set = writeMigrations({ 'V1__a.sql': 'SELECT 1;', 'README.md': '# notes', 'checks/no_orphans.sql': 'SELECT 1 WHERE false;' });
  try {
    const read = await readMigrationSet(set.dir);
    assert.deepEqual(read.migrations.map((m) => m.forward.file), ['V1__a.sql']);

    symlinkSync(join(set.dir, 'does-not-exist'), join(set.dir, 'V2__dangling.sql'));
    await assert.rejects(readMigrationSet(set.dir), (error: unknown) => {
      assert.ok(error instanceof InvalidMigrationSetError);
      assert.match(error.message, /V2__dangling\.sql: cannot read file: ENOENT/);
      return true;
    });
  } finally {
    set.remove();
  }
});

test('the reader names a missing directory', async () => {
  await assert.rejects(readMigrationSet('/nonexistent/migrations'), /\/nonexistent\/migrations: cannot read the migration directory: ENOENT/);
});

test('a directory named like a migration is not a migration', async () => {
  const set = writeMigrations({ 'V1__a.sql': 'SELECT 1;' });
  try {
    mkdirSync(join(set.dir, 'V2__folder.sql'));
    const read = await readMigrationSet(set.dir);
    assert.deepEqual(read.migrations.map((m) => m.version), ['1']);
  } finally {
    set.remove();
  }
});

test('the sample set loads', async () => {
  const set = await readMigrationSet(sampleMigrationsDir);
  assert.deepEqual(set.migrations.map((m) => [m.version, m.undo !== undefined]), [['1', true], ['2', true], ['3', true]]);
});

test('version 0 and empty files: a set shaped like a real history prepares, 0 first, empty files with no statements', async () => {
  const set = buildMigrationSet('m', [
    file('V00000000000000__diesel_initial_setup.sql', ''),
    file('U00000000000000__diesel_initial_setup.sql', ''),
    file('V20240101000000__blank.sql', '  \n\n\t\n'),
    file('U20240101000000__blank.sql', '-- nothing to undo\n'),
    file('V20240102000000__comments.sql', '-- intentionally empty\n/* kept for history */\n'),
    file('V20240103000000__users.sql', 'CREATE TABLE users (id int);'),
    file('U20240103000000__users.sql', ''),
  ]);
  assert.deepEqual(set.migrations.map((m) => m.version), ['0', '20240101000000', '20240102000000', '20240103000000']);
  const prepared = await prepareMigrations(set);
  assert.deepEqual(
    [...prepared.values()].map((m) => [m.version, m.forward.script.statements.length, m.undo?.script.statements.length ?? null]),
    [
      ['0', 0, 0],
      ['20240101000000', 0, 0],
      ['20240102000000', 0, null],
      ['20240103000000', 1, 0],
    ],
  );
  assert.deepEqual(problemsOf(() => buildMigrationSet('m', [file('V0__a.sql', ''), file('V000__b.sql', '')])), ['V0__a.sql: duplicate version 0: also in V000__b.sql']);
});

test('preparing stops at the next file once its attempt is given up', async () => {
  const set = buildMigrationSet('m', [{ name: 'V1__a.sql', content: Buffer.from('SELECT 1;') }]);
  const controller = new AbortController();
  controller.abort(new Error('activity cancelled'));
  await assert.rejects(prepareMigrations(set, undefined, { signal: controller.signal }), /activity cancelled/);
  assert.equal((await prepareMigrations(set)).size, 1);
});
