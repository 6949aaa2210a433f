import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { test } from 'node:test';
import { bundleWorkflowCode } from '@temporalio/worker';
import type { Client } from '@temporalio/client';
import type { Config } from '../../src/config/config';
import { runSearchAttributes, type MigrateDatabaseInput, type RunEventType } from '../../src/contracts';
import { createLogger } from '../../src/logging/logger';
import { createWorker } from '../../src/worker/worker';
import { cliFixture } from '../helpers/cli-fixture';
import { testClient } from '../helpers/temporal';
import type { ParentResult } from '../helpers/workflow-variants/parent';

const parentWorkflows = join(__dirname, '..', 'helpers', 'workflow-variants', 'parent.js');
const quiet = { log: () => undefined, trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/** Runs the test parent over one child run, on a worker with pgconvoy's activities and the parent's bundle. */
async function runParent(t: { after(fn: () => unknown): void }, config: Config, child: MigrateDatabaseInput): Promise<{ client: Client; result: ParentResult }> {
  const { client, close } = await testClient();
  t.after(close);
  const { worker, connection } = await createWorker({
    config,
    logger: createLogger('silent'),
    workflowBundle: await bundleWorkflowCode({ workflowsPath: parentWorkflows, logger: quiet }),
  });
  t.after(() => connection.close());
  const result = await worker.runUntil(
    client.workflow.execute<(input: MigrateDatabaseInput) => Promise<ParentResult>>('parentOfOne', {
      taskQueue: config.temporal.taskQueue,
      workflowId: `pgconvoy-test/parent/${randomUUID()}`,
      args: [child],
    }),
  );
  return { client, result };
}

test('a parent workflow starts migrateDatabase as a child, approves it by signal, receives its events and reads its outcome', async (t) => {
  const { db, config } = await cliFixture(
    t,
    { 'V1__users.sql': 'CREATE TABLE users (id bigint PRIMARY KEY);', 'V2__email.sql': 'ALTER TABLE users ADD COLUMN email text;' },
    'child-run',
  );
  const { client, result } = await runParent(t, config, { db: 'child-run', migrationsDir: config.migrationsDir, requireApproval: true });
  // The events, in the order the child emitted them (signals may arrive in another).
  const types: RunEventType[] = result.events.sort((a, b) => a.seq - b.seq).map((e) => e.type);
  assert.deepEqual(result.events.map((e) => e.seq), types.map((_, i) => i + 1));
  assert.deepEqual(types, ['planned', 'awaiting-approval', 'approved', 'locking', 'backing-up', 'applying', 'migration-done', 'applying', 'migration-done', 'verifying', 'ended']);
  assert.ok(result.events.every((e) => e.db === 'child-run' && typeof e.at === 'number'));
  const approved = result.events.find((e) => e.type === 'approved');
  assert.equal(approved?.type === 'approved' ? approved.by : undefined, 'parent');

  // The outcome, as data.
  const outcome = result.outcome;
  assert.ok(outcome && outcome.status === 'applied', JSON.stringify(outcome));
  assert.equal(outcome.approvedBy, 'parent');
  assert.equal(outcome.versionBefore, null);
  assert.equal(outcome.versionAfter, '2');
  assert.equal(outcome.workflowId, result.childWorkflowId);
  assert.deepEqual(outcome.migrations.map((m) => [m.version, m.status]), [['1', 'applied'], ['2', 'applied']]);
  assert.ok(outcome.safeguard && 'key' in outcome.safeguard.backup, 'the backup taken before the first change');
  assert.match(outcome.safeguard.fingerprintBefore, /^[0-9a-f]{64}$/);
  assert.match(outcome.fingerprintAfter ?? '', /^[0-9a-f]{64}$/);
  assert.notEqual(outcome.fingerprintAfter, outcome.safeguard.fingerprintBefore);
  const ended = result.events.at(-1)!;
  assert.ok(ended.type === 'ended' && ended.status === 'applied' && ended.versionAfter === '2');
  assert.equal((await db.query(`SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'users'`)).rows[0]?.n, 2);

  // Its search attributes, kept up to date by the same events.
  const described = await client.workflow.getHandle(result.childWorkflowId).describe();
  assert.equal(described.typedSearchAttributes.get(runSearchAttributes.db), 'child-run');
  assert.equal(described.typedSearchAttributes.get(runSearchAttributes.phase), 'done');
  assert.equal(described.typedSearchAttributes.get(runSearchAttributes.version), '2');
  // Upserted once per workflow task, with only what changed: both migrations ran in one inline call, whose results one task took in.
  const history = await client.workflow.getHandle(result.childWorkflowId).fetchHistory();
  const upserts = (history.events ?? []).flatMap((e) => {
    const fields = e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields;
    return fields ? [Object.fromEntries(Object.entries(fields).map(([k, p]) => [k, JSON.parse(Buffer.from(p.data!).toString()) as unknown]))] : [];
  });
  const versions = upserts.flatMap((u) => (runSearchAttributes.version.name in u ? [u[runSearchAttributes.version.name]] : []));
  const phases = upserts.flatMap((u) => (runSearchAttributes.phase.name in u ? [u[runSearchAttributes.phase.name]] : []));
  assert.deepEqual(versions, ['2'], 'the version the inline call left, once (not 1 then 2)');
  assert.deepEqual(phases, ['awaiting-approval', 'locking', 'backing-up', 'applying', 'verifying', 'done'], 'each phase once, in order');
});

test('a parent reads a failed child’s outcome from its failure: compensated, with the failing migration and the restore', async (t) => {
  const { db, config } = await cliFixture(
    t,
    { 'V1__users.sql': 'CREATE TABLE users (id bigint PRIMARY KEY);', 'V2__broken.sql': 'ALTER TABLE nope ADD COLUMN x int;' },
    'child-failing',
  );
  const { result } = await runParent(t, config, { db: 'child-failing', migrationsDir: config.migrationsDir });
  const outcome = result.outcome;
  assert.ok(outcome && outcome.status === 'compensated', JSON.stringify(outcome));
  assert.equal(outcome.compensation, 'restore');
  assert.deepEqual(outcome.rolledBack, ['1']);
  assert.equal(outcome.versionAfter, null);
  assert.deepEqual(outcome.migrations.map((m) => [m.version, m.status]), [['1', 'applied'], ['2', 'failed']]);
  assert.equal(outcome.failure.type, 'MigrationFailed');
  assert.equal(outcome.failure.file, 'V2__broken.sql');
  assert.equal(outcome.failure.version, '2');
  assert.equal(outcome.failure.statement, 1);
  assert.equal(outcome.failure.sqlstate, '42P01');
  assert.deepEqual(
    result.events.sort((a, b) => a.seq - b.seq).map((e) => e.type),
    ['planned', 'locking', 'backing-up', 'applying', 'migration-done', 'applying', 'compensating', 'ended'],
  );
  assert.equal((await db.query(`SELECT to_regclass('users') IS NULL AS gone`)).rows[0]?.gone, true);
});

test('a child’s each-migration hooks reach its parent as hook events naming the version, before the version’s migration-done', async (t) => {
  const { config } = await cliFixture(
    t,
    {
      'V1__users.sql': 'CREATE TABLE users (id bigint PRIMARY KEY);',
      'V2__email.sql': 'ALTER TABLE users ADD COLUMN email text;',
      'hooks/beforeEachMigrate.sql': 'SELECT 1;',
      'hooks/afterEachMigrate__a.sql': 'SELECT 2;',
      'hooks/afterEachMigrate__b.sql': 'SELECT 3;',
    },
    'child-hooks',
  );
  const { result } = await runParent(t, config, { db: 'child-hooks', migrationsDir: config.migrationsDir });
  const events = result.events.sort((a, b) => a.seq - b.seq).filter((e) => e.type === 'hook' || e.type === 'migration-done');
  assert.deepEqual(
    events.map((e) => (e.type === 'hook' ? [e.type, e.event, e.version, e.files, e.status] : [e.type, e.version])),
    ['1', '2'].flatMap((v) => [
      ['hook', 'beforeEachMigrate', v, ['hooks/beforeEachMigrate.sql'], 'ok'],
      ['hook', 'afterEachMigrate', v, ['hooks/afterEachMigrate__a.sql', 'hooks/afterEachMigrate__b.sql'], 'ok'],
      ['migration-done', v],
    ]),
  );
});
