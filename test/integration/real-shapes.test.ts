import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ExitCode } from '../../src/client/exit-codes';
import { withClient } from '../../src/db/connection';
import { ensureLedger, ledgerSteps } from '../../src/db/ledger';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { runInProcess } from '../helpers/in-process-cli';
import { withWorker } from '../helpers/temporal';
import { cliFixture } from '../helpers/cli-fixture';
import { services } from '../helpers/services';

/**
 * Shapes that real migration histories have and hand-made fixtures tend not
 * to: a first version of 0 written with 14 zeros (diesel), and files that are
 * empty (0 bytes), blank, or only comments — forward and undo.
 */
const realShapes: Record<string, string> = {
  'V00000000000000__initial_setup.sql': 'CREATE TABLE settings (key text PRIMARY KEY, value text);\n',
  'U00000000000000__initial_setup.sql': 'DROP TABLE settings;\n',
  'V20240101000000__users.sql': 'CREATE TABLE users (id int PRIMARY KEY, email text);\n',
  'U20240101000000__users.sql': 'DROP TABLE users;\n',
  'V20240102000000__zero_bytes.sql': '',
  'U20240102000000__zero_bytes.sql': '',
  'V20240103000000__whitespace.sql': '  \n\n\t \r\n',
  'U20240103000000__whitespace.sql': '\n',
  'V20240104000000__comments.sql': '-- this migration was left empty on purpose\n/* the change moved to the next one */\n',
  'U20240104000000__comments.sql': '-- nothing to undo',
  'V20240105000000__orders.sql': 'CREATE TABLE orders (id int PRIMARY KEY, user_id int REFERENCES users (id));\nCREATE INDEX orders_user ON orders (user_id);\n',
  'U20240105000000__orders.sql': 'DROP TABLE orders;\n',
};
const allVersions = ['0', '20240101000000', '20240102000000', '20240103000000', '20240104000000', '20240105000000'];

const fixture = (t: { after(fn: () => unknown): void }, files: Record<string, string>) => cliFixture(t, files);

async function ledgerRows(db: TestDatabase): Promise<Array<{ version: string; status: string; source: string; statements_total: number | null }>> {
  const result = await db.query<{ version: string; status: string; source: string; statements_total: number | null }>(
    'SELECT version::text, status, source, statements_total FROM pgconvoy.history ORDER BY id',
  );
  return result.rows;
}

test('a set with version 0 and empty, blank and comments-only files: validate, lint, plan, up (to --target 0, then all), rehearse', async (t) => {
  const { db, set, config, cli } = await fixture(t, realShapes);

  const validate = await cli('validate');
  assert.equal(validate.code, ExitCode.ok, validate.stderr);
  assert.match(validate.stdout, /^6 migrations in .* are valid \(6 with undo scripts; manifest [0-9a-f]{12}\)\n$/);

  const lint = await cli('lint');
  assert.deepEqual([lint.code, lint.stdout, lint.stderr], [ExitCode.ok, 'no findings\n', '']);

  await withWorker(config, async () => {
    const plan = await cli('plan', '--db', 'app');
    assert.equal(plan.code, ExitCode.ok, plan.stderr);
    assert.match(plan.stdout, /^plan for database "app" \(no migrations applied\): 6 pending\n/);
    const order = [...plan.stdout.matchAll(/^V(\d+) {2}/gm)].map((m) => m[1]);
    assert.deepEqual(order, allVersions, plan.stdout);
    assert.match(plan.stdout, /V20240102000000 {2}zero bytes {2}\(V20240102000000__zero_bytes\.sql, one transaction, 0 statements\)\n/);

    const toZero = await cli('up', '--db', 'app', '--target', '0');
    assert.equal(toZero.code, ExitCode.ok, toZero.stderr);
    assert.match(toZero.stdout, /1 migration applied; database "app" is at version 0\n$/);
    assert.deepEqual(await ledgerRows(db), [{ version: '0', status: 'applied', source: 'run', statements_total: 1 }]);

    const up = await cli('up', '--db', 'app');
    assert.equal(up.code, ExitCode.ok, up.stderr);
    assert.match(up.stdout, /5 migrations applied; database "app" is at version 20240105000000\n$/);

    const again = await cli('validate', '--db', 'app');
    assert.equal(again.code, ExitCode.ok, again.stderr);
  });
  assert.deepEqual(
    (await ledgerRows(db)).map((r) => [r.version, r.status, r.statements_total]),
    [
      ['0', 'applied', 1],
      ['20240101000000', 'applied', 1],
      ['20240102000000', 'applied', 0],
      ['20240103000000', 'applied', 0],
      ['20240104000000', 'applied', 0],
      ['20240105000000', 'applied', 2],
    ],
  );
  const tables = await db.query<{ t: string }>(`SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`);
  assert.deepEqual(tables.rows.map((r) => r.t), ['orders', 'settings', 'users']);

  const scratch = await createTestDatabase();
  t.after(() => scratch.drop());
  const rehearse = await runInProcess(['--migrations', set.dir, 'rehearse', '--db', 'scratch'], { PGCONVOY_DB_SCRATCH: scratch.url }, set.dir);
  assert.equal(rehearse.code, ExitCode.ok, rehearse.stdout + rehearse.stderr);
  assert.match(rehearse.stdout, /^ok +upgrade +6 migrations applied\n/);
  assert.match(rehearse.stdout, /\nok +undo +6 undo scripts ran in reverse\n/);
  assert.match(rehearse.stdout, /\nrehearsal passed\n$/);
});

test('version 0 in the ledger commands: mark-applied 0 and baseline 0', async (t) => {
  const { db, config, cli } = await fixture(t, {
    'V0__initial.sql': 'CREATE TABLE a (id int);',
    'V1__next.sql': 'CREATE TABLE b (id int);',
  });
  const other = await createTestDatabase();
  t.after(() => other.drop());
  const env = { ...services.temporalEnv, PGCONVOY_TASK_QUEUE: config.temporal.taskQueue, PGCONVOY_LOG_LEVEL: 'silent' };
  await withWorker({ ...config, databases: { ...config.databases, other: other.url } }, async () => {
    const marked = await cli('mark-applied', '0', '--db', 'app', '--reason', 'created by hand');
    assert.equal(marked.code, ExitCode.ok, marked.stderr);
    assert.equal(marked.stdout, 'version 0 recorded as applied in "app" (not run)\n');
    assert.deepEqual(await ledgerRows(db), [{ version: '0', status: 'applied', source: 'mark-applied', statements_total: null }]);
    const plan = await cli('plan', '--db', 'app');
    assert.match(plan.stdout, /: 1 pending\n/, plan.stdout);

    const baseline = await runInProcess(['--migrations', config.migrationsDir, 'baseline', '00', '--db', 'other'], env, config.migrationsDir);
    assert.equal(baseline.code, ExitCode.ok, baseline.stderr);
    assert.equal(baseline.stdout, 'database "other" baselined at version 0: migrations up to it will not run\n');
    const up = await runInProcess(['--migrations', config.migrationsDir, 'up', '--db', 'other'], env, config.migrationsDir);
    assert.equal(up.code, ExitCode.ok, up.stderr);
    assert.match(up.stdout, /1 migration applied; database "other" is at version 1\n$/);
  });
  const tables = await other.query<{ t: string }>(`SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`);
  assert.deepEqual(tables.rows.map((r) => r.t), ['b'], 'version 0 was baselined, not run');
});

test('a ledger made by the previous steps (3) upgrades and then takes version 0, still refusing negative and fractional versions', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  await withClient({ alias: 'app', url: db.url }, async (client) => {
    await client.query('BEGIN');
    for (const step of ledgerSteps.slice(0, 3)) await client.query(step);
    await client.query(`INSERT INTO pgconvoy.meta (key, value) VALUES ('ledger_steps', '3')`);
    await client.query('COMMIT');
  });
  const insert = (version: string) =>
    db.query(`INSERT INTO pgconvoy.history (version, description, file, checksum, status, started_at, execution_ms) VALUES ($1, 'x', 'x.sql', 'c', 'failed', now(), 0)`, [version]);
  await assert.rejects(insert('0'), /violates check constraint/, 'the old ledger refuses version 0');

  await withClient({ alias: 'app', url: db.url }, async (client) => {
    await ensureLedger(client);
    await ensureLedger(client);
  });
  const steps = await db.query<{ value: string }>(`SELECT value FROM pgconvoy.meta WHERE key = 'ledger_steps'`);
  assert.equal(steps.rows[0]?.value, String(ledgerSteps.length));
  await insert('0');
  await assert.rejects(insert('-1'), /violates check constraint "history_version_whole"/);
  await assert.rejects(insert('1.5'), /violates check constraint "history_version_whole"/);

  // The step is idempotent: an older pgconvoy may write back a lower count and a newer one run it again.
  await db.query(ledgerSteps[3]!);
  const checks = await db.query<{ conname: string }>(
    `SELECT conname FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
      WHERE c.conrelid = 'pgconvoy.history'::regclass AND c.contype = 'c' AND a.attname = 'version'`,
  );
  assert.deepEqual(checks.rows.map((r) => r.conname), ['history_version_whole']);
});
