import assert from 'node:assert/strict';
import { test, test as nodeTest, type TestContext } from 'node:test';
import { ExitCode } from '../../src/client/exit-codes';
import { type TestDatabase } from '../helpers/database';
import { services } from '../helpers/services';
import { testConfig, withWorker } from '../helpers/temporal';
import { cliFixture } from '../helpers/cli-fixture';
import { cliEnv, runCli } from '../helpers/cli';
import { writeMigrations } from '../helpers/migrations';

/** A database, a migration set and a worker that knows the database as `app`; `cli` runs the real CLI against them. */
const fixture = (t: { after(fn: () => unknown): void }, files: Record<string, string>) => cliFixture(t, files);
const testBackup = testConfig({ databases: {}, migrationsDir: '/nonexistent' }).backup;

async function ledger(db: TestDatabase): Promise<Array<{ version: string; status: string; source: string }>> {
  const result = await db.query<{ version: string; status: string; source: string }>('SELECT version::text, status, source FROM pgconvoy.history ORDER BY id');
  return result.rows;
}

/**
 * The failure report, on the machine's PostgreSQL and on the harness's
 * PostgreSQL 18 (which no pg_dump here can back up: those runs take none).
 */
const servers = [
  { label: '', options: {} },
  {
    label: ' [PostgreSQL 18]',
    options: {
      get adminUrl() {
        return services.newerAdminUrl;
      },
      config: { backup: { ...testBackup, scope: 'none' as const, reason: 'a test server newer than the machine pg_dump' } },
    },
  },
];

for (const server of servers) {
  const test = (name: string, fn: (t: TestContext) => Promise<void>): void => void nodeTest(`${name}${server.label}`, fn);
  const fixture = (t: { after(fn: () => unknown): void }, files: Record<string, string>) => cliFixture(t, files, 'app', undefined, server.options);

  test('halt: a failed transactional migration exits 4 with a report of the line, the ledger tail and the next step', async (t) => {
    const { db, config, cli } = await fixture(t, {
      'V1__ok.sql': 'CREATE TABLE ok (id int);',
      'V2__broken.sql': 'CREATE TABLE half (id int);\nALTER TABLE half ADD COLUMN total numeric;\nUPDATE half SET totl = 0;\n',
    });
    const result = await withWorker(config, () => cli('up', '--db', 'app', '--on-failure', 'halt'));
    assert.equal(result.code, ExitCode.rolledBack, result.stderr);
    const report = result.stderr.replace(/^pgconvoy: migrating .*\n/, '');
    assert.match(
      report,
      /^pgconvoy: \[MigrationFailed\] V2__broken\.sql \(version 2\) failed at statement 3 of 3, line 3, column 17: SQLSTATE 42703: column "totl" of relation "half" does not exist\n/,
    );
    assert.ok(report.includes('\n  2 | ALTER TABLE half ADD COLUMN total numeric;\n> 3 | UPDATE half SET totl = 0;\n    |                 ^\n'), report);
    assert.ok(report.includes('\nstate: rolled back: nothing of V2__broken.sql remains; migrations before it stay applied\n'), report);
    assert.match(report, /\nlast ledger entries:\n {2}\S+ {2}V1 {2}applied {5}V1__ok\.sql\n {2}\S+ {2}V2 {2}failed {6}V2__broken\.sql {2}SQLSTATE 42703 at statement 3\n/);
    assert.ok(report.includes('\nnext: fix V2__broken.sql and run `pgconvoy up --db app` again\nworkflow: pgconvoy/db/app\n'), report);
    assert.deepEqual(await ledger(db), [{ version: '1', status: 'applied', source: 'run' }, { version: '2', status: 'failed', source: 'run' }]);
  });

  test('a failed no-transaction migration: exit 1, the report says which statements stay, and a fixed file resumes after them', async (t) => {
    const { db, set, config, cli } = await fixture(t, {
      'V1__steps.sql': '-- pgconvoy:no-transaction\nCREATE TABLE s1 (id int);\nCREATE TABLE s2 (id int);\nCREATE TABLE s1 (id int);\nCREATE TABLE s4 (id int);\n',
    });
    await withWorker(config, async () => {
      const failed = await cli('up', '--db', 'app', '--on-failure', 'halt');
      assert.equal(failed.code, ExitCode.failed, failed.stderr);
      assert.ok(failed.stderr.includes('\nstate: statements 1-2 of 4 of V1__steps.sql are applied and stay; the rest did not run\n'), failed.stderr);
      assert.ok(failed.stderr.includes('\nnext: fix statement 3 of V1__steps.sql and run `pgconvoy up --db app`: it resumes at statement 3 as long as statements 1-2 are unchanged\n'), failed.stderr);

      const { writeFileSync } = await import('node:fs');
      writeFileSync(`${set.dir}/V1__steps.sql`, '-- pgconvoy:no-transaction\nCREATE TABLE s1 (id int);\nCREATE TABLE s2 (id int);\nCREATE TABLE s3 (id int);\nCREATE TABLE s4 (id int);\n');
      const fixed = await cli('up', '--db', 'app', '--json');
      assert.equal(fixed.code, ExitCode.ok, fixed.stderr);
      assert.equal((JSON.parse(fixed.stdout) as { status: string }).status, 'applied');
    });
    const tables = await db.query<{ t: string }>(`SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`);
    assert.deepEqual(tables.rows.map((r) => r.t), ['s1', 's2', 's3', 's4']);
    const rows = await db.query('SELECT status, statements_done, statements_total FROM pgconvoy.history ORDER BY id');
    assert.deepEqual(rows.rows, [
      { status: 'failed', statements_done: 2, statements_total: 4 },
      { status: 'applied', statements_done: 4, statements_total: 4 },
    ]);
  });
}

test('--target stops at a version, plan shows statements and locks without changing anything, --detailed-exitcode tells applied from nothing to do', async (t) => {
  const { db, config, cli } = await fixture(t, {
    'V1__a.sql': 'CREATE TABLE a (id int PRIMARY KEY);',
    'V2__b.sql': 'ALTER TABLE a ADD COLUMN note text;\nCREATE INDEX a_note ON a (note);\n',
    'V3__c.sql': '-- pgconvoy:no-transaction\nCREATE INDEX CONCURRENTLY a_note2 ON a (note);\n',
  });
  await withWorker(config, async () => {
    const plan = await cli('plan', '--db', 'app');
    assert.equal(plan.code, ExitCode.ok, plan.stderr);
    assert.match(plan.stdout, /^plan for database "app" \(no migrations applied\): 3 pending\n/);
    assert.match(plan.stdout, /V2 {2}b {2}\(V2__b\.sql, one transaction, 2 statements\)\n {2}1 {2}line 1 {2}ACCESS EXCLUSIVE on a {2}ALTER TABLE a ADD COLUMN note text\n {2}2 {2}line 2 {2}SHARE on a {13}CREATE INDEX a_note ON a \(note\)\n/);
    assert.match(plan.stdout, /V3 {2}c {2}\(V3__c\.sql, no transaction: statement by statement, 1 statement\)\n {2}1 {2}line 2 {2}SHARE UPDATE EXCLUSIVE on a {2}CREATE INDEX CONCURRENTLY a_note2 ON a \(note\)\n/);
    const schemas = await db.query(`SELECT 1 FROM pg_namespace WHERE nspname = 'pgconvoy'`);
    assert.equal(schemas.rowCount, 0, 'plan created nothing, not even the ledger');

    const first = await cli('up', '--db', 'app', '--target', '2', '--detailed-exitcode');
    assert.equal(first.code, ExitCode.applied, first.stderr);
    assert.match(first.stdout, /2 migrations applied; database "app" is at version 2\n$/);
    const second = await cli('up', '--db', 'app', '--target', '2', '--detailed-exitcode');
    assert.equal(second.code, ExitCode.ok);
    assert.equal(second.stdout, 'nothing to apply: database "app" is up to date (version 2)\n');
    const validate = await cli('validate', '--db', 'app');
    assert.equal(validate.code, ExitCode.ok, validate.stderr);
    assert.match(validate.stdout, /^3 migrations in .* are valid \(0 with undo scripts; manifest [0-9a-f]{12}\); the ledger of "app" agrees \(1 pending\)\n$/);
  });
  assert.deepEqual((await ledger(db)).map((r) => r.version), ['1', '2']);
});

test('--out-of-order applies a late-arriving lower version when asked', async (t) => {
  const { db, set, config, cli } = await fixture(t, { 'V2__b.sql': 'CREATE TABLE b (id int);' });
  await withWorker(config, async () => {
    assert.equal((await cli('up', '--db', 'app')).code, ExitCode.ok);
    const { writeFileSync } = await import('node:fs');
    writeFileSync(`${set.dir}/V1__late.sql`, 'CREATE TABLE late (id int);');
    const refused = await cli('up', '--db', 'app');
    assert.equal(refused.code, ExitCode.badInput);
    const allowed = await cli('up', '--db', 'app', '--out-of-order');
    assert.equal(allowed.code, ExitCode.ok, allowed.stderr);
  });
  assert.deepEqual((await ledger(db)).map((r) => r.version), ['2', '1']);
});

test('baseline adopts an existing database; mark-applied records a hand-applied migration with its reason; history shows both', async (t) => {
  const { db, config, cli } = await fixture(t, {
    'V1__a.sql': 'CREATE TABLE a (id int);',
    'V2__b.sql': 'CREATE TABLE b (id int);',
    'V3__c.sql': 'CREATE TABLE c (id int);',
    'V4__d.sql': 'CREATE TABLE d (id int);',
  });
  await db.query('CREATE TABLE a (id int); CREATE TABLE b (id int); CREATE TABLE c (id int);');
  await withWorker(config, async () => {
    const baseline = await cli('baseline', '2', '--db', 'app');
    assert.equal(baseline.code, ExitCode.ok, baseline.stderr);
    assert.equal(baseline.stdout, 'database "app" baselined at version 2: migrations up to it will not run\n');
    const again = await cli('baseline', '2', '--db', 'app');
    assert.equal(again.code, ExitCode.badInput);
    assert.match(again.stderr, /\[LedgerChangeRefused\] cannot baseline: the ledger already records applied migrations/);

    const mark = await cli('mark-applied', '3', '--db', 'app', '--reason', 'applied by hand during incident 42');
    assert.equal(mark.code, ExitCode.ok, mark.stderr);
    const missingReason = await cli('mark-applied', '4', '--db', 'app');
    assert.equal(missingReason.code, ExitCode.badInput);
    assert.match(missingReason.stderr, /required option '--reason <text>' not specified/);

    const up = await cli('up', '--db', 'app', '--json');
    assert.equal(up.code, ExitCode.ok, up.stderr);
    assert.deepEqual((JSON.parse(up.stdout) as { applied: Array<{ version: string }> }).applied.map((a) => a.version), ['4']);

    const history = await cli('history', '--db', 'app');
    assert.equal(history.code, ExitCode.ok);
    assert.match(history.stdout, /^version +description +status +finished +time +source +risk +note\n2 +<< baseline >> +baseline .* baseline +baseline of an existing database\n3 +c +applied .* mark-applied +applied by hand during incident 42\n4 +d +applied .* run +low\n$/);
  });
});

test('import takes over a Flyway ledger (baseline and applied rows) and refuses a failed entry', async (t) => {
  const { db, config, cli } = await fixture(t, {
    'V1__base.sql': 'CREATE TABLE base (id int);',
    'V2__users.sql': 'CREATE TABLE users (id int);',
    'V3__orders.sql': 'CREATE TABLE orders (id int);',
    'V4__new.sql': 'CREATE TABLE new_one (id int);',
  });
  await db.query(`
    CREATE TABLE flyway_schema_history (
      installed_rank int PRIMARY KEY, version varchar(50), description varchar(200) NOT NULL, type varchar(20) NOT NULL,
      script varchar(1000) NOT NULL, checksum int, installed_by varchar(100) NOT NULL, installed_on timestamp NOT NULL DEFAULT now(),
      execution_time int NOT NULL, success boolean NOT NULL);
    INSERT INTO flyway_schema_history VALUES
      (1, '1', '<< Flyway Baseline >>', 'BASELINE', '<< Flyway Baseline >>', NULL, 'me', now(), 0, true),
      (2, '2', 'users', 'SQL', 'V2__users.sql', 123, 'me', now(), 5, true),
      (3, '3', 'orders', 'SQL', 'V3__orders.sql', 456, 'me', now(), 5, true);
    CREATE TABLE base (id int); CREATE TABLE users (id int); CREATE TABLE orders (id int);`);
  await withWorker(config, async () => {
    const imported = await cli('import', '--db', 'app', '--from', 'flyway');
    assert.equal(imported.code, ExitCode.ok, imported.stderr);
    assert.equal(imported.stdout, 'imported from flyway into "app": 2 applied, baseline at version 1\n');
    const up = await cli('up', '--db', 'app', '--json');
    assert.equal(up.code, ExitCode.ok, up.stderr);
    assert.deepEqual((JSON.parse(up.stdout) as { applied: Array<{ version: string }> }).applied.map((a) => a.version), ['4']);
  });
  assert.deepEqual(await ledger(db), [
    { version: '2', status: 'applied', source: 'import:flyway' },
    { version: '3', status: 'applied', source: 'import:flyway' },
    { version: '1', status: 'baseline', source: 'import:flyway' },
    { version: '4', status: 'applied', source: 'run' },
  ]);

  const other = await fixture(t, { 'V1__a.sql': 'SELECT 1;' });
  await other.db.query(`
    CREATE TABLE flyway_schema_history (installed_rank int, version varchar(50), description text, type text, script text,
      checksum int, installed_by text, installed_on timestamp DEFAULT now(), execution_time int, success boolean);
    INSERT INTO flyway_schema_history VALUES (1, '1', 'a', 'SQL', 'V1__a.sql', 1, 'me', now(), 1, false);`);
  const refused = await withWorker(other.config, () => other.cli('import', '--db', 'app', '--from', 'flyway'));
  assert.equal(refused.code, ExitCode.badInput);
  assert.match(refused.stderr, /cannot import from flyway: V1__a\.sql \(version 1\) is recorded as failed; repair the flyway history first/);
});

test('import takes over golang-migrate (current version as baseline) and Refinery ledgers, and refuses a dirty golang-migrate', async (t) => {
  const golang = await fixture(t, { 'V1__a.sql': 'CREATE TABLE a (id int);', 'V2__b.sql': 'CREATE TABLE b (id int);', 'V3__c.sql': 'CREATE TABLE c (id int);' });
  await golang.db.query(`CREATE TABLE schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL);
    INSERT INTO schema_migrations VALUES (2, false); CREATE TABLE a (id int); CREATE TABLE b (id int);`);
  await withWorker(golang.config, async () => {
    const imported = await golang.cli('import', '--db', 'app', '--from', 'golang-migrate');
    assert.equal(imported.code, ExitCode.ok, imported.stderr);
    assert.equal(imported.stdout, 'imported from golang-migrate into "app": 0 applied, baseline at version 2\n');
    const up = await golang.cli('up', '--db', 'app', '--json');
    assert.deepEqual((JSON.parse(up.stdout) as { applied: Array<{ version: string }> }).applied.map((a) => a.version), ['3']);
  });

  const dirty = await fixture(t, { 'V1__a.sql': 'SELECT 1;' });
  await dirty.db.query(`CREATE TABLE schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL); INSERT INTO schema_migrations VALUES (1, true);`);
  const refused = await withWorker(dirty.config, () => dirty.cli('import', '--db', 'app', '--from', 'golang-migrate'));
  assert.equal(refused.code, ExitCode.badInput);
  assert.match(refused.stderr, /schema_migrations says version 1 is dirty \(it failed half-way\)/);

  const refinery = await fixture(t, { 'V1__a.sql': 'CREATE TABLE a (id int);', 'V2__b.sql': 'CREATE TABLE b (id int);' });
  await refinery.db.query(`CREATE TABLE refinery_schema_history (version int4 PRIMARY KEY, name varchar(255), applied_on varchar(255), checksum varchar(255));
    INSERT INTO refinery_schema_history VALUES (1, 'a', '2024-01-01T00:00:00Z', '123'); CREATE TABLE a (id int);`);
  await withWorker(refinery.config, async () => {
    const imported = await refinery.cli('import', '--db', 'app', '--from', 'refinery');
    assert.equal(imported.stdout, 'imported from refinery into "app": 1 applied\n');
    const up = await refinery.cli('up', '--db', 'app', '--json');
    assert.deepEqual((JSON.parse(up.stdout) as { applied: Array<{ version: string }> }).applied.map((a) => a.version), ['2']);
  });
});

test('plan and validate --db refuse when the worker reads other files at the same path, and name the worker when it lacks an alias this command knows', async (t) => {
  const { set, config, env } = await fixture(t, { 'V1__a.sql': 'CREATE TABLE a (id int);', 'V2__b.sql': 'CREATE TABLE b (id int);', 'V3__c.sql': 'CREATE TABLE c (id int);' });
  // This command's machine has only V1 and V2 where the worker's has V1-V3: its
  // own mount namespace shows it another folder at the same path.
  const here = writeMigrations({ 'V1__a.sql': 'CREATE TABLE a (id int);', 'V2__b.sql': 'CREATE TABLE b (id int);' });
  t.after(() => here.remove());
  const elsewhere = ['unshare', '--mount', 'sh', '-c', 'mount --bind "$0" "$1" && shift && exec "$@"', here.dir, set.dir];
  const cli = (...args: string[]) => runCli(['--migrations', set.dir, ...args], { env: cliEnv(env), wrap: elsewhere });
  await withWorker(config, async () => {
    for (const command of [['plan', '--db', 'app'], ['validate', '--db', 'app']]) {
      const result = await cli(...command);
      assert.equal(result.code, ExitCode.badInput, `${command.join(' ')}: ${result.stdout}${result.stderr}`);
      assert.match(result.stderr, new RegExp(`^pgconvoy: the worker read other migration files than this command: ${set.dir} is manifest [0-9a-f]{12} on the worker and [0-9a-f]{12} here; checking "app" needs the same files on both`));
    }
    const unknown = await runCli(['--migrations', set.dir, 'validate', '--db', 'other'], { env: cliEnv({ ...env, PGCONVOY_DB_OTHER: 'postgres://nobody@127.0.0.1:1/none' }) });
    assert.equal(unknown.code, ExitCode.badInput, unknown.stderr);
    assert.match(unknown.stderr, /\[UnknownDatabase\] database alias "other" is not configured/);
    assert.ok(unknown.stderr.includes(`"other" is configured for this command (PGCONVOY_DB_OTHER or the config file here), but not for the worker that ran it (task queue "${config.temporal.taskQueue}"`), unknown.stderr);
  });
});
