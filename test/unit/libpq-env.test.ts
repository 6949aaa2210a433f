import assert from 'node:assert/strict';
import { test } from 'node:test';
import { libpqEnv } from '../../src/backup/backup';

test('libpqEnv passes the query string connection parameters to libpq as PG* variables', () => {
  const env = libpqEnv(
    'postgres://app@db.internal:6432/shop?password=s%3Dcr%26t&sslmode=verify-full&sslrootcert=/etc/ca.pem&sslcert=/etc/client.pem&sslkey=/etc/client.key' +
      '&options=-c%20search_path%3Dshop&application_name=nightly&connect_timeout=3&target_session_attrs=read-write&keepalives=1',
  );
  assert.deepEqual(env, {
    PATH: process.env.PATH,
    PGHOST: 'db.internal',
    PGPORT: '6432',
    PGUSER: 'app',
    PGDATABASE: 'shop',
    PGPASSWORD: 's=cr&t',
    PGSSLMODE: 'verify-full',
    PGSSLROOTCERT: '/etc/ca.pem',
    PGSSLCERT: '/etc/client.pem',
    PGSSLKEY: '/etc/client.key',
    PGOPTIONS: '-c search_path=shop',
    PGAPPNAME: 'nightly',
    PGCONNECT_TIMEOUT: '3',
    PGTARGETSESSIONATTRS: 'read-write',
  });
});

test('libpqEnv: query parameters override the URL, as for libpq and node-postgres', () => {
  const env = libpqEnv('postgres://someone:old@unused.invalid:1/wrong?host=/var/run/postgresql&port=5433&user=postgres&password=new&dbname=shop');
  assert.deepEqual([env.PGHOST, env.PGPORT, env.PGUSER, env.PGPASSWORD, env.PGDATABASE], ['/var/run/postgresql', '5433', 'postgres', 'new', 'shop']);
});

test("libpqEnv: node-postgres' ssl spellings become libpq's, never weaker", () => {
  assert.equal(libpqEnv('postgres://h/db?sslmode=no-verify').PGSSLMODE, 'require');
  assert.equal(libpqEnv('postgres://h/db?ssl=true').PGSSLMODE, 'verify-full');
  assert.equal(libpqEnv('postgres://h/db?ssl=0').PGSSLMODE, 'disable');
  assert.equal(libpqEnv('postgres://h/db?ssl=true&sslmode=require').PGSSLMODE, 'require');
  assert.equal(libpqEnv('postgres://[::1]:5432/db').PGHOST, '::1');
});

test('libpqEnv: defaults, and nothing inherited from the worker environment', () => {
  process.env.PGPASSWORD = 'from-the-worker';
  try {
    assert.deepEqual(libpqEnv('postgres://127.0.0.1/db'), { PATH: process.env.PATH, PGHOST: '127.0.0.1', PGDATABASE: 'db', PGAPPNAME: 'pgconvoy-backup', PGCONNECT_TIMEOUT: '10' });
  } finally {
    delete process.env.PGPASSWORD;
  }
});
