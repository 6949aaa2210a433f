import assert from 'node:assert/strict';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { cachedMigrationSet, cachedSetFor } from '../../src/source/set-cache';
import { writeMigrations } from '../helpers/migrations';

test('a set is read and parsed once while its files stay as they are, and read again after any write, rename or new check', async (t) => {
  const set = writeMigrations({ 'V1__a.sql': 'CREATE TABLE a (id int);', 'V2__b.sql': 'CREATE TABLE b (id int);' });
  t.after(() => set.remove());
  const first = await cachedMigrationSet(set.dir);
  const again = await cachedMigrationSet(set.dir);
  assert.equal(again.set, first.set, 'unchanged files: the same set, not read again');
  const parsed = await first.prepare(['2']);
  assert.equal((await again.prepare(['2'])).get('2'), parsed.get('2'), 'parsed once');
  assert.deepEqual([...(await again.prepare()).keys()], ['1', '2']);

  // The same number of bytes, written again: only its ctime and mtime say so.
  writeFileSync(join(set.dir, 'V2__b.sql'), 'CREATE TABLE c (id int);');
  const edited = await cachedMigrationSet(set.dir);
  assert.notEqual(edited.set, first.set);
  assert.notEqual(edited.set.digest, first.set.digest);
  assert.match((await edited.prepare(['2'])).get('2')!.forward.script.statements[0]!.sql, /TABLE c/);

  renameSync(join(set.dir, 'V2__b.sql'), join(set.dir, 'V2__c.sql'));
  const renamed = await cachedMigrationSet(set.dir);
  assert.deepEqual(renamed.set.manifest.map((m) => m.description), ['a', 'c']);

  mkdirSync(join(set.dir, 'checks'));
  writeFileSync(join(set.dir, 'checks', 'none.sql'), 'SELECT 1 WHERE false;');
  const checked = await cachedMigrationSet(set.dir);
  assert.notEqual(checked.set.digest, renamed.set.digest, 'a new check is part of the set');
  assert.equal((await cachedMigrationSet(set.dir)).set, checked.set);
});

test('a set that cannot be read is not kept: the next call reads it again and reports the same problem', async (t) => {
  const set = writeMigrations({ 'V1__a.sql': 'CREATE TABLE a (id int);', 'V1__dup.sql': 'SELECT 1;' });
  t.after(() => set.remove());
  await assert.rejects(cachedMigrationSet(set.dir), /duplicate version 1/);
  await assert.rejects(cachedMigrationSet(set.dir), /duplicate version 1/);
});

test("a step's versions: only their files are looked at again; one of them written, renamed away or unknown reads the whole set", async (t) => {
  const set = writeMigrations({ 'V1__a.sql': 'CREATE TABLE a (id int);', 'V2__b.sql': 'CREATE TABLE b (id int);', 'U2__b.sql': 'DROP TABLE b;' });
  t.after(() => set.remove());
  const first = await cachedMigrationSet(set.dir);
  assert.equal((await cachedSetFor(set.dir, ['1'])).set, first.set, 'unchanged: the set this worker read');
  // Another version's file written: the step for V1 does not read the set again (its own file is as it was).
  writeFileSync(join(set.dir, 'V2__b.sql'), 'CREATE TABLE c (id int);');
  assert.equal((await cachedSetFor(set.dir, ['1'])).set, first.set);
  const two = await cachedSetFor(set.dir, ['2']);
  assert.notEqual(two.set, first.set, 'its own file written: read again');
  assert.notEqual(two.set.digest, first.set.digest);
  writeFileSync(join(set.dir, 'U2__b.sql'), 'DROP TABLE c;');
  assert.notEqual((await cachedSetFor(set.dir, ['2'])).set, two.set, 'its undo script is its file too');
  const now = (await cachedMigrationSet(set.dir)).set;
  renameSync(join(set.dir, 'V1__a.sql'), join(set.dir, 'V1__renamed.sql'));
  assert.notEqual((await cachedSetFor(set.dir, ['1'])).set, now, 'gone under its name: read again');
  writeFileSync(join(set.dir, 'V3__c.sql'), 'CREATE TABLE d (id int);');
  assert.deepEqual((await cachedSetFor(set.dir, ['3'])).set.migrations.map((m) => m.version), ['1', '2', '3'], 'a version this worker has not seen: read again');
});
