import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { migrationChecksum } from '../../src/core/checksum';
import { defaultFileLimits } from '../../src/core/file-limits';
import { withClient } from '../../src/db/connection';
import { ensureLedger, insertHistory } from '../../src/db/ledger';
import { adminQuery, createTestDatabase, type TestDatabase } from '../helpers/database';
import { runInProcess } from '../helpers/in-process-cli';
import { writeMigrations } from '../helpers/migrations';
import { services } from '../helpers/services';
import { testConfig, withWorker } from '../helpers/temporal';

interface Case {
  name: string;
  files: Record<string, string | Buffer>;
  /** SQL run before, to put the database (and its ledger) in the state the case needs. */
  setup?: (db: TestDatabase, dir: string) => Promise<void> | void;
  args?: string[];
  /** The whole of stderr, with the migration directory written as <dir> and the test database's name as <db>. */
  stderr: string;
  code?: number;
  /** More aliases for the worker, e.g. the test database reached with wrong settings. */
  databases?: (db: TestDatabase) => Record<string, string>;
  /** Environment of this case's CLI, over the shared one. */
  env?: Record<string, string>;
  /** Undoes what setup created outside the test database. */
  cleanup?: () => Promise<unknown>;
}

/** The test database's URL with some parts changed. */
function urlWith(db: TestDatabase, change: (url: URL) => void): string {
  const url = new URL(db.url);
  change(url);
  return url.toString();
}

const noPrivilegeRole = `pgconvoy_nopriv_${services.runId}`;

const help = 'expected V<version>__<description>.sql or U<version>__<description>.sql';
const nulHelp = 'PostgreSQL cannot take a NUL byte in SQL text, and everything after it would be lost — remove it';
const notRegular = 'not a regular file; pgconvoy reads only regular files (or symbolic links to them) and never opens anything else';
const mkfifo = (path: string): void => void execFileSync('mkfifo', [path]);

const cases: Case[] = [
  {
    name: 'duplicate version',
    files: { 'V1__a.sql': 'SELECT 1;', 'V001__b.sql': 'SELECT 1;' },
    stderr: 'invalid migration set in <dir>:\n  V1__a.sql: duplicate version 1: also in V001__b.sql',
  },
  { name: 'single underscore', files: { 'V1_a.sql': '' }, stderr: `invalid migration set in <dir>:\n  V1_a.sql: version and description must be separated by two underscores; ${help}` },
  { name: 'repeatable migration', files: { 'R__views.sql': '' }, stderr: `invalid migration set in <dir>:\n  R__views.sql: unknown prefix "R" (repeatable migrations are not supported); ${help}` },
  { name: 'dotted version', files: { 'V1.1__a.sql': '' }, stderr: `invalid migration set in <dir>:\n  V1.1__a.sql: version must be a whole number (dotted versions such as "1.1" are not supported); ${help}` },
  { name: 'empty description', files: { 'V1__.sql': '' }, stderr: `invalid migration set in <dir>:\n  V1__.sql: description is empty; ${help}` },
  { name: 'undo without forward', files: { 'V1__a.sql': '', 'U2__b.sql': '' }, stderr: 'invalid migration set in <dir>:\n  U2__b.sql: undo script for version 2 has no forward migration V2__*.sql' },
  {
    name: 'duplicate undo',
    files: { 'V1__a.sql': '', 'U1__a.sql': '', 'U01__a.sql': '' },
    stderr: 'invalid migration set in <dir>:\n  U1__a.sql: duplicate undo for version 1: also in U01__a.sql',
  },
  { name: 'not UTF-8', files: { 'V1__latin1.sql': Buffer.from([0x53, 0xe9, 0x4c]) }, stderr: 'invalid migration set in <dir>:\n  V1__latin1.sql: file is not valid UTF-8' },
  {
    name: 'syntax error with line and column',
    files: { 'V1__ok.sql': 'CREATE TABLE ok (id int);', 'V2__typo.sql': 'CREATE TABLE t (id int);\nCREAT TABLE u (id int);\n' },
    stderr: 'invalid migration set in <dir>:\n  V2__typo.sql: line 2, column 1: syntax error at or near "CREAT"',
  },
  {
    name: 'syntax error in an undo script',
    files: { 'V1__a.sql': 'CREATE TABLE a (id int);', 'U1__a.sql': 'DROP TABLE a,;' },
    stderr: 'invalid migration set in <dir>:\n  U1__a.sql: line 1, column 14: syntax error at or near ";"',
  },
  {
    name: 'concurrent index mixed with other statements',
    files: { 'V1__mixed.sql': 'CREATE TABLE m (id int);\nCREATE INDEX CONCURRENTLY m_id ON m (id);\n' },
    stderr:
      'invalid migration set in <dir>:\n  V1__mixed.sql: statement 2 at line 2 (CREATE INDEX CONCURRENTLY) cannot run inside a transaction block, and the file has other statements; ' +
      'add "-- pgconvoy:no-transaction" before the first statement to run the file statement by statement, or move it to a file of its own',
  },
  {
    name: 'VACUUM mixed with other statements',
    files: { 'V1__vac.sql': 'CREATE TABLE v (id int);\nVACUUM v;\n' },
    stderr:
      'invalid migration set in <dir>:\n  V1__vac.sql: statement 2 at line 2 (VACUUM) cannot run inside a transaction block, and the file has other statements; ' +
      'add "-- pgconvoy:no-transaction" before the first statement to run the file statement by statement, or move it to a file of its own',
  },
  {
    name: 'BEGIN and COMMIT in a file',
    files: { 'V1__tx.sql': 'BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;\n' },
    stderr:
      'invalid migration set in <dir>:\n' +
      '  V1__tx.sql: statement 1 at line 1 (BEGIN): transaction control does not belong in a migration file; pgconvoy runs each file in a transaction of its own (or, with "-- pgconvoy:no-transaction", statement by statement)\n' +
      '  V1__tx.sql: statement 3 at line 3 (COMMIT): transaction control does not belong in a migration file; pgconvoy runs each file in a transaction of its own (or, with "-- pgconvoy:no-transaction", statement by statement)',
  },
  {
    name: 'unknown directive',
    files: { 'V1__a.sql': '-- pgconvoy:no-transation\nSELECT 1;\n' },
    stderr: 'invalid migration set in <dir>:\n  V1__a.sql: line 1: unknown directive "pgconvoy:no-transation"; known: no-transaction, lock-timeout, statement-timeout, allow',
  },
  {
    name: 'directive after the first statement',
    files: { 'V1__a.sql': 'SELECT 1;\n-- pgconvoy:no-transaction\nSELECT 2;\n' },
    stderr: 'invalid migration set in <dir>:\n  V1__a.sql: line 2: directive "pgconvoy:no-transaction" must come before the first statement',
  },
  {
    name: 'lock timeout without a unit',
    files: { 'V1__a.sql': '-- pgconvoy:lock-timeout 5\nSELECT 1;\n' },
    stderr: 'invalid migration set in <dir>:\n  V1__a.sql: line 1: "pgconvoy:lock-timeout" needs a positive duration such as 500ms, 5s, 2min or 1h, got "5"',
  },
  {
    name: 'no-transaction with an argument',
    files: { 'V1__a.sql': '-- pgconvoy:no-transaction please\nSELECT 1;\n' },
    stderr: 'invalid migration set in <dir>:\n  V1__a.sql: line 1: "pgconvoy:no-transaction" takes no arguments, got "please"',
  },
  {
    name: 'allow without a reason',
    files: { 'V1__a.sql': '-- pgconvoy:allow drop-column\nSELECT 1;\n' },
    stderr: 'invalid migration set in <dir>:\n  V1__a.sql: line 1: "pgconvoy:allow" needs a rule id and a reason, e.g. "pgconvoy:allow add-column-volatile-default backfilled in V12"',
  },
  {
    name: 'a directive given twice',
    files: { 'V1__a.sql': '-- pgconvoy:statement-timeout 1min\n-- pgconvoy:statement-timeout 2min\nSELECT 1;\n' },
    stderr: 'invalid migration set in <dir>:\n  V1__a.sql: line 2: directive "pgconvoy:statement-timeout" is given twice',
  },
  {
    name: 'an unreadable file',
    files: { 'V1__a.sql': 'SELECT 1;' },
    setup: (_db, dir) => symlinkSync(join(dir, 'nowhere'), join(dir, 'V2__dangling.sql')),
    stderr: `invalid migration set in <dir>:\n  V2__dangling.sql: cannot read file: ENOENT (ENOENT: no such file or directory, stat '<dir>/V2__dangling.sql')`,
  },
  {
    name: 'an applied file that was edited',
    files: { 'V1__a.sql': 'CREATE TABLE a (id bigint);' },
    setup: (db) => ledger(db, [['1', 'a', 'V1__a.sql', 'f'.repeat(64)]], 'CREATE TABLE a (id int);'),
    stderr:
      'refusing to migrate "bad": the ledger and the migration files disagree:\n' +
      `  version 1 (V1__a.sql) was applied with checksum ffffffffffff but the file now has ${migrationChecksum(Buffer.from('CREATE TABLE a (id bigint);')).slice(0, 12)}: applied migrations must not be edited`,
  },
  {
    name: 'an applied version missing on disk',
    files: { 'V1__a.sql': 'SELECT 1;' },
    setup: (db) => ledger(db, [['1', 'a', 'V1__a.sql', migrationChecksum(Buffer.from('SELECT 1;'))], ['2', 'gone', 'V2__gone.sql', 'e'.repeat(64)]]),
    stderr: 'refusing to migrate "bad": the ledger and the migration files disagree:\n  version 2 (gone) is applied in the database but has no file on disk',
  },
  {
    name: 'a pending version lower than the highest applied',
    files: { 'V1__old.sql': 'CREATE TABLE late (id int);', 'V2__b.sql': 'SELECT 1;' },
    setup: (db) => ledger(db, [['2', 'b', 'V2__b.sql', migrationChecksum(Buffer.from('SELECT 1;'))]]),
    stderr:
      'refusing to migrate "bad": the ledger and the migration files disagree:\n' +
      '  version 1 (V1__old.sql) is pending but lower than the highest applied version; rename it to a higher version, or allow it with --out-of-order',
  },
  {
    name: '--group with a file that cannot run in a transaction',
    files: { 'V1__a.sql': 'CREATE TABLE g (id int);', 'V2__idx.sql': 'CREATE INDEX CONCURRENTLY g_id ON g (id);' },
    args: ['--group'],
    stderr: 'cannot apply the pending migrations in one transaction: V2 (idx) must run outside a transaction',
  },
  {
    name: 'an alias no worker knows',
    files: { 'V1__a.sql': 'SELECT 1;' },
    args: ['--db', 'nobody'],
    stderr: 'database alias "nobody" is not configured: add it under "databases" in the config file or set PGCONVOY_DB_NOBODY',
  },
  { name: 'a target that is not a version', files: { 'V1__a.sql': 'SELECT 1;' }, args: ['--target', '1.5'], stderr: '--target must be a version: a whole number ≥ 0, got "1.5"' },
  {
    name: 'a NUL byte in a migration (PostgreSQL would silently drop what follows it)',
    files: { 'V1__ok.sql': 'CREATE TABLE ok (id int);', 'V2__nul.sql': Buffer.from('CREATE TABLE a (id int);\nCREATE TABLE b (id int);\0CREATE TABLE c (id int);') },
    stderr: `invalid migration set in <dir>:\n  V2__nul.sql: NUL byte at byte offset 49 (line 2, column 25); ${nulHelp}`,
  },
  {
    name: 'a NUL byte in an undo script',
    files: { 'V1__a.sql': 'CREATE TABLE a (id int);', 'U1__a.sql': Buffer.from('\0DROP TABLE a;') },
    stderr: `invalid migration set in <dir>:\n  U1__a.sql: NUL byte at byte offset 0 (line 1, column 1); ${nulHelp}`,
  },
  {
    name: 'a NUL byte in a check (refused before anything runs, not after)',
    files: { 'V1__a.sql': 'CREATE TABLE a (id int);', 'checks/no_rows.sql': Buffer.from('SELECT 1 FROM a\0 WHERE false;') },
    stderr: `invalid migration set in <dir>:\n  checks/no_rows.sql: NUL byte at byte offset 15 (line 1, column 16); ${nulHelp}`,
  },
  {
    name: 'a FIFO in the migration directory (reading it would wait forever)',
    files: { 'V1__a.sql': 'CREATE TABLE a (id int);' },
    setup: (_db, dir) => mkfifo(join(dir, 'V2__pipe.sql')),
    stderr: `invalid migration set in <dir>:\n  V2__pipe.sql: a FIFO (named pipe), ${notRegular}`,
  },
  {
    name: 'a symbolic link to a FIFO',
    files: { 'V1__a.sql': 'CREATE TABLE a (id int);' },
    setup: (_db, dir) => {
      mkdirSync(join(dir, 'pipes'));
      mkfifo(join(dir, 'pipes', 'fifo'));
      symlinkSync(join(dir, 'pipes', 'fifo'), join(dir, 'V2__linked.sql'));
    },
    stderr: `invalid migration set in <dir>:\n  V2__linked.sql: a symbolic link to a FIFO (named pipe), ${notRegular}`,
  },
  {
    name: 'a symbolic link to a device',
    files: { 'V1__a.sql': 'CREATE TABLE a (id int);' },
    setup: (_db, dir) => symlinkSync('/dev/zero', join(dir, 'V2__zero.sql')),
    stderr: `invalid migration set in <dir>:\n  V2__zero.sql: a symbolic link to a character device, ${notRegular}`,
  },
  {
    name: 'a FIFO among the checks',
    files: { 'V1__a.sql': 'CREATE TABLE a (id int);', 'checks/.keep': '' },
    setup: (_db, dir) => mkfifo(join(dir, 'checks', 'rows.sql')),
    stderr: `invalid migration set in <dir>:\n  checks/rows.sql: a FIFO (named pipe), ${notRegular}`,
  },
  {
    name: 'a file over files.maxFileBytes (it would stall the worker in the parser)',
    files: { 'V1__a.sql': 'CREATE TABLE a (id int);', 'V2__huge.sql': 'CREATE TABLE huge (id int);\n-- ' + 'x'.repeat(defaultFileLimits.maxFileBytes - 31) + '\n' },
    stderr:
      'invalid migration set in <dir>:\n  V2__huge.sql: file is 4194305 bytes (4.0 MiB), over the limit of 4194304 bytes (4.0 MiB, setting files.maxFileBytes); ' +
      'split it into smaller migrations, or raise the limit in the config',
  },
  {
    name: 'an upper-case .SQL extension (was silently ignored)',
    files: { 'V1__a.sql': 'CREATE TABLE a (id int);', 'V2__b.SQL': 'CREATE TABLE b (id int);' },
    stderr: 'invalid migration set in <dir>:\n  V2__b.SQL: the extension must be lowercase ".sql", got ".SQL"; rename the file',
  },
  {
    name: 'a mixed-case extension on an undo script',
    files: { 'V1__a.sql': 'CREATE TABLE a (id int);', 'U1__a.Sql': 'DROP TABLE a;' },
    stderr: 'invalid migration set in <dir>:\n  U1__a.Sql: the extension must be lowercase ".sql", got ".Sql"; rename the file',
  },
  {
    name: 'an upper-case extension on a check',
    files: { 'V1__a.sql': 'CREATE TABLE a (id int);', 'checks/orphans.SQL': 'SELECT 1 WHERE false;' },
    stderr: 'invalid migration set in <dir>:\n  checks/orphans.SQL: the extension must be lowercase ".sql", got ".SQL"; rename the file',
  },
  {
    name: 'every kind of unreadable file reported at once, with the set\'s other problems',
    files: { 'V1__a.sql': 'CREATE TABLE a (id int);', 'V2__b.SQL': '', 'V3__nul.sql': Buffer.from([0x3b, 0]), 'V4_c.sql': '' },
    setup: (_db, dir) => mkfifo(join(dir, 'V5__pipe.sql')),
    stderr:
      'invalid migration set in <dir>:\n' +
      '  V2__b.SQL: the extension must be lowercase ".sql", got ".SQL"; rename the file\n' +
      `  V3__nul.sql: NUL byte at byte offset 1 (line 1, column 2); ${nulHelp}\n` +
      `  V4_c.sql: version and description must be separated by two underscores; ${help}\n` +
      `  V5__pipe.sql: a FIFO (named pipe), ${notRegular}`,
  },
  { name: 'a lower-case prefix', files: { 'V1__a.sql': 'SELECT 1;', 'v2__b.sql': 'SELECT 1;' }, stderr: `invalid migration set in <dir>:\n  v2__b.sql: unknown prefix "v"; ${help}` },
  {
    name: 'a migration directory that does not exist',
    files: {},
    setup: (_db, dir) => rmSync(dir, { recursive: true }),
    stderr: "invalid migration set in <dir>:\n  <dir>: cannot read the migration directory: ENOENT (ENOENT: no such file or directory, scandir '<dir>')",
  },
  {
    name: 'SAVEPOINT in a file',
    files: { 'V1__sp.sql': 'CREATE TABLE s (id int);\nSAVEPOINT before_insert;\nINSERT INTO s VALUES (1);\n' },
    stderr:
      'invalid migration set in <dir>:\n  V1__sp.sql: statement 2 at line 2 (SAVEPOINT): transaction control does not belong in a migration file; ' +
      'pgconvoy runs each file in a transaction of its own (or, with "-- pgconvoy:no-transaction", statement by statement)',
  },
  {
    name: 'a zero lock timeout',
    files: { 'V1__a.sql': '-- pgconvoy:lock-timeout 0s\nCREATE TABLE a (id int);\n' },
    stderr: 'invalid migration set in <dir>:\n  V1__a.sql: line 1: "pgconvoy:lock-timeout" needs a positive duration such as 500ms, 5s, 2min or 1h, got "0s"',
  },
  {
    name: 'a statement timeout in words',
    files: { 'V1__a.sql': '-- pgconvoy:statement-timeout 5 seconds\nCREATE TABLE a (id int);\n' },
    stderr: 'invalid migration set in <dir>:\n  V1__a.sql: line 1: "pgconvoy:statement-timeout" needs a positive duration such as 500ms, 5s, 2min or 1h, got "5 seconds"',
  },
  {
    name: '--group with a file that asks for no transaction',
    files: { 'V1__a.sql': 'CREATE TABLE g (id int);', 'V2__nt.sql': '-- pgconvoy:no-transaction\nCREATE TABLE h (id int);\nCREATE TABLE i (id int);\n' },
    args: ['--group'],
    stderr: 'cannot apply the pending migrations in one transaction: V2 (nt) must run outside a transaction',
  },
  { name: 'a negative target', files: { 'V1__a.sql': 'SELECT 1;' }, args: ['--target=-1'], stderr: '--target must be a version: a whole number ≥ 0, got "-1"' },
  {
    name: 'an approval timeout that is not a duration',
    files: { 'V1__a.sql': 'SELECT 1;' },
    args: ['--require-approval', '--approval-timeout', 'tomorrow'],
    stderr: '--approval-timeout needs a duration such as 30min or 24h, got "tomorrow"',
  },
  {
    name: 'a config file with an unknown key',
    files: { 'V1__a.sql': 'CREATE TABLE a (id int);', 'pgconvoy.config.json': '{ "migration": "sql" }' },
    stderr: 'invalid configuration (<dir>/pgconvoy.config.json):\n  (root): Unrecognized key: "migration"',
  },
  {
    name: 'a config file that is not JSON',
    files: { 'V1__a.sql': 'CREATE TABLE a (id int);', 'pgconvoy.config.json': '{ "execution": { "lockTimeoutMs": 5000, } }' },
    stderr: 'invalid configuration (<dir>/pgconvoy.config.json):\n  not valid JSON: Expected double-quoted property name in JSON at position 40',
  },
  {
    name: 'a config setting of the wrong type',
    files: { 'V1__a.sql': 'CREATE TABLE a (id int);', 'pgconvoy.config.json': '{ "files": { "maxFileBytes": "4MB" } }' },
    stderr: 'invalid configuration (<dir>/pgconvoy.config.json):\n  files.maxFileBytes: Invalid input: expected number, received string',
  },
  {
    name: 'a config alias in capitals (was "Invalid key in record")',
    files: { 'V1__a.sql': 'CREATE TABLE a (id int);', 'pgconvoy.config.json': '{ "databases": { "Orders": { "url": "postgres://127.0.0.1/orders" } } }' },
    stderr: 'invalid configuration (<dir>/pgconvoy.config.json):\n  databases.Orders: an alias is lower-case letters, digits, "_", "." or "-", starting with a letter or digit',
  },
  {
    name: 'a config alias with both url and urlEnv',
    files: { 'V1__a.sql': 'CREATE TABLE a (id int);', 'pgconvoy.config.json': '{ "databases": { "bad": { "url": "postgres://127.0.0.1/bad", "urlEnv": "BAD_URL" } } }' },
    stderr: 'invalid configuration (<dir>/pgconvoy.config.json):\n  databases.bad: give exactly one of "url" or "urlEnv"',
  },
  {
    name: 'a config alias whose urlEnv is not set',
    files: { 'V1__a.sql': 'CREATE TABLE a (id int);', 'pgconvoy.config.json': '{ "databases": { "bad": { "urlEnv": "PGCONVOY_TEST_UNSET_URL" } } }' },
    stderr: 'invalid configuration (<dir>/pgconvoy.config.json):\n  databases.bad: environment variable PGCONVOY_TEST_UNSET_URL is not set',
  },
  {
    name: 'a database name that does not exist',
    files: { 'V1__a.sql': 'CREATE TABLE a (id int);' },
    databases: (db) => ({ nodb: urlWith(db, (u) => (u.pathname = '/pgconvoy_no_such_database')) }),
    args: ['--db', 'nodb'],
    stderr: 'cannot connect to database "nodb": database "pgconvoy_no_such_database" does not exist (SQLSTATE 3D000); check the database name in its connection string',
  },
  {
    name: 'a role that does not exist',
    files: { 'V1__a.sql': 'CREATE TABLE a (id int);' },
    databases: (db) => ({ norole: urlWith(db, (u) => (u.username = 'pgconvoy_no_such_role')) }),
    args: ['--db', 'norole'],
    stderr: `cannot connect to database "norole": role "pgconvoy_no_such_role" does not exist (SQLSTATE 28000); check the user in its connection string and the server's pg_hba.conf`,
  },
  {
    name: 'a connection string that does not parse (the password stays out of the message)',
    files: { 'V1__a.sql': 'CREATE TABLE a (id int);' },
    databases: () => ({ badurl: 'postgres://postgres:hunter2-secret@127.0.0.1:notaport/x' }),
    args: ['--db', 'badurl'],
    stderr: 'cannot connect to database "badurl": its connection string is not a valid postgres:// or postgresql:// URL',
  },
  {
    name: 'a connection string that is not postgres://',
    files: { 'V1__a.sql': 'CREATE TABLE a (id int);' },
    databases: (db) => ({ mysql: db.url.replace(/^postgres:/, 'mysql:') }),
    args: ['--db', 'mysql'],
    stderr: 'cannot connect to database "mysql": its connection string is not a valid postgres:// or postgresql:// URL',
  },
  {
    name: 'a role without the privilege to create the ledger',
    files: { 'V1__a.sql': 'CREATE TABLE a (id int);' },
    setup: () => adminQuery(`DROP ROLE IF EXISTS ${noPrivilegeRole}; CREATE ROLE ${noPrivilegeRole} LOGIN`).then(() => undefined),
    cleanup: () => adminQuery(`DROP ROLE IF EXISTS ${noPrivilegeRole}`),
    databases: (db) => ({ nopriv: urlWith(db, (u) => (u.username = noPrivilegeRole)) }),
    args: ['--db', 'nopriv'],
    stderr:
      'permission denied on database "nopriv": permission denied for database <db> (SQLSTATE 42501); ' +
      'the role in its connection string needs CONNECT, and CREATE on the database for the pgconvoy schema',
  },
  {
    name: 'a target beyond the last migration',
    files: { 'V1__a.sql': 'CREATE TABLE a (id int);', 'V2__b.sql': 'CREATE TABLE b (id int);' },
    args: ['--target', '3'],
    stderr: 'target version 3 is beyond the last migration in <dir> (version 2); nothing was changed: name a version up to the last one, or leave out the target to apply everything',
  },
  {
    name: 'a Temporal address nobody answers on',
    files: { 'V1__a.sql': 'CREATE TABLE a (id int);' },
    env: { TEMPORAL_ADDRESS: '127.0.0.1:1' },
    stderr: 'cannot reach Temporal at 127.0.0.1:1 within 5 s: check that the server runs there (TEMPORAL_ADDRESS, or temporal.address in the config)',
    code: 3,
  },
];

/** Writes ledger rows (version, description, file, checksum) as if they had been applied, after `sql`. */
async function ledger(db: TestDatabase, rows: Array<[string, string, string, string]>, sql?: string): Promise<void> {
  if (sql) await db.query(sql);
  await withClient({ alias: 'bad', url: db.url }, async (client) => {
    await ensureLedger(client);
    for (const [version, description, file, checksum] of rows) {
      await insertHistory(client, { version, description, file, checksum, status: 'applied', startedAt: new Date(), executionMs: 1 });
    }
  });
}

/** Everything a migration could change: relations outside the system schemas, and the ledger. */
async function snapshot(db: TestDatabase): Promise<unknown> {
  const relations = await db.query<{ nspname: string; relname: string; relkind: string }>(
    `SELECT n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2`,
  );
  const hasLedger = relations.rows.some((r) => r.relname === 'history');
  const ledgerRows = hasLedger ? (await db.query('SELECT version::text, status, checksum FROM pgconvoy.history ORDER BY id')).rows : [];
  return { relations: relations.rows, ledgerRows };
}

test(`bad input: ${cases.length} malformed sets and commands, each refused with its exact message, a non-zero exit, and the database unchanged`, async (t) => {
  assert.ok(cases.length >= 40);
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const extra = Object.assign({}, ...cases.map((c) => c.databases?.(db) ?? {})) as Record<string, string>;
  const config = testConfig({ databases: { bad: db.url, ...extra }, migrationsDir: '/unused' });
  const env = { ...services.temporalEnv, PGCONVOY_TASK_QUEUE: config.temporal.taskQueue, PGCONVOY_LOG_LEVEL: 'silent' };

  await withWorker(config, async () => {
    for (const c of cases) {
      await t.test(c.name, async () => {
        await db.query('DROP SCHEMA IF EXISTS pgconvoy CASCADE; DROP SCHEMA public CASCADE; CREATE SCHEMA public;');
        const set = writeMigrations(c.files);
        try {
          await c.setup?.(db, set.dir);
          const before = await snapshot(db);
          const args = c.args?.includes('--db') ? c.args : ['--db', 'bad', ...(c.args ?? [])];
          const result = await runInProcess(['--migrations', set.dir, 'up', ...args], { ...env, ...c.env }, set.dir);
          const stderr = result.stderr
            .split(set.dir)
            .join('<dir>')
            .split(db.name)
            .join('<db>')
            .replace(/^pgconvoy: migrating .*\n/, '')
            .replace(/^workflow: .*\n/m, '');
          assert.equal(result.code, c.code ?? 2, `exit code; stderr:\n${result.stderr}`);
          assert.equal(stderr.replace(/^pgconvoy: (\[[A-Za-z]+\] )?/, '').trimEnd(), c.stderr);
          assert.deepEqual(await snapshot(db), before, 'the database is unchanged');
        } finally {
          set.remove();
          await c.cleanup?.();
        }
      });
    }
  });
});
