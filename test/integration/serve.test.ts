import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tokenHash } from '../../src/client/http/auth';
import { buildServer } from '../../src/client/http/server';
import { SharedStatus } from '../../src/client/http/shared-status';
import type { RolloutStatus } from '../../src/contracts';
import pino from 'pino';
import { fleetFixture, ledgerVersion } from '../helpers/fleet';
import { sharedTestClient, withWorker } from '../helpers/temporal';

const temporal = sharedTestClient();

// V2 takes a second, so a stream (its status is asked for a few times a second) sees the databases running.
const set = {
  'V1__accounts.sql': 'CREATE TABLE accounts (id bigint PRIMARY KEY, legacy text);',
  'V2__drop_legacy.sql': 'ALTER TABLE accounts DROP COLUMN legacy;\nSELECT pg_sleep(1);',
};

const pipelineToken = 'pipeline-secret-token-3f9a1c';
const personToken = 'person-secret-token-7b2e44';
/** A pipeline's token (trigger, read) and a person's (approve, read), as the config holds them. */
const tokens = [
  { name: 'ci-pipeline', sha256: tokenHash(pipelineToken), scopes: ['trigger' as const, 'read' as const] },
  { name: 'alice', sha256: tokenHash(personToken), scopes: ['approve' as const, 'read' as const] },
];

test('pgconvoy serve: a pipeline token starts a rollout (the same request twice: one rollout), only a person’s token approves it, and every refusal has its status; no token or password in any response or log', async (t) => {
  const fleet = await fleetFixture(t, 2, set, { prefix: 'http', labels: () => ({ tier: 'prod' }) });
  const password = 'pw-that-must-not-leak';
  // A connection string with a password: it must never come back.
  const { adminQuery } = await import('../helpers/database');
  await adminQuery(`DO $$ BEGIN CREATE ROLE pgconvoy_http_role LOGIN SUPERUSER PASSWORD '${password}'; EXCEPTION WHEN duplicate_object THEN NULL; END $$`);
  const withPassword = Object.fromEntries(Object.entries(fleet.config.databases).map(([alias, url]) => {
    const u = new URL(url);
    u.username = 'pgconvoy_http_role';
    u.password = password;
    return [alias, u.toString()];
  }));
  const logged: string[] = [];
  // The worker's JSON lines, kept to be searched.
  const logger = pino({ level: 'info' }, { write: (line: string) => void logged.push(line) });
  const config = {
    ...fleet.config,
    databases: withPassword,
    serve: {
      ...fleet.config.serve,
      tokens,
    },
  };
  const { client } = temporal;
  const app = await buildServer({ config, pgconvoy: { client, taskQueue: config.temporal.taskQueue }, logger });
  t.after(() => app.close());
  const base = await app.listen({ host: '127.0.0.1', port: 0 });
  const bodies: string[] = [];
  const call = async (method: string, path: string, token?: string, body?: unknown) => {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
    });
    const text = await response.text();
    bodies.push(text);
    return { status: response.status, body: (text ? JSON.parse(text) : null) as Record<string, unknown> };
  };

  await withWorker(config, async () => {
    // At V1, so V2's drop-column is high risk on an existing table.
    const { migrate } = await import('../../src/client/api');
    for (const alias of fleet.aliases) await migrate({ client, taskQueue: config.temporal.taskQueue }, { db: alias, migrationsDir: config.migrationsDir, target: '1' });
    assert.deepEqual((await call('GET', '/healthz')).body, { status: 'ok', temporal: 'reachable' });
    assert.equal((await call('GET', '/readyz')).status, 200);
    // The OpenAPI document, from the routes' schemas.
    const openapi = await call('GET', '/openapi.json');
    assert.equal(openapi.status, 200);
    const paths = openapi.body.paths as Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { properties: Record<string, unknown> } }> } }>>;
    assert.ok(paths['/v1/rollouts/{deployId}/approve']?.post, Object.keys(paths).join(', '));
    assert.ok('maxParallel' in (paths['/v1/rollouts']?.post?.requestBody?.content['application/json']?.schema.properties ?? {}));

    const start = { deployId: 'http-1', select: 'tier=prod', maxParallel: 2, waveSize: '100%' };
    // No token, a wrong token, the wrong scope: nothing starts.
    assert.equal((await call('POST', '/v1/rollouts', undefined, start)).status, 401);
    assert.equal((await call('POST', '/v1/rollouts', 'not-a-token', start)).status, 401);
    const forbidden = await call('POST', '/v1/rollouts', personToken, start);
    assert.equal(forbidden.status, 403);
    assert.match(String(forbidden.body.message), /the token "alice" does not have the scope "trigger"/);
    // Bad bodies name the field; unknown aliases and deploy ids are 404.
    const bad = await call('POST', '/v1/rollouts', pipelineToken, { ...start, maxParallel: 0 });
    assert.equal(bad.status, 400);
    assert.match(String(bad.body.message), /maxParallel/);
    assert.equal((await call('POST', '/v1/rollouts', pipelineToken, { ...start, extra: 1 })).status, 400);
    assert.equal((await call('POST', '/v1/rollouts', pipelineToken, '{not json')).status, 400);
    const both = await call('POST', '/v1/rollouts', pipelineToken, { ...start, all: true });
    assert.equal(both.status, 400);
    assert.match(String(both.body.message), /exactly one of "databases", "select" or "all"/);
    const unknownDb = await call('POST', '/v1/rollouts', pipelineToken, { deployId: 'http-x', databases: ['nope'] });
    assert.equal(unknownDb.status, 404);
    assert.match(String(unknownDb.body.message), /unknown database alias: nope/);
    assert.equal((await call('GET', '/v1/rollouts/never-started', pipelineToken)).status, 404);
    // The list and whoami: a token, a read scope for the list, a valid limit.
    assert.equal((await call('GET', '/v1/rollouts')).status, 401);
    assert.equal((await call('GET', '/v1/whoami')).status, 401);
    assert.deepEqual((await call('GET', '/v1/whoami', personToken)).body, { name: 'alice', scopes: ['approve', 'read'] });
    const badLimit = await call('GET', '/v1/rollouts?limit=0', pipelineToken);
    assert.equal(badLimit.status, 400);
    assert.match(String(badLimit.body.message), /limit/);
    assert.equal((await call('POST', '/v1/rollouts', pipelineToken, 'x'.repeat(70 * 1024))).status, 413, 'an oversized body is refused');
    assert.equal(await ledgerVersion(fleet.dbs.get('http-01')!), '1', 'nothing started');

    // The same request twice: one rollout.
    const first = await call('POST', '/v1/rollouts', pipelineToken, start);
    assert.equal(first.status, 201, JSON.stringify(first.body));
    assert.deepEqual(first.body, { deployId: 'http-1', workflowId: 'pgconvoy/rollout/http-1', attached: false, targets: ['http-01', 'http-02'] });
    const second = await call('POST', '/v1/rollouts', pipelineToken, start);
    assert.equal(second.status, 200);
    assert.equal(second.body.attached, true);
    const conflict = await call('POST', '/v1/rollouts', pipelineToken, { ...start, select: undefined, databases: ['http-01'] });
    assert.equal(conflict.status, 409);

    // The live stream: a status event whenever the rollout changes, until it ends.
    assert.equal((await fetch(`${base}/v1/rollouts/http-1/events`)).status, 401);
    assert.equal((await fetch(`${base}/v1/rollouts/none/events`, { headers: { authorization: `Bearer ${personToken}` } })).status, 404);
    const stream = await fetch(`${base}/v1/rollouts/http-1/events`, { headers: { authorization: `Bearer ${personToken}` } });
    assert.equal(stream.status, 200);
    assert.match(stream.headers.get('content-type') ?? '', /text\/event-stream/);
    const events: RolloutStatus[] = [];
    const reading = (async () => {
      let buffer = '';
      for await (const chunk of stream.body as AsyncIterable<Uint8Array>) {
        buffer += Buffer.from(chunk).toString('utf8');
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          bodies.push(block);
          const data = block.split('\n').find((l) => l.startsWith('data: '));
          if (block.startsWith('event: status') && data) events.push(JSON.parse(data.slice(6)) as RolloutStatus);
        }
      }
    })();

    // The drop-column waits for an approval: the pipeline may not give it, the person may.
    const { waitFor } = await import('../helpers/workers');
    await waitFor('the stream to show the approval wait', () => Promise.resolve(events.some((e) => e.status === 'awaiting-approval') ? true : undefined), 30_000);
    const status = (await call('GET', '/v1/rollouts/http-1', pipelineToken)).body as unknown as RolloutStatus;
    assert.equal(status.status, 'awaiting-approval');
    assert.match(status.waitingFor ?? '', /drop-column/);
    // Pollers share one query at a time: requests while it is fresh get its answer; a message, or time, asks again.
    let clock = 0;
    const shared = new SharedStatus({ client, taskQueue: config.temporal.taskQueue }, 250, () => clock);
    const together = await Promise.all(Array.from({ length: 20 }, () => shared.get('http-1')));
    assert.equal(new Set(together).size, 1, 'twenty requests at once: one query');
    assert.equal(together[0]!.status, 'awaiting-approval');
    assert.equal(await shared.get('http-1'), together[0], 'still fresh');
    clock += 250;
    const later = await shared.get('http-1');
    assert.notEqual(later, together[0], 'no longer fresh: asked again');
    shared.changed('http-1');
    assert.notEqual(await shared.get('http-1'), later, 'after a message: asked again');
    await assert.rejects(shared.get('never-started'), /no rollout with deploy id "never-started"/);
    assert.equal((await call('POST', '/v1/rollouts/http-1/approve', pipelineToken, {})).status, 403);
    const approved = await call('POST', '/v1/rollouts/http-1/approve', personToken, { note: 'legacy unused' });
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    assert.equal(approved.body.accepted, true);
    const again = await call('POST', '/v1/rollouts/http-1/approve', personToken, {});
    assert.equal(again.status, 409, 'nothing left to approve');
    assert.match(String(again.body.message), /nothing to approve/);
    const retryWithoutDb = await call('POST', '/v1/rollouts/http-1/retry', pipelineToken, {});
    assert.equal(retryWithoutDb.status, 400);

    const result = (await client.workflow.getHandle('pgconvoy/rollout/http-1').result()) as RolloutStatus;
    assert.equal(result.status, 'completed');
    for (const [alias, db] of fleet.dbs) {
      const row = (await db.query<{ approved_by: string }>(`SELECT approved_by FROM pgconvoy.history WHERE version = 2 AND status = 'applied'`)).rows[0];
      assert.equal(row?.approved_by, 'alice', `${alias}: the token's name is who approved`);
    }
    await reading; // the stream ends with the rollout
    assert.ok(events.some((e) => e.status === 'awaiting-approval'), events.map((e) => e.status).join(','));
    assert.equal(events.at(-1)?.status, 'completed');
    assert.ok(events.some((e) => e.databases.some((d) => d.state === 'running')), 'the stream showed the databases running');
    const listed = (await call('GET', '/v1/rollouts?limit=999', personToken)).body.rollouts as Array<{ deployId: string; workflow: string; closedAt: number | null }>;
    const mine = listed.find((r) => r.deployId === 'http-1');
    assert.equal(mine?.workflow, 'completed');
    assert.ok(mine.closedAt !== null);
    const ended = await call('GET', '/v1/rollouts/http-1', personToken);
    assert.equal(ended.status, 200);
    assert.equal(ended.body.status, 'completed');
    assert.equal((await call('POST', '/v1/rollouts/http-1/pause', pipelineToken, {})).status, 409, 'an ended rollout takes no message');

    // Tokens and the password appear in no response, no log line and no workflow history.
    const history = JSON.stringify((await client.workflow.getHandle('pgconvoy/rollout/http-1').fetchHistory()).events);
    for (const secret of [pipelineToken, personToken, password]) {
      for (const text of [...bodies, ...logged, history]) assert.ok(!text.includes(secret), `a secret leaked: ${text.slice(0, 200)}`);
    }
    assert.ok(logged.some((l) => l.includes('serve.rollout_started') && l.includes('ci-pipeline')), 'who started it is logged by name');
  });
});

test('pgconvoy serve: requests are rate-limited per token, so one runaway caller does not slow the others', async (t) => {
  const { testConfig } = await import('../helpers/temporal');
  const config = testConfig({
    databases: {},
    migrationsDir: '/nonexistent',
    serve: {
      host: '127.0.0.1',
      port: 0,
      bodyLimitBytes: 64 * 1024,
      rateLimitPerMinute: 3,
      tokens: [
        { name: 'ci-pipeline', sha256: tokenHash(pipelineToken), scopes: ['read'] },
        { name: 'alice', sha256: tokenHash(personToken), scopes: ['read'] },
      ],
    },
  });
  const app = await buildServer({ config, pgconvoy: { client: temporal.client, taskQueue: config.temporal.taskQueue }, logger: pino({ level: 'silent' }) });
  t.after(() => app.close());
  const base = await app.listen({ host: '127.0.0.1', port: 0 });
  const get = async (token: string) => (await fetch(`${base}/v1/rollouts/none`, { headers: { authorization: `Bearer ${token}` } })).status;
  assert.deepEqual([await get(pipelineToken), await get(pipelineToken), await get(pipelineToken)], [404, 404, 404]);
  assert.equal(await get(pipelineToken), 429, 'the fourth request in the minute');
  assert.equal(await get(personToken), 404, 'another token is not slowed');
});

test('pgconvoy serve: one database: up (waiting for a person’s approval), its status while it runs and after, refusals', async (t) => {
  const fleet = await fleetFixture(t, 1, set, { prefix: 'httpdb' });
  const config = {
    ...fleet.config,
    serve: {
      ...fleet.config.serve,
      tokens,
    },
  };
  const { client } = temporal;
  const app = await buildServer({ config, pgconvoy: { client, taskQueue: config.temporal.taskQueue }, logger: pino({ level: 'silent' }) });
  t.after(() => app.close());
  const base = await app.listen({ host: '127.0.0.1', port: 0 });
  const call = async (method: string, path: string, token: string, body?: unknown) => {
    const response = await fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  await withWorker(config, async () => {
    assert.equal((await call('GET', '/v1/databases/nope', pipelineToken)).status, 404);
    assert.equal((await call('POST', '/v1/databases/nope/up', pipelineToken, {})).status, 404);
    assert.equal((await call('POST', '/v1/databases/httpdb-01/up', pipelineToken, { target: 'two' })).status, 400);
    assert.equal((await call('POST', '/v1/databases/httpdb-01/up', personToken, {})).status, 403);
    const started = await call('POST', '/v1/databases/httpdb-01/up', pipelineToken, { requireApproval: true });
    assert.equal(started.status, 202, JSON.stringify(started.body));
    assert.equal(started.body.workflowId, 'pgconvoy/db/httpdb-01');
    const { waitFor } = await import('../helpers/workers');
    const running = await waitFor('the run to wait for its approval', async () => {
      const s = await call('GET', '/v1/databases/httpdb-01', pipelineToken);
      return (s.body.running as { phase?: string } | null)?.phase === 'awaiting-approval' ? s.body : undefined;
    });
    assert.equal((running.plan as { pending: unknown[] }).pending.length, 2);
    assert.equal((await call('POST', '/v1/databases/httpdb-01/approve', pipelineToken, {})).status, 403);
    assert.equal((await call('POST', '/v1/databases/httpdb-01/approve', personToken, { note: 'ok' })).status, 200);
    await client.workflow.getHandle('pgconvoy/db/httpdb-01').result();
    const after = await call('GET', '/v1/databases/httpdb-01', pipelineToken);
    assert.equal(after.body.running, null);
    assert.deepEqual((after.body.history as Array<{ version: string; status: string; approvedBy: string | null }>).map((h) => [h.version, h.status, h.approvedBy]), [['1', 'applied', 'alice'], ['2', 'applied', 'alice']]);
    const none = await call('POST', '/v1/databases/httpdb-01/approve', personToken, {});
    assert.equal(none.status, 409);
    assert.match(String(none.body.message), /no migration of "httpdb-01" is running/);
  });
});
