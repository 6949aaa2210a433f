/**
 * Rollouts on the production topology, under faults: Temporal Server on
 * PostgreSQL with its four services as processes of their own
 * (scripts/temporal-cluster.sh), three `pgconvoy worker` processes, and
 * while a rollout runs: a worker SIGKILLed, the history service restarted,
 * then the frontend, then matching; then a rollout over another PostgreSQL
 * server that is restarted under it. Each kill and restart is logged with
 * the time the rollout took to recover.
 *
 *   npm run test:cluster     (after npm run setup; .ci/run runs it)
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import pg from 'pg';
import { getRollout, startRollout } from '../../src/client/rollout';
import { databaseEnvName } from '../../src/config/config';
import { databaseWorkflowId, rolloutWorkflowId, type RolloutStatus, type RolloutStrategy } from '../../src/contracts';
import { startTemporalCluster, startWorkerProcess, type TemporalCluster, type WorkerProcess } from '../helpers/cluster';
import { startPrivatePostgres } from '../helpers/private-postgres';

const adminUrl = process.env.PGCONVOY_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const scratch = mkdtempSync(join(tmpdir(), 'pgconvoy-cluster-'));
const started = performance.now();
const clock = () => `${((performance.now() - started) / 1000).toFixed(1).padStart(6)} s`;
const say = (line: string) => process.stderr.write(`[${clock()}] ${line}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Each version writes a row of its own in the migration's transaction: a version applied twice would leave two. */
const set = {
  'V1__applied_log.sql': 'CREATE TABLE applied_log (version int NOT NULL, backend int NOT NULL DEFAULT pg_backend_pid());\nINSERT INTO applied_log (version) VALUES (1);',
  'V2__accounts.sql': 'CREATE TABLE accounts (id bigint PRIMARY KEY, email text);\nINSERT INTO applied_log (version) VALUES (2);\nSELECT pg_sleep(0.4);',
  'V3__by_email.sql': 'CREATE INDEX accounts_email ON accounts (email);\nINSERT INTO applied_log (version) VALUES (3);\nSELECT pg_sleep(0.4);',
};
const strategy: RolloutStrategy = { canary: { count: 1 }, bakeMs: 0, waveSize: { percent: 100 }, maxParallel: 6, maxFailures: { count: 1 }, onFailure: 'halt', approveWaves: false };

const temporalFleet = Array.from({ length: 50 }, (_, i) => ({ alias: `tf_${String(i + 1).padStart(2, '0')}`, name: `pgconvoy_cluster_${process.pid}_${i + 1}` }));
const targetFleet = Array.from({ length: 10 }, (_, i) => ({ alias: `pg_${String(i + 1).padStart(2, '0')}`, name: `restarted_${i + 1}` }));

let cluster: TemporalCluster;
let target: Awaited<ReturnType<typeof startPrivatePostgres>>;
let client: Client;
let connection: Connection;
const workers: WorkerProcess[] = [];
let workerEnv: NodeJS.ProcessEnv;
const migrationsDir = join(scratch, 'migrations');
const urlOn = (server: string, name: string) => server.replace(/\/[^/]*$/, `/${name}`);

async function onServer(url: string, fn: (c: pg.Client) => Promise<void>): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await fn(c);
  } finally {
    await c.end();
  }
}

async function startWorker(i: number): Promise<void> {
  workers[i] = await startWorkerProcess(`worker-${i + 1}-${Date.now()}`, { cwd: scratch, env: workerEnv, args: ['--max-connections-per-server', '12'], logDir: join(scratch, 'logs') });
  say(`worker ${i + 1} started (pid ${workers[i]?.pid})`);
}

before(async () => {
  await setUp().catch((error: unknown) => {
    failed = true;
    throw error;
  });
});

async function setUp(): Promise<void> {
  say(`scratch folder ${scratch}`);
  cluster = await startTemporalCluster({ dir: join(scratch, 'cluster'), portOffset: 100, database: `temporal_faults_${process.pid}`, adminUrl });
  say(`Temporal cluster up at ${cluster.address}: frontend, history, matching and worker as four processes on PostgreSQL`);
  await onServer(adminUrl, async (c) => {
    for (const { name } of temporalFleet) await c.query(`CREATE DATABASE ${name}`);
  });
  target = await startPrivatePostgres();
  await onServer(target.url, async (c) => {
    for (const { name } of targetFleet) await c.query(`CREATE DATABASE ${name}`);
  });
  mkdirSync(migrationsDir, { recursive: true });
  for (const [file, sql] of Object.entries(set)) writeFileSync(join(migrationsDir, file), sql);
  workerEnv = {
    TEMPORAL_ADDRESS: cluster.address,
    PGCONVOY_TASK_QUEUE: 'faults',
    PGCONVOY_STATE_DIR: join(scratch, 'state'),
    PGCONVOY_BACKUP_STORE: join(scratch, 'backups'),
    PGCONVOY_LOG_LEVEL: 'info',
    ...Object.fromEntries(temporalFleet.map(({ alias, name }) => [databaseEnvName(alias), urlOn(adminUrl, name)])),
    ...Object.fromEntries(targetFleet.map(({ alias, name }) => [databaseEnvName(alias), urlOn(target.url, name)])),
  };
  for (const i of [0, 1, 2]) await startWorker(i);
  connection = await Connection.connect({ address: cluster.address });
  client = new Client({ connection, namespace: 'default' });
}

after(async () => {
  await Promise.all(workers.map((w) => w.kill('SIGTERM').catch(() => undefined)));
  await connection?.close().catch(() => undefined);
  await cluster?.stop().catch(() => undefined);
  target?.stop();
  await onServer(adminUrl, async (c) => {
    for (const { name } of temporalFleet) await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    for (const db of [`temporal_faults_${process.pid}`, `temporal_faults_${process.pid}_visibility`]) await c.query(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
  }).catch(() => undefined);
  // A failed run keeps its folder: the workers' and the services' logs are in it.
  if (failed) say(`kept ${scratch} for its logs`);
  else rmSync(scratch, { recursive: true, force: true });
});

let failed = false;
/** The test's body; a failure marks the run failed, which keeps the scratch folder. */
const body = (fn: () => Promise<void>) => () => fn().catch((error: unknown) => {
  failed = true;
  throw error;
});

const pgconvoy = () => ({ client, taskQueue: 'faults' });

/** The rollout's status, or undefined while Temporal does not answer (a service restarting). */
const statusOf = (deployId: string) => getRollout(pgconvoy(), deployId).catch(() => undefined);

/** Polls the rollout until `check` holds, through outages. */
async function until(deployId: string, what: string, check: (s: RolloutStatus) => boolean, timeoutMs = 180_000): Promise<RolloutStatus> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const s = await statusOf(deployId);
    if (s && check(s)) return s;
    if (s && ended(s)) throw new Error(`the rollout is ${s.status} while waiting for ${what}: ${s.problems.join('; ')}`);
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(s?.counts)}`);
    await sleep(200);
  }
}

const done = (s: RolloutStatus) => s.counts.succeeded;
/** A rollout that will not go on by itself: ended, or halted for a decision. */
const ended = (s: RolloutStatus) => ['completed', 'failed', 'compensated', 'compensation-failed', 'aborted', 'drift', 'refused', 'halted'].includes(s.status);

/**
 * Runs `fault` once `at` databases have succeeded, logs it, and how the
 * rollout recovered: when the next database succeeded, and when every
 * database that was running at the fault had succeeded.
 */
async function faultAt(deployId: string, at: number, label: string, fault: () => Promise<string>): Promise<void> {
  const before = await until(deployId, `${at} databases done`, (s) => done(s) >= at);
  const inFlight = before.databases.filter((d) => d.state === 'running').map((d) => d.db);
  const t = performance.now();
  const detail = await fault();
  say(`FAULT ${label}: ${detail}; ${done(before)}/${before.databases.length} done, running: ${inFlight.join(' ') || 'none'}`);
  const next = await until(deployId, `a database to succeed after ${label}`, (s) => done(s) > done(before));
  say(`  recovered from ${label}: the next database succeeded ${((performance.now() - t) / 1000).toFixed(1)} s after it (${done(next)} done)`);
  // Measured beside the next faults: one slow database must not hold them until the rollout is over.
  recoveries.push(
    until(deployId, `the databases running at ${label} to finish`, (s) => inFlight.every((db) => s.databases.find((d) => d.db === db)?.state === 'succeeded')).then(() => {
      say(`  recovered from ${label}: every database running at it had succeeded ${((performance.now() - t) / 1000).toFixed(1)} s after it`);
    }),
  );
}

const recoveries: Array<Promise<void>> = [];

/** Each database applied every version exactly once, holds no lease, and its run is closed. */
async function assertExactlyOnce(fleet: Array<{ alias: string; name: string }>, server: string): Promise<void> {
  for (const { alias, name } of fleet) {
    await onServer(urlOn(server, name), async (c) => {
      const log = await c.query<{ version: number; n: number }>('SELECT version, count(*)::int AS n FROM applied_log GROUP BY version ORDER BY version');
      assert.deepEqual(log.rows, [1, 2, 3].map((version) => ({ version, n: 1 })), `${alias}: each version applied exactly once`);
      const ledger = await c.query<{ version: string; n: number }>(`SELECT version::text, count(*)::int AS n FROM pgconvoy.history WHERE status = 'applied' GROUP BY version ORDER BY version`);
      assert.deepEqual(ledger.rows, ['1', '2', '3'].map((version) => ({ version, n: 1 })), `${alias}: one ledger row per version`);
      const leases = await c.query<{ n: number }>('SELECT count(*)::int AS n FROM pgconvoy.lease');
      assert.equal(leases.rows[0]!.n, 0, `${alias}: no lease left held`);
    });
    const run = await client.workflow.getHandle(databaseWorkflowId(alias)).describe();
    assert.equal(run.status.name, 'COMPLETED', `${alias}: its run is closed`);
  }
}

/**
 * What a fault cost the runs, from their histories (the children's and the
 * rollout's latest run): activities that needed another attempt, and
 * workflow tasks that timed out (a killed worker's cached runs: their next
 * task waits on its queue until it times out and goes to another worker).
 */
async function retriedWork(fleet: Array<{ alias: string }>, deployId: string): Promise<string[]> {
  const retried: string[] = [];
  for (const [label, workflowId] of [...fleet.map(({ alias }) => [alias, databaseWorkflowId(alias)]), ['the rollout', rolloutWorkflowId(deployId)]] as const) {
    const history = await client.workflow.getHandle(workflowId).fetchHistory();
    const scheduled = new Map<string, string>();
    for (const e of history.events ?? []) {
      const s = e.activityTaskScheduledEventAttributes;
      if (s) scheduled.set(String(e.eventId), s.activityType?.name ?? '?');
      const started = e.activityTaskStartedEventAttributes;
      if (started && (started.attempt ?? 1) > 1) retried.push(`${label} ${scheduled.get(String(started.scheduledEventId)) ?? '?'} (attempt ${started.attempt})`);
      if (e.workflowTaskTimedOutEventAttributes) retried.push(`${label} workflow task timed out`);
    }
  }
  return retried;
}

test('50 databases on Temporal Server with its services split: a worker SIGKILLed, history restarted, then the frontend, then matching; the rollout completes, each migration applied once, no lease held, no run open', { timeout: 600_000 }, body(async () => {
  const deployId = `faults-${process.pid}`;
  const t = performance.now();
  await startRollout(pgconvoy(), { deployId, migrationsDir, targets: temporalFleet.map((d) => d.alias), strategy });
  say(`rollout ${deployId} started: ${temporalFleet.length} databases, a canary then all, at most ${strategy.maxParallel} at once, 3 workers`);
  await faultAt(deployId, 5, 'SIGKILL of worker 1', async () => {
    await workers[0]!.kill('SIGKILL');
    return `worker 1 (pid ${workers[0]!.pid}) killed`;
  });
  await faultAt(deployId, 15, 'restart of history', async () => `history restarted in ${((await cluster.restart('history')) / 1000).toFixed(1)} s`);
  await faultAt(deployId, 25, 'restart of frontend', async () => `frontend restarted in ${((await cluster.restart('frontend')) / 1000).toFixed(1)} s`);
  await faultAt(deployId, 35, 'restart of matching', async () => `matching restarted in ${((await cluster.restart('matching')) / 1000).toFixed(1)} s`);
  const end = await until(deployId, 'the rollout to end', ended, 300_000);
  await Promise.all(recoveries.splice(0));
  say(`rollout ${deployId} ${end.status} in ${((performance.now() - t) / 1000).toFixed(1)} s: ${JSON.stringify(Object.fromEntries(Object.entries(end.counts).filter(([, n]) => n > 0)))}`);
  assert.equal(end.status, 'completed', end.problems.join('; '));
  assert.equal(end.counts.succeeded, temporalFleet.length);
  await assertExactlyOnce(temporalFleet, adminUrl);
  const retried = await retriedWork(temporalFleet, deployId);
  say(`work retried after the faults: ${retried.length} (${retried.slice(0, 8).join(', ')}${retried.length > 8 ? ', ...' : ''})`);
  assert.ok(retried.length > 0, 'the faults cost the runs something: an activity or a workflow task of theirs was retried');
  await startWorker(0);
}));

test('10 databases on a PostgreSQL server restarted mid-rollout: the rollout completes, each migration applied once, no lease held', { timeout: 600_000 }, body(async () => {
  const deployId = `target-restart-${process.pid}`;
  const t = performance.now();
  await startRollout(pgconvoy(), { deployId, migrationsDir, targets: targetFleet.map((d) => d.alias), strategy: { ...strategy, maxParallel: 4 } });
  say(`rollout ${deployId} started: ${targetFleet.length} databases on the server at ${target.url.replace(/\/[^/]*$/, '')}`);
  await faultAt(deployId, 3, 'restart of the target PostgreSQL', () => {
    const restartedAt = performance.now();
    target.restart();
    return Promise.resolve(`pg_ctl restart -m fast took ${((performance.now() - restartedAt) / 1000).toFixed(1)} s`);
  });
  const end = await until(deployId, 'the rollout to end', ended, 300_000);
  await Promise.all(recoveries.splice(0));
  say(`rollout ${deployId} ${end.status} in ${((performance.now() - t) / 1000).toFixed(1)} s: ${JSON.stringify(Object.fromEntries(Object.entries(end.counts).filter(([, n]) => n > 0)))}`);
  assert.equal(end.status, 'completed', end.problems.join('; '));
  assert.equal(end.counts.succeeded, targetFleet.length);
  await assertExactlyOnce(targetFleet, target.url);
  const retried = await retriedWork(targetFleet, deployId);
  say(`work retried after the restart: ${retried.length} (${retried.slice(0, 8).join(', ')}${retried.length > 8 ? ', ...' : ''})`);
  assert.ok(retried.length > 0, 'the restart broke connections the rollout was using: some of its activities were retried');
}));
