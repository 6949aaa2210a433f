import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { startRollout } from '../../src/client/rollout';
import { createLogger } from '../../src/logging/logger';
import { freePort, startDevServer } from '../../src/worker/dev-server';
import { createWorker, installRuntime } from '../../src/worker/worker';
import { statementRunning, type TestDatabase } from '../helpers/database';
import { fleetFixture, rolloutInput } from '../helpers/fleet';
import { services } from '../helpers/services';
import { sharedTestClient } from '../helpers/temporal';
import { resultThroughRestart, waitFor, workerPool } from '../helpers/workers';

const temporal = sharedTestClient();

/** V1 takes a moment (long enough to be interrupted) and leaves one row per application. */
const slowSet = {
  'V1__once.sql': 'CREATE TABLE once (id int);\nINSERT INTO once VALUES (1);\nSELECT pg_sleep(1.5) /* rollout fault */;',
  'V2__more.sql': 'ALTER TABLE once ADD COLUMN note text;',
};

/** Each version applied once in the ledger, and V1's row there once. */
async function appliedOnce(alias: string, db: TestDatabase): Promise<void> {
  const rows = (await db.query<{ version: string; n: number }>(`SELECT version::text, count(*)::int AS n FROM pgconvoy.history WHERE status = 'applied' GROUP BY version ORDER BY version`)).rows;
  assert.deepEqual(rows, [{ version: '1', n: 1 }, { version: '2', n: 1 }], alias);
  assert.deepEqual((await db.query('SELECT count(*)::int AS n FROM once')).rows, [{ n: 1 }], `${alias}: V1's statements ran once`);
}

test('SIGKILL of the worker mid-rollout: a fresh worker completes the rollout, each database’s migrations applied exactly once', async (t) => {
  const fleet = await fleetFixture(t, 5, slowSet, { prefix: 'kill' });
  const pool = workerPool({ taskQueue: fleet.config.temporal.taskQueue, databases: fleet.config.databases, migrationsDir: fleet.config.migrationsDir });
  t.after(() => pool.stopAll());
  const a = pool.start();
  const { client } = temporal;
  const { handle } = await startRollout({ client, taskQueue: fleet.config.temporal.taskQueue }, rolloutInput(fleet, 'kill-1', { strategy: { waveSize: { percent: 100 }, maxParallel: 2 } }));
  // Killed while a wave-1 database is in the middle of V1.
  await waitFor('a wave-1 migration to run', async () => ((await statementRunning(fleet.dbs.get('kill-02')!, 'rollout fault')) ? true : undefined), 60_000);
  a.kill('SIGKILL');
  await a.exited;
  pool.start();
  const result = await handle.result();
  assert.equal(result.status, 'completed', JSON.stringify(result.databases, null, 2));
  assert.equal(result.counts.succeeded, 5);
  for (const [alias, db] of fleet.dbs) await appliedOnce(alias, db);
});

test('the Temporal server restarts mid-rollout (state file kept): the rollout completes, each database’s migrations applied exactly once', async (t) => {
  const fleet = await fleetFixture(t, 4, slowSet, { prefix: 'tmp-restart' });
  const scratch = mkdtempSync(join(tmpdir(), 'pgconvoy-rollout-restart-'));
  t.after(() => rmSync(scratch, { recursive: true, force: true }));
  const serverOptions = { dbFile: join(scratch, 'temporal.db'), logFile: join(scratch, 'temporal.log'), port: await freePort(), namespaces: [services.temporalNamespace] };
  let server = await startDevServer(serverOptions);
  t.after(() => server.stop());
  const logger = createLogger('silent');
  installRuntime(logger);
  const { worker, connection: workerConnection } = await createWorker({ config: fleet.config, logger, address: server.address });
  const connection = await Connection.connect({ address: server.address });
  t.after(() => connection.close());
  const client = new Client({ connection, namespace: services.temporalNamespace });
  const result = await worker.runUntil(async () => {
    const { handle } = await startRollout({ client, taskQueue: fleet.config.temporal.taskQueue }, rolloutInput(fleet, 'restart-1', { strategy: { waveSize: { percent: 100 }, maxParallel: 2 } }));
    await waitFor('a wave-1 migration to run', async () => ((await statementRunning(fleet.dbs.get('tmp-restart-02')!, 'rollout fault')) ? true : undefined), 60_000);
    await server.stop();
    server = await startDevServer(serverOptions);
    return resultThroughRestart(handle);
  });
  await workerConnection.close();
  assert.equal(result.status, 'completed', JSON.stringify(result.databases, null, 2));
  for (const [alias, db] of fleet.dbs) await appliedOnce(alias, db);
});
