import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { services } from '../helpers/services';
import { fleetFixture, ledgerVersion, rolloutInput, runRollout } from '../helpers/fleet';
import { sharedTestClient, withWorker } from '../helpers/temporal';

const temporal = sharedTestClient();

test('a worker capped at 5 connections to the server runs a rollout of 8 databases at once within them: leases stay renewed, every database migrates', async (t) => {
  // Each migration holds its connection for a while, so the steps queue for the four slots steps may take.
  const set = {
    'V1__accounts.sql': 'CREATE TABLE accounts (id bigint PRIMARY KEY);\nSELECT pg_sleep(1.5);',
    'V2__email.sql': 'ALTER TABLE accounts ADD COLUMN email text;\nSELECT pg_sleep(0.5);',
    'V3__by_email.sql': 'CREATE INDEX accounts_email ON accounts (email);',
  };
  const fleet = await fleetFixture(t, 8, set, { prefix: 'capped', config: { lease: { ttlMs: 3_000, renewEveryMs: 300 } } });
  const config = { ...fleet.config, worker: { ...fleet.config.worker, maxConnectionsPerServer: 5 } };
  const names = [...fleet.dbs.values()].map((db) => db.name);
  const seen: number[] = [];
  const admin = new pg.Client({ connectionString: services.adminUrl });
  await admin.connect();
  t.after(() => admin.end());
  const ours = (apps: string) => admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = ANY($1) AND (${apps})`, [names]).then((r) => r.rows[0]!.n);
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      // pg_dump's connection counts too: the backup step holds its slot while it runs.
      seen.push(await ours(`application_name LIKE 'pgconvoy%' OR application_name = 'pg_dump'`));
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  const result = await withWorker(config, () =>
    runRollout(temporal.client, config, rolloutInput(fleet, 'capped-1', { strategy: { canary: { count: 0 }, waveSize: { percent: 100 }, maxParallel: 8 } })),
  ).finally(() => (sampling = false));
  await sampler;
  assert.equal(result.status, 'completed', JSON.stringify(result, null, 2));
  assert.equal(result.counts.succeeded, 8);
  for (const db of fleet.dbs.values()) assert.equal(await ledgerVersion(db), '3');
  const peak = Math.max(...seen);
  assert.ok(peak <= 5, `never more than 5 connections to the server, saw ${peak} (samples: ${seen.join(' ')})`);
  assert.ok(peak >= 4, `the databases did run side by side, up to the cap (saw at most ${peak})`);
  // A backend whose client closed may take a moment to exit on a loaded machine; a connection left open stays.
  let left = -1;
  for (let i = 0; i < 50 && left !== 0; i++) {
    if (i > 0) await new Promise((resolve) => setTimeout(resolve, 100));
    left = await ours(`application_name LIKE 'pgconvoy%'`);
  }
  assert.equal(left, 0, 'the worker keeps nothing open after it stops');
});
