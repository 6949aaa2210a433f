import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { cancel, migrate, startMigration } from '../../src/client/api';
import { ExitCode } from '../../src/client/exit-codes';
import { databaseEnvName } from '../../src/config/config';
import { readRiskContext } from '../../src/db/risk-context';
import { ensureLedger, ledgerSteps, readHistory } from '../../src/db/ledger';
import { assessPending } from '../../src/core/risk-context';
import { analyzeScript } from '../../src/core/statements';
import { progressQuery } from '../../src/workflows/messages';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { maybeRecordHistory } from '../helpers/histories';
import { runInProcess } from '../helpers/in-process-cli';
import { writeMigrations } from '../helpers/migrations';
import { services } from '../helpers/services';
import { testClient, testConfig, withWorker } from '../helpers/temporal';
import { waitFor } from '../helpers/workers';

const accounts = 'CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL, balance integer NOT NULL)';
const indexEmail = { 'V1__index_email.sql': '-- lookups by e-mail\nCREATE INDEX accounts_email ON accounts (email);\n' };

type Context = { after(fn: () => unknown): void };

/** Databases by alias (each test its own aliases: a query to another test's finished run would wait for its gone worker). */
async function fixture(t: Context, files: Record<string, string>, databases: Record<string, (db: TestDatabase) => Promise<unknown>>) {
  const urls: Record<string, string> = {};
  const dbs: Record<string, TestDatabase> = {};
  for (const [alias, seed] of Object.entries(databases)) {
    const db = await createTestDatabase();
    t.after(() => db.drop());
    await seed(db);
    urls[alias] = db.url;
    dbs[alias] = db;
  }
  const set = writeMigrations(files);
  t.after(() => set.remove());
  const config = testConfig({ databases: urls, migrationsDir: set.dir });
  const env = { ...services.temporalEnv, PGCONVOY_TASK_QUEUE: config.temporal.taskQueue, PGCONVOY_LOG_LEVEL: 'silent' };
  for (const [alias, url] of Object.entries(urls)) Object.assign(env, { [databaseEnvName(alias)]: url });
  const cli = (...args: string[]) => runInProcess(['--migrations', set.dir, ...args], env, set.dir);
  const liveCli = (live: { stderr: string }, ...args: string[]) => runInProcess(['--migrations', set.dir, ...args], env, set.dir, live);
  const { client, close } = await testClient();
  t.after(close);
  const handle = (alias: string) => client.workflow.getHandle(`pgconvoy/db/${alias}`);
  const phase = async (alias: string) => (await handle(alias).query(progressQuery).catch(() => undefined))?.phase;
  return { dbs, config, cli, liveCli, phase, handle };
}

async function ledgerRisk(db: TestDatabase) {
  const rows = await db.query<{ version: string; risk_level: string | null; risk_findings: Array<{ rule: string; level: string; accepted: string | null; context: string | null }> | null; approved_by: string | null; approved_at: Date | null; approval_note: string | null }>(
    `SELECT version::text, risk_level, risk_findings, approved_by, approved_at, approval_note FROM pgconvoy.history WHERE status = 'applied' ORDER BY version`,
  );
  return rows.rows;
}

const indexExists = async (db: TestDatabase) => (await db.query(`SELECT to_regclass('public.accounts_email') IS NOT NULL AS present`)).rows[0]?.present as boolean;

test('the same index is low risk on an empty table and high on a million rows; safe mode runs the first and waits on the second until `pgconvoy approve`', async (t) => {
  const { dbs, config, cli, liveCli, phase, handle } = await fixture(t, indexEmail, {
    'risk_empty': (db) => db.query(accounts),
    'risk_large': (db) =>
      db.query(`${accounts}; INSERT INTO accounts SELECT g, 'user' || g || '@example.com', g % 1000 FROM generate_series(1, 1000000) g; ANALYZE accounts;`),
  });

  // plan shows the level and what the database said, without changing anything.
  const smallPlan = await withWorker(config, () => cli('plan', '--db', 'risk_empty'));
  assert.equal(smallPlan.code, ExitCode.ok, smallPlan.stderr);
  assert.match(smallPlan.stdout, /\n  risk: low\n    low    create-index-blocking at line 2 — public\.accounts: never analyzed, \d+(\.\d)? kB \(the rule alone says medium\)\n      instead: CREATE INDEX CONCURRENTLY/);
  const largePlan = await withWorker(config, () => cli('plan', '--db', 'risk_large', '--json'));
  assert.equal(largePlan.code, ExitCode.ok, largePlan.stderr);
  const planned = JSON.parse(largePlan.stdout) as { pending: Array<{ risk: { level: string; findings: Array<{ rule: string; level: string; baseLevel: string; context: string }> } }>; tables: Array<{ table: string; qualified: string; rows: number; bytes: number }> };
  assert.equal(planned.pending[0]!.risk.level, 'high');
  assert.deepEqual(
    planned.pending[0]!.risk.findings.map((f) => [f.rule, f.level, f.baseLevel]),
    [['create-index-blocking', 'high', 'medium']],
  );
  assert.match(planned.pending[0]!.risk.findings[0]!.context, /^public\.accounts: ~1,000,000 rows, \d+\.\d MB$/);
  assert.equal(planned.tables[0]!.qualified, 'public.accounts');
  assert.equal(planned.tables[0]!.rows, 1_000_000);
  assert.ok(planned.tables[0]!.bytes > 40 * 1024 * 1024, `a million rows take space: ${planned.tables[0]!.bytes}`);
  assert.equal(await indexExists(dbs['risk_large']!), false, 'plan changed nothing');

  // lint against each database agrees, and exits by the level.
  const lintSmall = await cli('lint', '--db', 'risk_empty');
  assert.equal(lintSmall.code, ExitCode.ok, lintSmall.stdout + lintSmall.stderr);
  const lintLarge = await cli('lint', '--db', 'risk_large', '--json');
  assert.equal(lintLarge.code, ExitCode.lintHigh, lintLarge.stdout);
  assert.equal((JSON.parse(lintLarge.stdout) as Array<{ level: string }>)[0]!.level, 'high');

  await withWorker(config, async () => {
    // Empty table: low, so safe mode runs it without asking.
    const small = await cli('up', '--db', 'risk_empty', '--mode', 'safe');
    assert.equal(small.code, ExitCode.ok, small.stderr);
    assert.doesNotMatch(small.stderr, /waiting for approval/);
    assert.equal(await indexExists(dbs['risk_empty']!), true);

    // A million rows: high, so safe mode waits, says why, and changes nothing until approved.
    const live = { stderr: '' };
    const up = liveCli(live, 'up', '--db', 'risk_large', '--mode', 'safe');
    await waitFor('the risk gate', async () => ((await phase('risk_large')) === 'awaiting-approval' ? true : undefined));
    const progress = await handle('risk_large').query(progressQuery);
    assert.deepEqual(progress.approval.gated?.map((g) => [g.version, g.level]), [['1', 'high']]);
    const status = await cli('status', '--db', 'risk_large');
    assert.equal(status.code, ExitCode.ok, status.stderr);
    assert.match(status.stdout, /V1 high risk\); approve with `pgconvoy approve --db risk_large`/);
    assert.match(
      status.stdout,
      /safe mode runs only low risk migrations without an approval:\n  V1 \(index email\) is high risk: create-index-blocking \(high\) at line 2: public\.accounts: ~1,000,000 rows, \d+\.\d MB\n/,
    );
    assert.equal(await indexExists(dbs['risk_large']!), false, 'nothing ran before the approval');
    assert.equal((await dbs['risk_large']!.query(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'pgconvoy'`)).rows[0]?.n, 0, 'not even the ledger');

    // `up` tells its terminal why it waits (it polls the run's progress).
    await waitFor('up to announce the wait', () => Promise.resolve(live.stderr.includes('waiting for approval since') ? true : undefined));
    const approved = await cli('approve', '--db', 'risk_large', '--by', 'dba@example', '--note', 'quiet hour');
    assert.equal(approved.code, ExitCode.ok, approved.stderr);
    const result = await up;
    assert.equal(result.code, ExitCode.ok, result.stderr);
    assert.match(result.stderr, /pgconvoy: waiting for approval since \S+:\n  safe mode runs only low risk migrations without an approval:\n  V1 \(index email\) is high risk/);
    maybeRecordHistory('migrate-database-risk-approved', await handle('risk_large').fetchHistory());
  });
  assert.equal(await indexExists(dbs['risk_large']!), true);

  const [large] = await ledgerRisk(dbs['risk_large']!);
  assert.equal(large!.risk_level, 'high');
  assert.equal(large!.approved_by, 'dba@example');
  assert.equal(large!.approval_note, 'quiet hour');
  assert.ok(large!.approved_at instanceof Date && Date.now() - large!.approved_at.getTime() < 120_000, `approved_at is when it was approved: ${String(large!.approved_at)}`);
  assert.deepEqual(large!.risk_findings?.map((f) => [f.rule, f.level]), [['create-index-blocking', 'high']]);
  const [small] = await ledgerRisk(dbs['risk_empty']!);
  assert.equal(small!.risk_level, 'low');
  assert.equal(small!.approved_by, null, 'nobody had to approve the low-risk run');
  const history = await withWorker(config, () => cli('history', '--db', 'risk_large'));
  assert.match(history.stdout, /\n1 +index email +applied .* run +high +approved by dba@example\n/);
});

test('modes: auto waits on high risk (cancel leaves the database alone), aggressive runs it, and an accepted finding runs in safe mode with its reason in the ledger', async (t) => {
  const seed = (db: TestDatabase) => db.query(`${accounts}; INSERT INTO accounts VALUES (1, 'a@example.com', 5)`);
  const files = {
    'V1__rename.sql': 'ALTER TABLE accounts RENAME COLUMN balance TO balance_cents;\n',
    'V2__drop.sql': '-- pgconvoy:allow drop-column the app stopped reading it in release 41\nALTER TABLE accounts DROP COLUMN email;\n',
  };
  const { dbs, config, cli, phase } = await fixture(t, files, { 'modes-auto': seed, 'modes-aggressive': seed, 'modes-safe': seed });

  await withWorker(config, async () => {
    const up = cli('up', '--db', 'modes-auto', '--mode', 'auto', '--json');
    await waitFor('the risk gate', async () => ((await phase('modes-auto')) === 'awaiting-approval' ? true : undefined));
    const cancelled = await cli('cancel', '--db', 'modes-auto', '--by', 'oncall', '--reason', 'rename needs a view first');
    assert.equal(cancelled.code, ExitCode.ok, cancelled.stderr);
    const result = await up;
    assert.equal(result.code, ExitCode.cancelled, result.stderr);
    assert.deepEqual(
      (await dbs['modes-auto']!.query(`SELECT column_name FROM information_schema.columns WHERE table_name = 'accounts' ORDER BY ordinal_position`)).rows.map((r) => String(r.column_name)),
      ['id', 'email', 'balance'],
    );

    const aggressive = await cli('up', '--db', 'modes-aggressive', '--mode', 'aggressive');
    assert.equal(aggressive.code, ExitCode.ok, aggressive.stderr);
    assert.doesNotMatch(aggressive.stderr, /waiting for approval/);
  });
  const ledger = await ledgerRisk(dbs['modes-aggressive']!);
  assert.deepEqual(ledger.map((r) => [r.version, r.risk_level, r.approved_by]), [['1', 'high', null], ['2', 'low', null]]);
  assert.deepEqual(ledger[1]!.risk_findings?.map((f) => [f.rule, f.level, f.accepted]), [
    ['drop-column', 'high', 'the app stopped reading it in release 41'],
    ['missing-lock-timeout', 'low', null],
  ]);

});

test('a finding the file accepts with pgconvoy:allow does not gate, even in safe mode, and its reason is recorded in the ledger', async (t) => {
  const files = { 'V1__drop_email.sql': "-- pgconvoy:allow drop-column the app stopped reading it in release 41\nSET lock_timeout = '5s';\nALTER TABLE accounts DROP COLUMN email;\n" };
  const { dbs, config, cli } = await fixture(t, files, { accepted: (db) => db.query(accounts) });
  const result = await withWorker(config, () => cli('up', '--db', 'accepted', '--mode', 'safe'));
  assert.equal(result.code, ExitCode.ok, result.stderr);
  assert.doesNotMatch(result.stderr, /waiting for approval/);
  const [row] = await ledgerRisk(dbs.accepted!);
  assert.equal(row!.risk_level, 'low');
  assert.deepEqual(row!.risk_findings?.map((f) => [f.rule, f.level, f.accepted]), [['drop-column', 'high', 'the app stopped reading it in release 41']]);
});

test('the context comes from the catalog and pg_locks, and a table under an ACCESS EXCLUSIVE lock does not hang it', async (t) => {
  const files = { 'V1__note.sql': "SET lock_timeout = '5s';\nALTER TABLE busy ADD COLUMN note text;\n" };
  const { dbs, cli } = await fixture(t, files, {
    ctx: (db) => db.query(`CREATE TABLE quiet (id int); INSERT INTO quiet SELECT generate_series(1, 5000); ANALYZE quiet; CREATE TABLE busy (id int); CREATE TABLE locked (id int);`),
  });
  const db = dbs.ctx!;
  const holder = new pg.Client({ connectionString: db.url, application_name: 'nightly-report' });
  holder.on('error', () => undefined);
  await holder.connect();
  t.after(() => holder.end());
  await holder.query('BEGIN; INSERT INTO busy VALUES (1); LOCK TABLE locked IN ACCESS EXCLUSIVE MODE;');

  const reader = new pg.Client({ connectionString: db.url });
  reader.on('error', () => undefined);
  await reader.connect();
  t.after(() => reader.end());
  const started = Date.now();
  const context = await readRiskContext(reader, ['quiet', 'busy', 'locked', 'public.missing']);
  const took = Date.now() - started;
  assert.ok(took < 5_000, `bounded by the lock timeout, took ${took} ms`);
  const quiet = context.get('quiet')!;
  assert.deepEqual([quiet.qualified, quiet.rows, quiet.lockedOut, quiet.sessions], ['public.quiet', 5000, false, []]);
  assert.ok(quiet.bytes !== null && quiet.bytes > 100_000, `size of 5000 rows: ${quiet.bytes}`);
  const locked = context.get('locked')!;
  assert.equal(locked.lockedOut, true);
  assert.deepEqual(locked.sessions.map((s) => [s.mode, s.granted, s.state, s.application]), [['ACCESS EXCLUSIVE', true, 'idle in transaction', 'nightly-report']]);
  assert.deepEqual(context.get('busy')!.sessions.map((s) => s.mode), ['ROW EXCLUSIVE']);
  assert.equal(context.get('public.missing')!.qualified, null);

  // The writer's open transaction would block the ALTER: lint --db says so, by name.
  const lint = await cli('lint', '--db', 'ctx');
  assert.equal(lint.code, ExitCode.lintMedium, lint.stdout + lint.stderr);
  assert.match(lint.stdout, /V1__note\.sql:2  medium  blocked-by-session \(ACCESS EXCLUSIVE on busy\)\n[^]*database: public\.busy: pid \d+ holds ROW EXCLUSIVE \(idle in transaction, transaction open \d+ s, nightly-report\)/);
  await holder.query('ROLLBACK');
  const quietNow = await cli('lint', '--db', 'ctx');
  assert.equal(quietNow.code, ExitCode.ok, 'once the transaction ends nothing is in the way');
});

test('an approval given before the run (a deploy service, a rollout per wave) covers the levels it names; above them the run still waits', async (t) => {
  const seed = (db: TestDatabase) => db.query(`${accounts}; INSERT INTO accounts VALUES (1, 'a@example.com', 5)`);
  const files = { 'V1__rename.sql': "SET lock_timeout = '5s';\nALTER TABLE accounts RENAME COLUMN balance TO balance_cents;\n" };
  const { dbs, config, phase } = await fixture(t, files, { 'pre-all': seed, 'pre-medium': seed });
  const { client, close } = await testClient();
  t.after(close);
  const pgconvoy = { client, taskQueue: config.temporal.taskQueue };
  await withWorker(config, async () => {
    const all = await migrate(pgconvoy, { db: 'pre-all', migrationsDir: config.migrationsDir, mode: 'safe', approved: { by: 'deploy-service', note: 'release 42, wave 1' } });
    assert.equal(all.status, 'applied');
    assert.equal(all.status === 'applied' && all.approvedBy, 'deploy-service');

    const handle = await startMigration(pgconvoy, { db: 'pre-medium', migrationsDir: config.migrationsDir, mode: 'safe', approved: { by: 'deploy-service', upTo: 'medium' } });
    await waitFor('the risk gate', async () => ((await phase('pre-medium')) === 'awaiting-approval' ? true : undefined));
    await cancel(pgconvoy, 'pre-medium', { by: 'test' });
    assert.equal((await handle.result()).status, 'cancelled');
  });
  const [row] = await ledgerRisk(dbs['pre-all']!);
  assert.deepEqual([row!.risk_level, row!.approved_by, row!.approval_note], ['high', 'deploy-service', 'release 42, wave 1']);
});

test('context sums a partitioned table over its partitions, and a name the database cannot resolve gets none instead of failing the plan', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  await db.query(`CREATE TABLE ev (id int, at date) PARTITION BY RANGE (at);
    CREATE TABLE ev_2025 PARTITION OF ev FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
    CREATE TABLE ev_2026 PARTITION OF ev FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
    INSERT INTO ev SELECT g, date '2025-01-01' + (g % 700) FROM generate_series(1, 200000) g;
    ANALYZE ev_2025; ANALYZE ev_2026;
    CREATE SCHEMA app; CREATE TABLE app."v1.orders" (id int);`);
  const reader = new pg.Client({ connectionString: db.url });
  reader.on('error', () => undefined);
  await reader.connect();
  t.after(() => reader.end());
  const context = await readRiskContext(reader, ['ev', 'app.v1.orders']);
  const ev = context.get('ev')!;
  assert.equal(ev.rows, 200_000, 'rows of every partition');
  assert.ok(ev.bytes !== null && ev.bytes > 5 * 1024 * 1024, `bytes of every partition: ${ev.bytes}`);
  assert.equal(context.get('app.v1.orders')!.qualified, null, 'ambiguous once the quotes are gone: no context, no error');

  const s = await analyzeScript("SET lock_timeout = '5s';\nALTER TABLE ev ALTER COLUMN id TYPE bigint;");
  assert.ok(s.ok);
  const risk = assessPending([{ version: '1', file: 'V1__x.sql', script: s.script }], context);
  assert.equal(risk.get('1')?.level, 'high', 'a rewrite of 200,000 rows in partitions is not a small table');
});

test('the ledger upgrade is idempotent: an older pgconvoy that wrote its step count back does not break the next run', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const client = new pg.Client({ connectionString: db.url });
  client.on('error', () => undefined);
  await client.connect();
  t.after(() => client.end());
  await ensureLedger(client);
  await client.query(`UPDATE pgconvoy.meta SET value = '1' WHERE key = 'ledger_steps'`); // what an older worker's ensureLedger writes
  await ensureLedger(client);
  assert.equal((await client.query<{ value: string }>(`SELECT value FROM pgconvoy.meta WHERE key = 'ledger_steps'`)).rows[0]?.value, String(ledgerSteps.length));
  assert.deepEqual(await readHistory(client), []);
});
