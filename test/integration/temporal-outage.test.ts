import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { freePort, startDevServer } from '../../src/worker/dev-server';
import { createLogger } from '../../src/logging/logger';
import { createWorker, installRuntime } from '../../src/worker/worker';
import { cliEnv, runCli } from '../helpers/cli';
import { createTestDatabase, statementRunning } from '../helpers/database';
import { runInProcess } from '../helpers/in-process-cli';
import { sampleMigrationsDir, writeMigrations } from '../helpers/migrations';
import { testConfig, uniqueTaskQueue } from '../helpers/temporal';
import { waitFor } from '../helpers/workers';
import { services } from '../helpers/services';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A dev server of the test's own on a fixed port, so it can be stopped and started again with the same state. */
async function privateServer(t: { after(fn: () => unknown): void }) {
  const scratch = mkdtempSync(join(tmpdir(), 'pgconvoy-outage-'));
  t.after(() => rmSync(scratch, { recursive: true, force: true }));
  const options = { dbFile: join(scratch, 'temporal.db'), logFile: join(scratch, 'temporal.log'), port: await freePort(), namespaces: [services.temporalNamespace] };
  let server = await startDevServer(options);
  t.after(() => server.stop());
  return {
    address: server.address,
    stop: () => server.stop(),
    restart: async () => {
      server = await startDevServer(options);
    },
  };
}

test('up waits through a 30 s Temporal outage: it reconnects and reports the result of the run', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const set = writeMigrations({ 'V1__slow.sql': 'SELECT pg_sleep(3) /* outage-marker */;', 'V2__after.sql': 'CREATE TABLE after_outage (id int);' });
  t.after(() => set.remove());
  const server = await privateServer(t);
  const logger = createLogger('silent');
  installRuntime(logger);
  const config = testConfig({ databases: { outage: db.url }, migrationsDir: set.dir });
  const { worker, connection } = await createWorker({ config, logger, address: server.address });
  const env = { TEMPORAL_ADDRESS: server.address, TEMPORAL_NAMESPACE: services.temporalNamespace, PGCONVOY_TASK_QUEUE: config.temporal.taskQueue, PGCONVOY_LOG_LEVEL: 'silent', PGCONVOY_TEMPORAL_RECONNECT_TIMEOUT_MS: '120000' };

  const result = await worker.runUntil(async () => {
    const up = runInProcess(['--migrations', set.dir, 'up', '--db', 'outage'], env, set.dir);
    await waitFor('the first migration to run', () => statementRunning(db, 'outage-marker'));
    await server.stop();
    await sleep(30_000); // longer than the SDK's own retries of a lost connection (about 20 s)
    await server.restart();
    return up;
  });
  await connection.close();
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /applied; database "outage" is at version 2\n$/);
  assert.match(result.stderr, new RegExp(`pgconvoy: lost the connection to Temporal at ${server.address}; the run goes on there: reconnecting for up to 120 s\n`));
  assert.match(result.stderr, new RegExp(`pgconvoy: reconnected to Temporal at ${server.address}; waiting for the run\n`));
  const ledger = await db.query<{ version: string }>(`SELECT version::text FROM pgconvoy.history WHERE status = 'applied' ORDER BY version`);
  assert.deepEqual(ledger.rows.map((r) => r.version), ['1', '2']);
});

test('when Temporal stays away past the reconnect timeout, up says the run may still be going and how to check, exit 3', async (t) => {
  const set = writeMigrations({ 'V1__a.sql': 'CREATE TABLE a (id int);' });
  t.after(() => set.remove());
  const server = await privateServer(t);
  // No worker: the run is started and stays where it is, as it would on a server that is down.
  const env = { TEMPORAL_ADDRESS: server.address, TEMPORAL_NAMESPACE: services.temporalNamespace, PGCONVOY_TASK_QUEUE: uniqueTaskQueue(), PGCONVOY_LOG_LEVEL: 'silent', PGCONVOY_TEMPORAL_RECONNECT_TIMEOUT_MS: '3000' };
  const live = { stderr: '' };
  const up = runInProcess(['--migrations', set.dir, 'up', '--db', 'gone'], env, set.dir, live);
  await waitFor('the run to start', () => Promise.resolve(live.stderr.includes('pgconvoy: migrating') ? true : undefined));
  await sleep(500);
  await server.stop();
  const result = await up;
  assert.equal(result.code, 3, result.stderr);
  assert.match(
    result.stderr,
    new RegExp(
      `pgconvoy: \\[TemporalUnavailable\\] lost the connection to Temporal at ${server.address} and could not reconnect within 3 s; ` +
        'the run of "gone" may still be going: check with `pgconvoy status --db gone`\nworkflow: pgconvoy/db/gone\n$',
    ),
  );
});

test('a Temporal address that does not answer is named, within seconds, with exit 3', async () => {
  const address = `127.0.0.1:${await freePort()}`;
  const started = Date.now();
  const result = await runCli(['status', '--db', 'x', '--migrations', sampleMigrationsDir], { env: cliEnv({ TEMPORAL_ADDRESS: address }), timeoutMs: 30_000 });
  assert.equal(result.code, 3, result.stderr);
  assert.equal(
    result.stderr,
    `pgconvoy: [TemporalUnavailable] cannot reach Temporal at ${address} within 5 s: check that the server runs there (TEMPORAL_ADDRESS, or temporal.address in the config)\n`,
  );
  assert.ok(Date.now() - started < 15_000, `took ${Date.now() - started} ms`);
});
