import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { InvalidMigrationSetError } from '../../src/core/errors';
import { defaultFileLimits } from '../../src/core/file-limits';
import { parseMigrationFileName } from '../../src/core/file-name';
import { buildMigrationSet } from '../../src/core/migration-set';
import { readChecks } from '../../src/source/read-checks';
import { readMigrationSet } from '../../src/source/read-migration-set';
import { nodeFs, type SourceFs } from '../../src/source/read-sql-files';
import { writeMigrations } from '../helpers/migrations';

/** The problems a read reports, as "file: message" lines. */
async function problemsOf(read: Promise<unknown>): Promise<string[]> {
  try {
    await read;
  } catch (error) {
    if (error instanceof InvalidMigrationSetError) return error.problems.map((p) => `${p.file}: ${p.message}`);
    throw error;
  }
  return [];
}

const notRegular = 'not a regular file; pgconvoy reads only regular files (or symbolic links to them) and never opens anything else';

test('an upper- or mixed-case .sql extension is a misnamed migration, not a file to ignore', async () => {
  assert.deepEqual(parseMigrationFileName('V2__x.SQL'), { ok: false, reason: 'the extension must be lowercase ".sql", got ".SQL"; rename the file' });
  assert.deepEqual(parseMigrationFileName('U2__x.Sql'), { ok: false, reason: 'the extension must be lowercase ".sql", got ".Sql"; rename the file' });
  const set = writeMigrations({ 'V1__a.sql': 'SELECT 1;', 'V2__b.SQL': 'SELECT 2;', 'README.md': '', 'notes.txt': '' });
  try {
    assert.deepEqual(await problemsOf(readMigrationSet(set.dir)), ['V2__b.SQL: the extension must be lowercase ".sql", got ".SQL"; rename the file']);
  } finally {
    set.remove();
  }
});

test('a NUL byte is refused with its byte offset, line and column, in forward and undo scripts', () => {
  const content = Buffer.concat([Buffer.from('CREATE TABLE a (id int);\n-- é\nSELECT 1;'), Buffer.from([0]), Buffer.from('CREATE TABLE b (id int);')]);
  const expected = (file: string) =>
    `${file}: NUL byte at byte offset 40 (line 3, column 10); PostgreSQL cannot take a NUL byte in SQL text, and everything after it would be lost — remove it`;
  try {
    buildMigrationSet('m', [{ name: 'V1__a.sql', content }, { name: 'U1__a.sql', content }]);
    assert.fail('a NUL byte must be refused');
  } catch (error) {
    assert.ok(error instanceof InvalidMigrationSetError);
    assert.deepEqual(error.problems.map((p) => `${p.file}: ${p.message}`), [expected('U1__a.sql'), expected('V1__a.sql')]);
  }
});

test('FIFOs, sockets, devices and symbolic links to them are reported without being opened; a link to a regular file is read', async () => {
  const set = writeMigrations({ 'V1__a.sql': 'SELECT 1;', 'real.txt': 'SELECT 2;', 'sub.sql/V9__inside.sql': 'SELECT 9;' });
  const server = createServer();
  try {
    execFileSync('mkfifo', [join(set.dir, 'V2__pipe.sql')]);
    symlinkSync(join(set.dir, 'V2__pipe.sql'), join(set.dir, 'V3__to_pipe.sql'));
    symlinkSync('/dev/null', join(set.dir, 'V4__null.sql'));
    symlinkSync(join(set.dir, 'real.txt'), join(set.dir, 'V6__linked.sql'));
    await new Promise<void>((resolve) => server.listen(join(set.dir, 'V5__socket.sql'), resolve));
    const started = Date.now();
    assert.deepEqual(await problemsOf(readMigrationSet(set.dir)), [
      `V2__pipe.sql: a FIFO (named pipe), ${notRegular}`,
      `V3__to_pipe.sql: a symbolic link to a FIFO (named pipe), ${notRegular}`,
      `V4__null.sql: a symbolic link to a character device, ${notRegular}`,
      `V5__socket.sql: a socket, ${notRegular}`,
    ]);
    assert.ok(Date.now() - started < 5_000, 'nothing waits for a writer');
    await new Promise<void>((resolve) => server.close(() => resolve()));
    execFileSync('rm', ['-f', join(set.dir, 'V2__pipe.sql'), join(set.dir, 'V3__to_pipe.sql'), join(set.dir, 'V4__null.sql'), join(set.dir, 'V5__socket.sql')]);
    const good = await readMigrationSet(set.dir);
    assert.deepEqual(good.migrations.map((m) => [m.forward.file, m.forward.sql]), [['V1__a.sql', 'SELECT 1;'], ['V6__linked.sql', 'SELECT 2;']]);
  } finally {
    server.close();
    set.remove();
  }
});

test('a file over files.maxFileBytes is refused before it is read, naming its size and the setting', async () => {
  const set = writeMigrations({ 'V1__a.sql': 'SELECT 1;', 'V2__big.sql': 'SELECT 12345;', 'checks/big.sql': 'SELECT 12345;' });
  try {
    const limits = { ...defaultFileLimits, maxFileBytes: 12 };
    const message =
      'file is 13 bytes (0.0 MiB), over the limit of 12 bytes (0.0 MiB, setting files.maxFileBytes); split it into smaller migrations, or raise the limit in the config';
    // The checks are part of the set (its digest covers them): reading the set reports them too.
    assert.deepEqual(await problemsOf(readMigrationSet(set.dir, limits)), [`V2__big.sql: ${message}`, `checks/big.sql: ${message}`]);
    assert.deepEqual(await problemsOf(readChecks(set.dir, limits)), [`checks/big.sql: ${message}`]);
    assert.equal((await readMigrationSet(set.dir, { ...limits, maxFileBytes: 13 })).migrations.length, 2, 'a file of exactly the limit is read');
    assert.equal(defaultFileLimits.maxFileBytes, 4 * 1024 * 1024);
  } finally {
    set.remove();
  }
});

test('reading a set has a time limit: a hung file system gives a clear error naming what hung, not a hang', async () => {
  const set = writeMigrations({ 'V1__a.sql': 'SELECT 1;', 'V2__b.sql': 'SELECT 2;' });
  try {
    const limits = { ...defaultFileLimits, readTimeoutMs: 200 };
    const hung = new Promise<never>(() => undefined);
    const hungOpen: SourceFs = { ...nodeFs, open: (path, flags) => (path.endsWith('V2__b.sql') ? hung : nodeFs.open(path, flags)) };
    const hungList: SourceFs = { ...nodeFs, readdir: () => hung };
    const started = Date.now();
    assert.deepEqual(await problemsOf(readMigrationSet(set.dir, limits, hungOpen)), [
      'V2__b.sql: reading the migration set took longer than 200 ms (files.readTimeoutMs) and was given up while reading this file; is the file system hung or very slow?',
    ]);
    assert.deepEqual(await problemsOf(readMigrationSet(set.dir, limits, hungList)), [
      `${set.dir}: reading the migration set took longer than 200 ms (files.readTimeoutMs) and was given up while listing the directory; is the file system hung or very slow?`,
    ]);
    assert.deepEqual(await problemsOf(readChecks(set.dir, limits, hungList)), [
      `${join(set.dir, 'checks')}: reading the migration set took longer than 200 ms (files.readTimeoutMs) and was given up while listing the directory; is the file system hung or very slow?`,
    ]);
    assert.ok(Date.now() - started < 3_000);
    assert.equal(defaultFileLimits.readTimeoutMs, 30_000);
  } finally {
    set.remove();
  }
});

test('checks follow the same rules: NUL bytes, case of the extension and non-regular files are refused; no folder is no checks', async () => {
  const set = writeMigrations({ 'V1__a.sql': 'SELECT 1;', 'checks/a_ok.sql': 'SELECT 1 WHERE false;', 'checks/b_nul.sql': Buffer.from([0x53, 0, 0x45]), 'checks/c_upper.SQL': 'SELECT 1;' });
  try {
    execFileSync('mkfifo', [join(set.dir, 'checks', 'd_pipe.sql')]);
    assert.deepEqual(await problemsOf(readChecks(set.dir)), [
      'checks/b_nul.sql: NUL byte at byte offset 1 (line 1, column 2); PostgreSQL cannot take a NUL byte in SQL text, and everything after it would be lost — remove it',
      'checks/c_upper.SQL: the extension must be lowercase ".sql", got ".SQL"; rename the file',
      `checks/d_pipe.sql: a FIFO (named pipe), ${notRegular}`,
    ]);
    mkdirSync(join(set.dir, 'empty'));
    writeFileSync(join(set.dir, 'empty', 'V1__a.sql'), '');
    assert.deepEqual(await readChecks(join(set.dir, 'empty')), []);
  } finally {
    set.remove();
  }
});
