import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { checkPgTools, parseToolVersion, pathTools, pgToolsFor, serverMajor } from '../../src/backup/pg-tools';

test('server_version_num gives the major version, also before PostgreSQL 10', () => {
  assert.equal(serverMajor(150020), 15);
  assert.equal(serverMajor(180004), 18);
  assert.equal(serverMajor(100000), 10);
  assert.equal(serverMajor(90624), 9.6);
});

test('a tool version line gives its major version', () => {
  assert.deepEqual(parseToolVersion('pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)\n'), { text: 'pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)', major: 15 });
  assert.equal(parseToolVersion('pg_restore (PostgreSQL) 18beta1')?.major, 18);
  assert.equal(parseToolVersion('pg_dump (PostgreSQL) 9.6.24')?.major, 9.6);
  assert.equal(parseToolVersion('something else'), undefined);
});

test('pg_dump comes from backup.pgBinDir, else the server major version directory, else PATH', () => {
  const files = new Set(['/usr/lib/postgresql/18/bin/pg_dump', '/usr/lib/postgresql/18/bin/psql', '/opt/pg/bin/psql']);
  const exists = (path: string) => files.has(path);
  assert.deepEqual(pgToolsFor(18, '/opt/pg/bin', exists), {
    source: 'backup.pgBinDir',
    dir: '/opt/pg/bin',
    pgDump: '/opt/pg/bin/pg_dump',
    pgRestore: '/opt/pg/bin/pg_restore',
    psql: '/opt/pg/bin/psql',
  });
  assert.equal(pgToolsFor(18, '/elsewhere', exists).psql, 'psql', 'a directory without psql: any psql replays the SQL');
  assert.deepEqual(pgToolsFor(18, undefined, exists), {
    source: 'server-major',
    dir: '/usr/lib/postgresql/18/bin',
    pgDump: '/usr/lib/postgresql/18/bin/pg_dump',
    pgRestore: '/usr/lib/postgresql/18/bin/pg_restore',
    psql: '/usr/lib/postgresql/18/bin/psql',
  });
  assert.deepEqual(pgToolsFor(17, undefined, exists), pathTools);
});

test('a tool is asked its version once while it stays the same file on disk, again once it changes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgconvoy-tools-'));
  try {
    const calls = join(dir, 'calls');
    const tool = (name: string, version: string) => {
      writeFileSync(join(dir, name), `#!/bin/sh\necho x >> ${calls}\necho "${name} (PostgreSQL) ${version}"\n`);
      chmodSync(join(dir, name), 0o755);
    };
    tool('pg_dump', '16.4');
    tool('pg_restore', '16.4');
    const tools = pgToolsFor(16, dir);
    const server = { alias: 'db', version: '16.4', versionNum: 160004 };
    const asked = () => readFileSync(calls, 'utf8').split('\n').filter(Boolean).length;
    assert.deepEqual(await checkPgTools(tools, server), { pgDump: 'pg_dump (PostgreSQL) 16.4', pgRestore: 'pg_restore (PostgreSQL) 16.4' });
    await checkPgTools(tools, server);
    assert.equal(asked(), 2, 'each binary ran once for two checks');
    // Replaced in place by an older one: asked again, and refused.
    tool('pg_dump', '15.2');
    await assert.rejects(checkPgTools(tools, server), /pg_dump is pg_dump \(PostgreSQL\) 15\.2 .*older than the server/);
    assert.equal(asked(), 3);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
