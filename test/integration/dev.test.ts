import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { freePort } from '../../src/worker/dev-server';
import { cliEnv, scratchDir, startCli } from '../helpers/cli';
import { createTestDatabase } from '../helpers/database';
import { ledgerVersion } from '../helpers/fleet';
import { writeMigrations } from '../helpers/migrations';
import { waitFor } from '../helpers/workers';

test('pgconvoy dev: the Temporal server with its Web UI, a worker and the HTTP API in one process; Ctrl-C ends it all (an open event stream too) and the state stays for the next start; the rollout shows in the UI', async (t) => {
  const dir = scratchDir(t, 'pgconvoy-dev-');
  const dbs = [await createTestDatabase(), await createTestDatabase()];
  for (const db of dbs) t.after(() => db.drop());
  const set = writeMigrations({ 'V1__things.sql': 'CREATE TABLE things (id int PRIMARY KEY);', 'V2__things_name.sql': 'ALTER TABLE things ADD COLUMN name text;' });
  t.after(() => set.remove());
  const [apiPort, temporalPort, uiPort] = [await freePort(), await freePort(), await freePort()];
  const env = cliEnv({ PGCONVOY_DB_DEV_A: dbs[0]!.url, PGCONVOY_DB_DEV_B: dbs[1]!.url, PGCONVOY_STATE_DIR: join(dir, 'state') });
  const args = ['--migrations', set.dir, 'dev', '--port', String(apiPort), '--temporal-port', String(temporalPort), '--ui-port', String(uiPort)];
  const api = `http://127.0.0.1:${apiPort}`;
  const startDev = async () => {
    const dev = startCli(args, env, dir); // no config file there: the databases are the environment's
    t.after(() => {
      if (dev.child.exitCode === null) dev.child.kill('SIGKILL');
    });
    const token = await waitFor(
      'pgconvoy dev to print its URLs and token',
      () => {
        if (dev.child.exitCode !== null) throw new Error(`pgconvoy dev exited (code ${dev.child.exitCode}) before it printed its URLs; it printed:\n${dev.output()}`);
        return Promise.resolve(/token\s+(\S+) \(this session only/.exec(dev.output())?.[1]);
      },
      60_000,
    ).catch((error: Error) => assert.fail(error.message.startsWith('timed out') ? `${error.message}; it printed:\n${dev.output()}` : error.message));
    return { dev, auth: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } };
  };
  const statusOf = async (auth: Record<string, string>) => (await (await fetch(`${api}/v1/rollouts/dev-1`, { headers: auth })).json()) as { status: string };

  const first = await startDev();
  const out = first.dev.output();
  assert.match(out, new RegExp(`Temporal Web UI  http://127\\.0\\.0\\.1:${uiPort}`));
  assert.match(out, new RegExp(`TEMPORAL_ADDRESS=127\\.0\\.0\\.1:${temporalPort}`));
  assert.match(out, new RegExp(`rollout page     http://127\\.0\\.0\\.1:${apiPort}/`));
  assert.deepEqual(await (await fetch(`${api}/healthz`)).json(), { status: 'ok', temporal: 'reachable' });
  assert.match(await (await fetch(`${api}/`)).text(), /<title>pgconvoy rollouts<\/title>/);
  assert.equal((await fetch(`${api}/v1/rollouts`)).status, 401, 'the API still wants the token');

  // The canary, then a wait for an approval before the other database.
  const started = await fetch(`${api}/v1/rollouts`, { method: 'POST', headers: first.auth, body: JSON.stringify({ deployId: 'dev-1', all: true, approveWaves: true }) });
  assert.equal(started.status, 201, await started.text());
  let seen = '';
  await waitFor('the wave to wait for its approval', async () => {
    const { status } = await statusOf(first.auth);
    seen = status;
    return status === 'awaiting-approval' ? true : undefined;
  }, 60_000).catch((error: Error) => assert.fail(`${error.message}: the rollout is ${seen}`));
  // Ctrl-C with a page following the rollout: the stream is ended, and everything stops.
  const stream = await fetch(`${api}/v1/rollouts/dev-1/events`, { headers: first.auth });
  assert.equal(stream.status, 200);
  const streamed = stream.text();
  first.dev.child.kill('SIGINT');
  assert.equal(await first.dev.exited, 0, first.dev.output());
  assert.match(await streamed, /awaiting-approval/);
  assert.ok(existsSync(join(dir, 'state', 'temporal.db')), 'the state stays in the state folder');

  // Started again on the same state: the rollout still waits, and goes on once approved.
  const second = await startDev();
  assert.equal((await statusOf(second.auth)).status, 'awaiting-approval');
  assert.equal((await fetch(`${api}/v1/rollouts/dev-1`, { headers: first.auth })).status, 401, 'the last session’s token is gone with it');
  const approved = await fetch(`${api}/v1/rollouts/dev-1/approve`, { method: 'POST', headers: second.auth, body: '{}' });
  assert.equal(approved.status, 200, await approved.text());
  const status = await waitFor('the rollout to end', async () => {
    const body = await statusOf(second.auth);
    return ['completed', 'failed', 'halted'].includes(body.status) ? body.status : undefined;
  }, 60_000);
  assert.equal(status, 'completed');
  for (const db of dbs) assert.equal(await ledgerVersion(db), '2');

  // The Web UI serves its page, and its API shows the rollout and each database's run.
  const ui = await fetch(`http://127.0.0.1:${uiPort}/`);
  assert.equal(ui.status, 200);
  assert.match(await ui.text(), /<html/i);
  const listed = (await (await fetch(`http://127.0.0.1:${uiPort}/api/v1/namespaces/default/workflows?query=${encodeURIComponent("WorkflowId STARTS_WITH 'pgconvoy/'")}`)).json()) as { executions?: Array<{ execution: { workflowId: string } }> };
  const ids = (listed.executions ?? []).map((e) => e.execution.workflowId).sort();
  assert.deepEqual(ids, ['pgconvoy/db/dev_a', 'pgconvoy/db/dev_b', 'pgconvoy/rollout/dev-1']);

  second.dev.child.kill('SIGINT');
  assert.equal(await second.dev.exited, 0, second.dev.output());
  for (const output of [first.dev.output(), second.dev.output()]) assert.ok(!output.includes(dbs[0]!.url), 'no connection string printed');
});
