import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { startDevServer } from '../../src/worker/dev-server';
import { cliEnv, runCli, scratchDir, serverInLock, startCli } from '../helpers/cli';
import { adminQuery, createTestDatabase } from '../helpers/database';
import { sampleMigrationsDir, writeMigrations } from '../helpers/migrations';
import { services } from '../helpers/services';
import { stepNames } from '../helpers/histories';
import { uniqueTaskQueue } from '../helpers/temporal';
import { isAlive } from '../helpers/workers';

test('embedded: with no TEMPORAL_ADDRESS, up starts its own dev server and worker; state survives for the next run', async (t) => {
  const db = await createTestDatabase({ password: 'cli-secret-5d2' });
  t.after(() => db.drop());
  const dir = scratchDir(t);
  const configFile = join(dir, 'pgconvoy.config.json');
  writeFileSync(configFile, JSON.stringify({ migrations: sampleMigrationsDir, databases: { shop: { urlEnv: 'SHOP_URL' } } }));
  const env = cliEnv({ SHOP_URL: db.url, PGCONVOY_STATE_DIR: join(dir, 'state') });

  const first = await runCli(['up', '--db', 'shop', '--config', configFile], { env });
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /^workflow pgconvoy\/db\/shop\n/);
  assert.match(first.stdout, /applied {2}V1 {2}create customers/);
  assert.match(first.stdout, /applied {2}V3 {2}order totals function/);
  assert.match(first.stdout, /3 migrations applied; database "shop" is at version 3\n$/);

  const second = await runCli(['up', '--db', 'shop', '--config', configFile], { env });
  assert.equal(second.code, 0, second.stderr);
  assert.equal(second.stdout, 'nothing to apply: database "shop" is up to date (version 3)\n');

  const status = await runCli(['status', '--db', 'shop', '--config', configFile, '--json'], { env });
  assert.equal(status.code, 0, status.stderr);
  const parsed = JSON.parse(status.stdout) as { plan: { pending: unknown[] }; history: Array<{ version: string; status: string }>; running: unknown };
  assert.deepEqual(parsed.plan.pending, []);
  assert.deepEqual(parsed.history.map((h) => [h.version, h.status]), [['1', 'applied'], ['2', 'applied'], ['3', 'applied']]);
  assert.equal(parsed.running, null);

  // The embedded server kept its state in the state directory: open it again
  // and read the first run's history, once the last command's server has let go of it.
  const last = serverInLock(join(dir, 'state', 'embedded.lock'));
  for (let i = 0; i < 200 && last !== undefined && isAlive(last); i++) await new Promise((r) => setTimeout(r, 100));
  // A write-ahead-log SQLite file (header bytes 18 and 19 are 2; 1 for a rollback journal): no fsync per workflow task.
  assert.deepEqual([...readFileSync(join(dir, 'state', 'temporal.db')).subarray(18, 20)], [2, 2], 'the state file is in WAL mode');
  const server = await startDevServer({ dbFile: join(dir, 'state', 'temporal.db'), logFile: join(dir, 'reopen.log') });
  t.after(() => server.stop());
  const connection = await Connection.connect({ address: server.address });
  t.after(() => connection.close());
  const client = new Client({ connection });
  const runs: string[] = [];
  for await (const execution of client.workflow.list({ query: `WorkflowId = 'pgconvoy/db/shop'` })) runs.push(execution.status.name);
  // The second `up` and `status` had nothing to do and the first run left nothing open: they answered from the ledger, without a run.
  assert.deepEqual(runs, ['COMPLETED'], 'the run is in the kept state');
  const histories: string[][] = [];
  for await (const execution of client.workflow.list({ query: `WorkflowId = 'pgconvoy/db/shop'` })) {
    const history = await client.workflow.getHandle(execution.workflowId, execution.runId).fetchHistory();
    histories.push(stepNames(history));
    assert.ok(!JSON.stringify(history).includes('cli-secret-5d2'), 'no password in history');
  }
  assert.deepEqual(
    histories.sort((a, b) => b.length - a.length),
    [['planDatabase (inline)', 'acquireLease (inline)', 'holdLease', 'beginRun', 'takeBackup', 'applyMigrations (inline)', 'verifyRun', 'releaseLease (inline)']],
  );
});

test('remote: with TEMPORAL_ADDRESS, up only starts the workflow and a separate worker process does the work', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const dir = scratchDir(t);
  const taskQueue = uniqueTaskQueue();
  const remote = { ...services.temporalEnv, PGCONVOY_TASK_QUEUE: taskQueue, PGCONVOY_STATE_DIR: join(dir, 'state') };

  // Only the worker knows the database; the client that triggers has no connection string at all.
  const worker = startCli(['worker', '--migrations', sampleMigrationsDir], cliEnv({ ...remote, PGCONVOY_DB_REMOTE: db.url }));
  t.after(() => worker.child.kill('SIGKILL'));

  const up = await runCli(['up', '--db', 'remote', '--migrations', sampleMigrationsDir, '--json'], { env: cliEnv(remote), cwd: dir });
  assert.equal(up.code, 0, up.stderr + worker.output());
  const result = JSON.parse(up.stdout) as { status: string; version: string; workflowId: string };
  assert.deepEqual([result.status, result.version, result.workflowId], ['applied', '3', 'pgconvoy/db/remote']);
  const ledger = await db.query<{ n: string }>(`SELECT count(*)::text AS n FROM pgconvoy.history WHERE status = 'applied'`);
  assert.equal(ledger.rows[0]?.n, '3');
  assert.match(worker.output(), /"event":"migration.applied","db":"remote"/, 'the worker process applied the migrations');

  worker.child.kill('SIGTERM');
  assert.equal(await worker.exited, 0, 'the worker shuts down cleanly on SIGTERM');
});

test('bad input exits 2 with a message that names the problem, and touches nothing', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const dir = scratchDir(t);
  const broken = writeMigrations({ 'V1__a.sql': 'CREATE TABLE a (id int);', 'V1__again.sql': 'SELECT 1;', 'Vx__bad.sql': '' });
  t.after(() => broken.remove());
  const env = cliEnv({ PGCONVOY_DB_BAD: db.url, PGCONVOY_STATE_DIR: join(dir, 'state') });

  const cases: Array<{ args: string[]; stderr: RegExp }> = [
    { args: ['up'], stderr: /required option '-d, --db <alias>' not specified/ },
    { args: ['up', '--db', 'Not An Alias'], stderr: /invalid database alias "Not An Alias"/ },
    { args: ['up', '--db', 'bad', '--target', 'v2'], stderr: /--target must be a version: a whole number ≥ 0, got "v2"/ },
    { args: ['up', '--db', 'bad', '--config', join(dir, 'missing.json')], stderr: /invalid configuration \(.*missing\.json\):\n {2}cannot read/ },
    {
      args: ['up', '--db', 'bad', '--migrations', broken.dir],
      stderr: /\[InvalidMigrationSet\] invalid migration set in .*:\n {2}V1__again\.sql: duplicate version 1: also in V1__a\.sql\n {2}Vx__bad\.sql: no version after "V"/,
    },
    { args: ['up', '--db', 'nobody', '--migrations', sampleMigrationsDir], stderr: /\[UnknownDatabase\] database alias "nobody" is not configured/ },
    { args: ['frobnicate'], stderr: /unknown command 'frobnicate'/ },
  ];
  for (const { args, stderr } of cases) {
    const result = await runCli(args, { env, cwd: dir });
    assert.equal(result.code, 2, `pgconvoy ${args.join(' ')} should exit 2\n${result.stderr}`);
    assert.match(result.stderr, stderr);
  }
  const schemas = await db.query<{ n: string }>(`SELECT count(*)::text AS n FROM pg_namespace WHERE nspname = 'pgconvoy'`);
  assert.equal(schemas.rows[0]?.n, '0', 'no ledger was created: nothing touched the database');
});

test('embedded: a pgconvoy killed mid-run takes its dev server with it, and the next command takes over its state', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const dir = scratchDir(t);
  const set = writeMigrations({ 'V1__slow.sql': 'CREATE TABLE slow (id int);\nSELECT pg_sleep(60);\n' });
  t.after(() => set.remove());
  const env = cliEnv({ PGCONVOY_DB_SLOW: db.url, PGCONVOY_STATE_DIR: join(dir, 'state') });

  const victim = startCli(['up', '--db', 'slow', '--migrations', set.dir], env);
  t.after(() => victim.child.kill('SIGKILL'));
  // Wait until the migration is running inside PostgreSQL.
  for (let i = 0; ; i++) {
    const active = await adminQuery(`SELECT 1 FROM pg_stat_activity WHERE datname = '${db.name}' AND query LIKE '%pg_sleep(60)%' AND state = 'active'`);
    if (active.rowCount) break;
    assert.ok(i < 300, `the migration never started:\n${victim.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const lock = JSON.parse(readFileSync(join(dir, 'state', 'embedded.lock'), 'utf8')) as { pid: number; serverPid: number };
  t.after(() => {
    if (isAlive(lock.serverPid)) process.kill(lock.serverPid, 'SIGKILL');
  });
  victim.child.kill('SIGKILL');
  await victim.exited;
  for (let i = 0; isAlive(lock.serverPid); i++) {
    assert.ok(i < 150, 'the dev server outlived its SIGKILLed parent by 15 s');
    await new Promise((r) => setTimeout(r, 100));
  }

  const status = await runCli(['status', '--db', 'slow', '--migrations', set.dir], { env });
  assert.equal(status.code, 0, status.stderr);
  assert.doesNotMatch(status.stderr, /\{"level"/, 'no raw JSON log lines among the human output');
  assert.match(status.stdout, /running: phase applying, applying V1 slow, 0\/1 done/, 'the interrupted run is still known');
});

test('embedded: a command does not wait for its dev server to stop; the next command, even at once, waits for it and runs', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const dir = scratchDir(t);
  const env = cliEnv({ PGCONVOY_DB_QUICK: db.url, PGCONVOY_STATE_DIR: join(dir, 'state') });
  const up = await runCli(['up', '--db', 'quick', '--migrations', sampleMigrationsDir], { env });
  assert.equal(up.code, 0, up.stderr);
  // The lock passed to the stopping server: it holds the state file until it has let go.
  const lock = JSON.parse(readFileSync(join(dir, 'state', 'embedded.lock'), 'utf8')) as { pid: number; serverPid: number; stopping?: boolean };
  assert.equal(lock.stopping, true);
  assert.equal(lock.pid, lock.serverPid);
  // Each command leaves a server stopping: all of them gone before the state folder is removed.
  const servers = [lock.serverPid];
  t.after(async () => {
    for (const pid of servers) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 100 && servers.some(isAlive); i++) await new Promise((r) => setTimeout(r, 100));
  });
  // Back to back, each while the last one's server stops (or lingers as a zombie until the machine reaps it).
  for (const args of [['up', '--db', 'quick'], ['status', '--db', 'quick'], ['up', '--db', 'quick']]) {
    // As after a command that was killed: these have nothing to do, and would otherwise answer without a server.
    rmSync(join(dir, 'state', 'settled'), { force: true });
    const next = await runCli([...args, '--migrations', sampleMigrationsDir], { env });
    servers.push((JSON.parse(readFileSync(join(dir, 'state', 'embedded.lock'), 'utf8')) as { serverPid: number }).serverPid);
    assert.equal(next.code, 0, `${args.join(' ')}: ${next.stderr}`);
    assert.doesNotMatch(next.stderr, /StateDirBusy/);
  }
});

test('embedded: a dev server that cannot start is reported with exit 3, and the command ends', async (t) => {
  const dir = scratchDir(t);
  const env = cliEnv({ PGCONVOY_TEMPORAL_BIN: '/bin/false', PGCONVOY_STATE_DIR: join(dir, 'state'), PGCONVOY_DB_X: 'postgres://127.0.0.1:1/x' });
  const result = await runCli(['up', '--db', 'x', '--migrations', sampleMigrationsDir], { env, timeoutMs: 30_000 });
  assert.equal(result.code, 3, result.stderr);
  assert.match(result.stderr, /\[DevServerFailed\] \/bin\/false exited with code 1 before it was ready; see .*temporal\.log/);
});

test('embedded: with nothing left open in its state, a no-op up, status, history and plan answer from the database without starting the dev server; work to do, or a command that did not settle, goes through it', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const dir = scratchDir(t);
  const set = writeMigrations({ 'V1__a.sql': 'CREATE TABLE a (id int);', 'V2__b.sql': 'CREATE TABLE b (id int);' });
  t.after(() => set.remove());
  const env = cliEnv({ PGCONVOY_DB_READ: db.url, PGCONVOY_STATE_DIR: join(dir, 'state') });
  // A dev server cannot start with this binary: whatever needs one fails with exit 3.
  const noServer = { ...env, PGCONVOY_TEMPORAL_BIN: '/bin/false' };
  const cli = (args: string[], e = env) => runCli([...args, '--db', 'read', '--migrations', set.dir], { env: e, timeoutMs: 60_000 });

  assert.equal((await cli(['up'])).code, 0);
  assert.ok(existsSync(join(dir, 'state', 'settled')), 'the run ended and left nothing open');

  const up = await cli(['up'], noServer);
  assert.equal(up.code, 0, up.stderr);
  assert.equal(up.stdout, 'nothing to apply: database "read" is up to date (version 2)\n');
  const upJson = await cli(['up', '--json'], noServer);
  assert.equal(upJson.code, 0, upJson.stderr);
  assert.deepEqual(
    (({ status, workflowId, runId, versionBefore, versionAfter, migrations }) => ({ status, workflowId, runId, versionBefore, versionAfter, migrations }))(JSON.parse(upJson.stdout) as Record<string, unknown>),
    { status: 'up-to-date', workflowId: 'pgconvoy/db/read', runId: null, versionBefore: '2', versionAfter: '2', migrations: [] },
  );
  const status = await cli(['status', '--json'], noServer);
  assert.equal(status.code, 0, status.stderr);
  const parsed = JSON.parse(status.stdout) as { plan: { pending: unknown[] }; history: Array<{ version: string; status: string }>; running: unknown };
  assert.deepEqual([parsed.plan.pending, parsed.history.map((h) => [h.version, h.status]), parsed.running], [[], [['1', 'applied'], ['2', 'applied']], null]);
  const history = await cli(['history'], noServer);
  assert.equal(history.code, 0, history.stderr);
  assert.match(history.stdout, /^2 +b +applied/m);
  assert.equal((await cli(['plan'], noServer)).code, 0);

  // Something to do: the workflow does it, so the server is needed.
  writeFileSync(join(set.dir, 'V3__c.sql'), 'CREATE TABLE c (id int);');
  const pendingUp = await cli(['up'], noServer);
  assert.equal(pendingUp.code, 3, pendingUp.stderr);
  assert.match(pendingUp.stderr, /\[DevServerFailed\]/);
  assert.equal((await db.query(`SELECT to_regclass('public.c') AS c`)).rows[0]?.c, null, 'nothing ran');
  // That command did not end settled: until one does, every command goes through the server.
  assert.equal((await cli(['status'], noServer)).code, 3);
  const applied = await cli(['up']);
  assert.equal(applied.code, 0, applied.stderr);
  assert.match(applied.stdout, /1 migration applied; database "read" is at version 3\n$/);
  const after = await cli(['status'], noServer);
  assert.equal(after.code, 0, after.stderr);
});
