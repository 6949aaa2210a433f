import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import type { RolloutNotification, RunNotification } from '../../src/contracts';
import { signatureOf } from '../../src/runs/webhook';
import { fleetFixture, rolloutInput, runRollout } from '../helpers/fleet';
import { sharedTestClient, withWorker } from '../helpers/temporal';

const temporal = sharedTestClient();

interface Received {
  event: string;
  delivery: string;
  body: string;
  signatureOk: boolean;
  status: number;
}

/** A receiver that is down (503) for its first `downFor` requests, then checks each signature and takes the body. */
async function receiver(t: { after(fn: () => unknown): void }, secret: string, downFor: number): Promise<{ url: string; received: Received[] }> {
  const received: Received[] = [];
  const server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
    request.on('end', () => {
      const signatureOk = request.headers['x-pgconvoy-signature'] === signatureOf(secret, body);
      const status = received.length < downFor ? 503 : signatureOk ? 204 : 401;
      received.push({ event: String(request.headers['x-pgconvoy-event']), delivery: String(request.headers['x-pgconvoy-delivery']), body, signatureOk, status });
      response.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, received };
}

test('webhooks: each rollout event reaches each receiver signed (HMAC-SHA256), with one delivery id kept across retries while the receiver is down; a Slack-format hook gets only the events it asked for', async (t) => {
  const ops = await receiver(t, 'ops-secret', 2);
  const chat = await receiver(t, 'chat-secret', 0);
  const fleet = await fleetFixture(t, 3, { 'V1__a.sql': 'CREATE TABLE a (id int);' }, { prefix: 'hook' });
  const config = {
    ...fleet.config,
    webhooks: {
      ops: { url: ops.url, secret: 'ops-secret', format: 'json' as const },
      chat: { url: chat.url, secret: 'chat-secret', format: 'slack' as const, events: ['completed'] },
    },
  };
  await withWorker(config, async () => {
    const result = await runRollout(temporal.client, config, rolloutInput(fleet, 'hook-1', { notify: ['ops', 'chat'], strategy: { waveSize: { percent: 100 } } }));
    assert.equal(result.status, 'completed');
  });
  // The receiver was down for two requests; every event still arrived, each once accepted.
  const accepted = ops.received.filter((r) => r.status === 204);
  assert.deepEqual(accepted.map((r) => r.event).sort(), ['completed', 'started', 'wave-done', 'wave-done']);
  assert.ok(ops.received.every((r) => r.signatureOk), 'every body signed with the secret');
  assert.equal(new Set(accepted.map((r) => r.delivery)).size, accepted.length, 'a delivery id per event');
  const refused = ops.received.filter((r) => r.status === 503);
  assert.equal(refused.length, 2);
  for (const r of refused) assert.ok(accepted.some((a) => a.delivery === r.delivery && a.body === r.body), 'a retry sends the same delivery again');
  const completed = JSON.parse(accepted.find((r) => r.event === 'completed')!.body) as RolloutNotification;
  assert.equal(completed.deployId, 'hook-1');
  assert.equal(completed.counts.succeeded, 3);
  assert.match(completed.text, /rollout hook-1 completed: 3 migrated/);
  // Slack: only what it asked for, as {"text"}.
  assert.deepEqual(chat.received.map((r) => [r.event, r.status]), [['completed', 204]]);
  assert.deepEqual(Object.keys(JSON.parse(chat.received[0]!.body) as object), ['text']);
  assert.ok(!JSON.stringify([...ops.received, ...chat.received]).includes('secret'), 'no secret in any body or header we kept');
});

test('webhooks: a single database’s run (up) tells of its start, its wait for an approval and its end; a failed run’s notice names the file and SQLSTATE; a receiver that stays down delays no run', async (t) => {
  const ops = await receiver(t, 'ops-secret', 1);
  const down = await receiver(t, 'down-secret', Number.MAX_SAFE_INTEGER);
  const fleet = await fleetFixture(t, 1, {
    'V1__accounts.sql': 'CREATE TABLE accounts (id int PRIMARY KEY);',
    'V2__broken.sql': 'ALTER TABLE no_such_table ADD COLUMN note text;',
  }, { prefix: 'hookdb' });
  const config = { ...fleet.config, webhooks: { ops: { url: ops.url, secret: 'ops-secret', format: 'json' as const }, down: { url: down.url, secret: 'down-secret', format: 'json' as const } } };
  const [alias] = fleet.aliases;
  /** The run's result, or a failure if it waits for the receiver that is down (its deliveries retry for minutes). */
  const promptly = <T>(result: Promise<T>): Promise<T> => Promise.race([result, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the run waited for a webhook receiver')), 30_000).unref())]);
  const pgconvoy = { client: temporal.client, taskQueue: config.temporal.taskQueue };
  const { approve, migrate, startMigration } = await import('../../src/client/api');
  const { waitFor } = await import('../helpers/workers');
  const bodies = (event: string) => ops.received.filter((r) => r.status === 204 && r.event === event).map((r) => JSON.parse(r.body) as RunNotification);
  await withWorker(config, async () => {
    const handle = await startMigration(pgconvoy, { db: alias!, migrationsDir: config.migrationsDir, target: '1', requireApproval: true, notify: ['ops', 'down'] });
    await waitFor('the approval notice', () => Promise.resolve(bodies('run-approval-needed').length > 0 ? true : undefined), 30_000);
    await approve(pgconvoy, alias!, { by: 'dana' });
    assert.equal((await promptly(handle.result())).status, 'applied');
    // The next run of the database starts at once: no notice holds its workflow id.
    await assert.rejects(promptly(migrate(pgconvoy, { db: alias!, migrationsDir: config.migrationsDir, onFailure: 'halt', notify: ['ops', 'down'] })), /Workflow execution failed/);
    // Each notice is a workflow of its own that may outlive its run: the receiver's first refusal is retried.
    await waitFor('every notice', () => Promise.resolve(ops.received.filter((r) => r.status === 204).length >= 5 ? true : undefined), 30_000);
  });
  // Notices sent in one workflow task (started, then approval needed) may arrive in either order.
  assert.deepEqual(ops.received.filter((r) => r.status === 204).map((r) => r.event).sort(), ['run-approval-needed', 'run-completed', 'run-failed', 'run-started', 'run-started']);
  assert.equal(ops.received.filter((r) => r.status === 503).length, 1);
  assert.ok(down.received.length >= 3 && down.received.every((r) => r.status === 503 && r.signatureOk), 'the receiver that is down was tried');
  assert.ok(ops.received.every((r) => r.signatureOk));
  const [first, second] = bodies('run-started').sort((a, b) => a.at - b.at);
  assert.deepEqual([first!.db, first!.pending, first!.versionBefore, first!.workflowId], [alias, 1, null, `pgconvoy/db/${alias}`]);
  assert.deepEqual([second!.pending, second!.versionBefore], [1, '1']);
  const completed = bodies('run-completed')[0]!;
  assert.deepEqual([completed.status, completed.versionAfter, completed.failure], ['applied', '1', null]);
  const failed = bodies('run-failed')[0]!;
  assert.equal(failed.status, 'halted');
  assert.equal(failed.versionAfter, '1');
  assert.match(failed.failure ?? '', /V2__broken\.sql.*SQLSTATE 42P01/);
  assert.match(failed.text, new RegExp(`^${alias}: `));
});
