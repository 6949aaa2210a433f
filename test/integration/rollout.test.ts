import assert from 'node:assert/strict';
import { test } from 'node:test';
import { maybeRecordHistory } from '../helpers/histories';
import { withWorker, sharedTestClient } from '../helpers/temporal';
import { childSpans, fleetFixture, ledgerVersion, maxOverlap, rolloutInput, rolloutReaches, runRollout, schemaFingerprint } from '../helpers/fleet';

const temporal = sharedTestClient();

/** A set every database can take and give back: each version has its undo. */
const set = {
  'V1__accounts.sql': 'CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL);',
  'U1__accounts.sql': 'DROP TABLE accounts;',
  'V2__email.sql': 'ALTER TABLE accounts ADD COLUMN email text;',
  'U2__email.sql': 'ALTER TABLE accounts DROP COLUMN email;',
  'V3__by_email.sql': 'CREATE INDEX accounts_email ON accounts (email);',
  'U3__by_email.sql': 'DROP INDEX accounts_email;',
};

test('20 databases: the canary first, then waves, never more than maxParallel at once, every database at the canary’s version and fingerprint', async (t) => {
  const fleet = await fleetFixture(t, 20, set, { prefix: 'all-ok' });
  // Two databases start further along: each applies its own pending migrations of the one set.
  await withWorker(fleet.config, async () => {
    const { client } = temporal;
    const { migrate } = await import('../../src/client/api');
    await migrate({ client, taskQueue: fleet.config.temporal.taskQueue }, { db: 'all-ok-07', migrationsDir: fleet.config.migrationsDir, target: '1' });
    await migrate({ client, taskQueue: fleet.config.temporal.taskQueue }, { db: 'all-ok-12', migrationsDir: fleet.config.migrationsDir, target: '2' });
    const result = await runRollout(client, fleet.config, rolloutInput(fleet, 'all-ok-1', { strategy: { maxParallel: 3, waveSize: { percent: 25 } } }));
    assert.equal(result.status, 'completed', JSON.stringify(result, null, 2));
    assert.equal(result.counts.succeeded, 20);
    assert.equal(result.waves, 4, 'one canary, then 19 databases in waves of 5');
    assert.match(result.manifestDigest ?? '', /^[0-9a-f]{64}$/);
    assert.equal(result.reference?.db, 'all-ok-01');
    assert.equal(result.reference?.version, '3');
    const byDb = new Map(result.databases.map((d) => [d.db, d]));
    assert.equal(byDb.get('all-ok-07')?.versionBefore, '1');
    assert.equal(byDb.get('all-ok-07')?.applied, 2);
    assert.equal(byDb.get('all-ok-12')?.applied, 1);
    assert.equal(byDb.get('all-ok-03')?.applied, 3);
    assert.ok(result.databases.every((d) => d.outcome === 'applied' && d.version === '3' && d.durationMs !== null));

    // Every database at the same version, with the canary's schema.
    const canary = await schemaFingerprint(fleet.dbs.get('all-ok-01')!);
    assert.equal(canary, result.reference?.fingerprint);
    for (const [alias, db] of fleet.dbs) {
      assert.equal(await ledgerVersion(db), '3', alias);
      assert.equal(await schemaFingerprint(db), canary, alias);
    }

    // The children carry the rollout's search attribute.
    const { runSearchAttributes } = await import('../../src/contracts');
    assert.equal((await client.workflow.getHandle('pgconvoy/db/all-ok-05').describe()).typedSearchAttributes.get(runSearchAttributes.rollout), 'all-ok-1');

    // From Temporal's record of the children: the canary ended before any other began, waves in order, at most 3 at once.
    const spans = await childSpans(client, fleet.aliases);
    assert.equal(spans.size, 20);
    const canarySpan = spans.get('all-ok-01')!;
    for (const [alias, span] of spans) if (alias !== 'all-ok-01') assert.ok(span.start >= canarySpan.close, `${alias} started before the canary ended`);
    assert.ok(maxOverlap(spans.values()) <= 3, `at most 3 at once, saw ${maxOverlap(spans.values())}`);
    for (const d of result.databases) {
      for (const e of result.databases) {
        if (d.wave !== null && e.wave !== null && d.wave < e.wave) assert.ok(spans.get(d.db)!.close <= spans.get(e.db)!.start, `${d.db} (wave ${d.wave}) ended before ${e.db} (wave ${e.wave}) began`);
      }
    }
  });
});

/** V2 fails on a database whose setting says so (a database-level setting: not part of the schema, so not drift). */
const failingSet = {
  ...set,
  'V2__email.sql': `DO $$ BEGIN IF current_setting('pgconvoy_test.fail', true) = 'on' THEN RAISE EXCEPTION 'this database refuses V2' USING ERRCODE = '23514'; END IF; END $$;\nALTER TABLE accounts ADD COLUMN email text;`,
};

async function makeFail(db: { name: string }, on: boolean): Promise<void> {
  const { adminQuery } = await import('../helpers/database');
  await adminQuery(on ? `ALTER DATABASE ${db.name} SET pgconvoy_test.fail = 'on'` : `ALTER DATABASE ${db.name} RESET pgconvoy_test.fail`);
}

test('a failure in wave 2 with halt: nothing starts after the threshold, the databases before stay migrated, the report names the database, file, statement and SQLSTATE; skip lets the rest run', async (t) => {
  const fleet = await fleetFixture(t, 8, failingSet, { prefix: 'halt' });
  await makeFail(fleet.dbs.get('halt-06')!, true);
  await withWorker(fleet.config, async () => {
    const { client } = temporal;
    const pgconvoy = { client, taskQueue: fleet.config.temporal.taskQueue };
    const { startRollout, skipRolloutDatabase } = await import('../../src/client/rollout');
    const { handle } = await startRollout(pgconvoy, rolloutInput(fleet, 'halt-1', { mode: 'aggressive', strategy: { waveSize: { count: 3 }, maxParallel: 2 } }));
    const halted = await rolloutReaches(client, fleet.config, 'halt-1', 'the rollout to halt', (s) => s.status === 'halted' && s.waitingFor?.startsWith('a decision') === true);
    const byDb = new Map(halted.databases.map((d) => [d.db, d]));
    const failed = byDb.get('halt-06')!;
    assert.equal(failed.state, 'failed');
    assert.equal(failed.wave, 2);
    assert.equal(failed.outcome, 'compensated', 'its own run put it back');
    assert.match(failed.failure ?? '', /V2__email\.sql, statement 1, SQLSTATE 23514: .*this database refuses V2/);
    assert.equal(byDb.get('halt-08')!.state, 'pending', 'wave 3 never started');
    for (const alias of ['halt-01', 'halt-02', 'halt-03', 'halt-04', 'halt-05']) {
      assert.equal(byDb.get(alias)!.state, 'succeeded', alias);
      assert.equal(await ledgerVersion(fleet.dbs.get(alias)!), '3', `${alias} stays migrated`);
    }
    assert.equal(await ledgerVersion(fleet.dbs.get('halt-06')!), null);
    assert.equal(await ledgerVersion(fleet.dbs.get('halt-08')!), null);
    // Nothing started once the rollout learned of the failure: in its history, no child is started after halt-06's failed run.
    const events = (await handle.fetchHistory()).events ?? [];
    const failedAt = events.findIndex((e) => e.childWorkflowExecutionFailedEventAttributes?.workflowExecution?.workflowId === 'pgconvoy/db/halt-06');
    assert.ok(failedAt > 0, 'the failed child is in the rollout’s history');
    const startedAfter = events.slice(failedAt).flatMap((e) => e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowId ?? []);
    assert.deepEqual(startedAfter, [], 'children started after the threshold');

    // Skipping the failed database lets the rest run; it is not counted as failed.
    await skipRolloutDatabase(pgconvoy, 'halt-1', { by: 'test', db: 'halt-06' });
    const result = await handle.result();
    assert.equal(result.status, 'completed', JSON.stringify(result.databases));
    assert.equal(result.counts.skipped, 1);
    assert.equal(result.counts.succeeded, 7);
    assert.equal(await ledgerVersion(fleet.dbs.get('halt-08')!), '3');
    maybeRecordHistory('rollout-halted-then-skipped', await handle.fetchHistory());
  });
});

test('a failure in wave 2 with compensate: every database the rollout changed is back at its starting version with its starting fingerprint', async (t) => {
  const fleet = await fleetFixture(t, 8, failingSet, { prefix: 'comp' });
  await makeFail(fleet.dbs.get('comp-06')!, true);
  await withWorker(fleet.config, async () => {
    const { client } = temporal;
    const { migrate } = await import('../../src/client/api');
    // One database starts at V1: compensation takes it back there, not further.
    await migrate({ client, taskQueue: fleet.config.temporal.taskQueue }, { db: 'comp-03', migrationsDir: fleet.config.migrationsDir, target: '1' });
    const before = new Map<string, string>();
    for (const [alias, db] of fleet.dbs) before.set(alias, await schemaFingerprint(db));
    const result = await runRollout(client, fleet.config, rolloutInput(fleet, 'comp-1', { mode: 'aggressive', strategy: { waveSize: { count: 3 }, maxParallel: 2, onFailure: 'compensate' } }));
    assert.equal(result.status, 'compensated', JSON.stringify(result.databases, null, 2));
    const byDb = new Map(result.databases.map((d) => [d.db, d]));
    assert.match(byDb.get('comp-06')!.failure ?? '', /V2__email\.sql, statement 1, SQLSTATE 23514/);
    const compensated = result.databases.filter((d) => d.state === 'compensated').map((d) => d.db);
    assert.ok(compensated.includes('comp-01') && compensated.includes('comp-05'), compensated.join(','));
    for (const [alias, db] of fleet.dbs) {
      assert.equal(await ledgerVersion(db), alias === 'comp-03' ? '1' : null, `${alias} at its starting version`);
      assert.equal(await schemaFingerprint(db), before.get(alias), `${alias} has its starting schema`);
    }
    // Newest completion first: in the rollout's history, the canary's revert is started last.
    const events = (await client.workflow.getHandle('pgconvoy/rollout/comp-1').fetchHistory()).events ?? [];
    const reverts = events.flatMap((e) => (e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowType?.name === 'revertDatabase' ? [e.startChildWorkflowExecutionInitiatedEventAttributes.workflowId] : []));
    assert.deepEqual([...reverts].sort(), compensated.map((db) => `pgconvoy/db/${db}`).sort());
    assert.equal(reverts.at(-1), 'pgconvoy/db/comp-01', 'the canary, changed first, is reverted last');
    maybeRecordHistory('rollout-compensated', await client.workflow.getHandle('pgconvoy/rollout/comp-1').fetchHistory());
  });
});

test('drift: a database altered by hand before the rollout is reported, with what differs, before anything changes', async (t) => {
  const fleet = await fleetFixture(t, 5, set, { prefix: 'drift' });
  await withWorker(fleet.config, async () => {
    const { client } = temporal;
    const { migrate } = await import('../../src/client/api');
    for (const alias of ['drift-01', 'drift-02']) await migrate({ client, taskQueue: fleet.config.temporal.taskQueue }, { db: alias, migrationsDir: fleet.config.migrationsDir, target: '1' });
    await fleet.dbs.get('drift-02')!.query('ALTER TABLE accounts ADD COLUMN by_hand int');
    await fleet.dbs.get('drift-05')!.query('CREATE TABLE stray (id int)');
    const result = await runRollout(client, fleet.config, rolloutInput(fleet, 'drift-1'));
    assert.equal(result.status, 'drift');
    assert.deepEqual(result.drift.map((d) => d.db).sort(), ['drift-02', 'drift-05']);
    const altered = result.drift.find((d) => d.db === 'drift-02')!;
    assert.match(altered.reason, /not the one its ledger recorded after V1/);
    assert.ok(altered.differences.some((l) => l.includes('by_hand')), altered.differences.join('\n'));
    const stray = result.drift.find((d) => d.db === 'drift-05')!;
    assert.match(stray.reason, /differs from that of 2 other databases with no version applied \(drift-03, drift-04/);
    assert.ok(stray.differences.some((l) => l.includes('stray')), stray.differences.join('\n'));
    assert.ok(result.databases.every((d) => d.state === 'not-run' || d.state === 'up-to-date'));
    assert.equal(await ledgerVersion(fleet.dbs.get('drift-01')!), '1');
    assert.equal(await ledgerVersion(fleet.dbs.get('drift-03')!), null, 'nothing changed');
    // The dry run shows the fleet: version, pending, risk.
    const preview = await runRollout(client, fleet.config, rolloutInput(fleet, 'drift-2', { mode: 'dry-run' }));
    assert.equal(preview.status, 'dry-run');
    assert.equal(preview.drift.length, 2);
    assert.deepEqual(preview.databases.map((d) => [d.db, d.versionBefore, d.pending]), [['drift-01', '1', 2], ['drift-02', '1', 2], ['drift-03', null, 3], ['drift-04', null, 3], ['drift-05', null, 3]]);
    assert.equal(await ledgerVersion(fleet.dbs.get('drift-03')!), null, 'a dry run changes nothing');
  });
});

test('--approve-waves, pause and resume: each wave after the canary waits for an approval; a paused rollout starts nothing until resumed', async (t) => {
  const fleet = await fleetFixture(t, 5, set, { prefix: 'waves' });
  await withWorker(fleet.config, async () => {
    const { client } = temporal;
    const pgconvoy = { client, taskQueue: fleet.config.temporal.taskQueue };
    const { startRollout, approveRollout, pauseRollout, resumeRollout, getRollout } = await import('../../src/client/rollout');
    const { handle } = await startRollout(pgconvoy, rolloutInput(fleet, 'waves-1', { strategy: { waveSize: { count: 2 }, approveWaves: true } }));
    const waiting = await rolloutReaches(client, fleet.config, 'waves-1', 'wave 1 to wait for its approval', (s) => s.status === 'awaiting-approval');
    assert.match(waiting.waitingFor ?? '', /wave 1 of 2/);
    assert.equal(waiting.counts.succeeded, 1, 'the canary ran');
    assert.equal(await ledgerVersion(fleet.dbs.get('waves-02')!), null);
    // Approving with nothing waiting is refused.
    await approveRollout(pgconvoy, 'waves-1', { by: 'alice' });
    await assert.rejects(approveRollout(pgconvoy, 'waves-1', { by: 'alice' }), /nothing to approve/);
    await rolloutReaches(client, fleet.config, 'waves-1', 'wave 2 to wait', (s) => s.status === 'awaiting-approval' && s.wave === 1);
    assert.equal(await ledgerVersion(fleet.dbs.get('waves-03')!), '3');
    assert.equal(await ledgerVersion(fleet.dbs.get('waves-04')!), null);

    // Paused, the approved wave does not start.
    await pauseRollout(pgconvoy, 'waves-1', { by: 'bob' });
    await approveRollout(pgconvoy, 'waves-1', { by: 'alice', note: 'wave 2' });
    const paused = await rolloutReaches(client, fleet.config, 'waves-1', 'the rollout to be paused', (s) => s.status === 'paused');
    assert.equal(paused.wave, 2);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await getRollout(pgconvoy, 'waves-1')).counts.running, 0);
    assert.equal(await ledgerVersion(fleet.dbs.get('waves-04')!), null, 'nothing starts while paused');
    await resumeRollout(pgconvoy, 'waves-1', { by: 'bob' });
    const result = await handle.result();
    assert.equal(result.status, 'completed');
    assert.equal(result.counts.succeeded, 5);
    assert.deepEqual(result.approvals.map((a) => [a.by, a.wave]), [['alice', 1], ['alice', 2]]);
    // Each wave's approval went to its databases, whose runs recorded it.
    const approvedBy = async (alias: string) => (await fleet.dbs.get(alias)!.query<{ approved_by: string | null }>(`SELECT approved_by FROM pgconvoy.history WHERE version = 3`)).rows[0]?.approved_by;
    assert.equal(await approvedBy('waves-01'), null, 'the canary ran unapproved');
    assert.equal(await approvedBy('waves-02'), 'alice');
    assert.equal(await approvedBy('waves-05'), 'alice');
    maybeRecordHistory('rollout-approved-waves-paused', await handle.fetchHistory());
  });
});

test('abort with compensate while a wave waits: the canary is reverted and nothing else ran; retry runs a failed database again', async (t) => {
  const fleet = await fleetFixture(t, 4, failingSet, { prefix: 'abort' });
  await makeFail(fleet.dbs.get('abort-02')!, true);
  await withWorker(fleet.config, async () => {
    const { client } = temporal;
    const pgconvoy = { client, taskQueue: fleet.config.temporal.taskQueue };
    const { startRollout, abortRollout, retryRolloutDatabase } = await import('../../src/client/rollout');
    const first = await startRollout(pgconvoy, rolloutInput(fleet, 'abort-1', { targets: ['abort-01', 'abort-03'], strategy: { approveWaves: true } }));
    await rolloutReaches(client, fleet.config, 'abort-1', 'wave 1 to wait', (s) => s.status === 'awaiting-approval');
    assert.equal(await ledgerVersion(fleet.dbs.get('abort-01')!), '3');
    await abortRollout(pgconvoy, 'abort-1', { by: 'carol', note: 'bad release', compensate: true });
    const aborted = await first.handle.result();
    assert.equal(aborted.status, 'compensated');
    assert.equal(aborted.abortRequested?.by, 'carol');
    assert.equal(await ledgerVersion(fleet.dbs.get('abort-01')!), null, 'the canary was reverted');
    assert.equal(aborted.databases.find((d) => d.db === 'abort-03')?.state, 'not-run');

    // A failed database, fixed and retried, completes the rollout.
    // Aborted with --compensate before anything changed: aborted, nothing to put back.
    const early = await startRollout(pgconvoy, rolloutInput(fleet, 'abort-0', { targets: ['abort-03'], strategy: { canary: { count: 0 }, approveWaves: true } }));
    await rolloutReaches(client, fleet.config, 'abort-0', 'wave 1 to wait', (s) => s.status === 'awaiting-approval' && s.wave === 0);
    await abortRollout(pgconvoy, 'abort-0', { by: 'carol', compensate: true });
    assert.equal((await early.handle.result()).status, 'aborted');

    // A failed canary stops the rollout even below the failure threshold: the waves would run the set that just failed.
    const second = await startRollout(pgconvoy, rolloutInput(fleet, 'abort-2', { targets: ['abort-02', 'abort-04'], mode: 'aggressive', strategy: { canary: { aliases: ['abort-02'] }, maxFailures: { count: 2 } } }));
    const halted = await rolloutReaches(client, fleet.config, 'abort-2', 'the canary to fail', (s) => s.status === 'halted' && s.waitingFor?.startsWith('a decision') === true);
    assert.match(halted.waitingFor ?? '', /1 database failed \(a canary\)/);
    assert.equal(halted.databases.find((d) => d.db === 'abort-04')?.state, 'pending');
    await assert.rejects(retryRolloutDatabase(pgconvoy, 'abort-2', { by: 'dave', db: 'abort-04' }), /it is pending, not failed/);
    await makeFail(fleet.dbs.get('abort-02')!, false);
    await retryRolloutDatabase(pgconvoy, 'abort-2', { by: 'dave', db: 'abort-02' });
    const result = await second.handle.result();
    assert.equal(result.status, 'completed', JSON.stringify(result.databases));
    const retried = result.databases.find((d) => d.db === 'abort-02')!;
    assert.equal(retried.attempts, 2);
    assert.equal(retried.state, 'succeeded');
    assert.equal(await ledgerVersion(fleet.dbs.get('abort-04')!), '3');
  });
});

test('a busy database waits for the run that holds it; the same deploy id attaches, another set or targets under it is refused', async (t) => {
  const fleet = await fleetFixture(t, 3, set, { prefix: 'busy' });
  await withWorker(fleet.config, async () => {
    const { client } = temporal;
    const pgconvoy = { client, taskQueue: fleet.config.temporal.taskQueue };
    const { startMigration, approve } = await import('../../src/client/api');
    const { startRollout, RolloutConflictError } = await import('../../src/client/rollout');
    // A manual `up` of busy-02 waits for its approval, holding the database's workflow id.
    const manual = await startMigration(pgconvoy, { db: 'busy-02', migrationsDir: fleet.config.migrationsDir, requireApproval: true });
    const input = rolloutInput(fleet, 'busy-1', { busyRetryMs: 300, strategy: { waveSize: { percent: 100 } } });
    const started = await startRollout(pgconvoy, input);
    assert.equal(started.attached, false);
    const busy = await rolloutReaches(client, fleet.config, 'busy-1', 'busy-02 to be busy', (s) => s.databases.some((d) => d.db === 'busy-02' && d.state === 'busy'));
    assert.match(busy.databases.find((d) => d.db === 'busy-02')!.waitingFor ?? '', /another run of the database \(pgconvoy\/db\/busy-02\)/);

    // Paused with a busy database whose retry is due: the rollout sleeps until something changes (no timer fires over and over).
    const { pauseRollout, resumeRollout } = await import('../../src/client/rollout');
    await pauseRollout(pgconvoy, 'busy-1', { by: 'test' });
    await rolloutReaches(client, fleet.config, 'busy-1', 'the pause, with nothing in flight', (s) => s.status === 'paused' && s.counts.running === 0);
    await new Promise((r) => setTimeout(r, 500)); // the last run's close reaches the history
    const eventsNow = async () => (await started.handle.fetchHistory()).events?.length ?? 0;
    const before = await eventsNow();
    await new Promise((r) => setTimeout(r, 1500));
    const grown = ((await started.handle.fetchHistory()).events ?? []).slice(before);
    assert.ok(grown.length <= 2, `the paused rollout's history grew by ${grown.length} events: ${grown.map((e) => String(e.eventType)).join(', ')}`);
    await resumeRollout(pgconvoy, 'busy-1', { by: 'test' });

    // The same deploy again attaches; other targets or another set under the same id are refused.
    const again = await startRollout(pgconvoy, input);
    assert.equal(again.attached, true);
    assert.equal(again.handle.workflowId, started.handle.workflowId);
    await assert.rejects(startRollout(pgconvoy, { ...input, targets: ['busy-01'] }), (e: unknown) => e instanceof RolloutConflictError && /another targets: targets \["busy-01","busy-02","busy-03"\] there, \["busy-01"\] here/.test(e.message));
    await assert.rejects(startRollout(pgconvoy, { ...input, expect: { manifestDigest: 'f'.repeat(64) } }), (e: unknown) => e instanceof RolloutConflictError && /manifestDigest/.test(e.message));

    await approve(pgconvoy, 'busy-02', { by: 'test' });
    await manual.result();
    const result = await started.handle.result();
    assert.equal(result.status, 'completed', JSON.stringify(result.databases));
    const waited = result.databases.find((d) => d.db === 'busy-02')!;
    assert.equal(waited.outcome, 'up-to-date', 'the manual run applied it; the rollout found nothing left');
    assert.ok(waited.attempts >= 2);
    // Ended, the deploy id still finds it.
    const ended = await startRollout(pgconvoy, input);
    assert.equal(ended.attached, true);
    assert.equal((await ended.handle.result()).status, 'completed');
  });
});

test('continue-as-new with a low threshold over 30 databases: completes with its state intact', async (t) => {
  const fleet = await fleetFixture(t, 30, set, { prefix: 'can' });
  await withWorker(fleet.config, async () => {
    const { client } = temporal;
    const result = await runRollout(client, fleet.config, rolloutInput(fleet, 'can-1', { historyLimit: 150, strategy: { waveSize: { count: 10 }, maxParallel: 5 } }));
    assert.equal(result.status, 'completed', JSON.stringify(result.counts));
    assert.ok(result.continuedAsNew >= 2, `continued as new ${result.continuedAsNew} times`);
    assert.equal(result.counts.succeeded, 30);
    assert.equal(result.reference?.db, 'can-01');
    assert.ok(result.databases.every((d) => d.attempts === 1 && d.version === '3' && d.applied === 3));
    for (const [alias, db] of fleet.dbs) assert.equal(await ledgerVersion(db), '3', alias);
    // Every run of the rollout's chain stayed under the limit's order of magnitude.
    const runs = client.workflow.list({ query: `WorkflowId = 'pgconvoy/rollout/can-1'` });
    let count = 0;
    for await (const run of runs) {
      const history = await client.workflow.getHandle(run.workflowId, run.runId).fetchHistory();
      assert.ok((history.events?.length ?? 0) < 600, `a run of ${history.events?.length} events`);
      count += 1;
    }
    assert.equal(count, result.continuedAsNew + 1);
  });
});

test('convergence: a database whose schema ends unlike the canary’s counts as diverged, with the difference; so does one with nothing to apply', async (t) => {
  const fleet = await fleetFixture(t, 4, set, { prefix: 'conv' });
  await withWorker(fleet.config, async () => {
    const { client } = temporal;
    const { migrate } = await import('../../src/client/api');
    // conv-03 has an extra table before the rollout (drift, let through with warn); conv-04 had one before it was migrated, so its ledger agrees with it.
    await fleet.dbs.get('conv-03')!.query('CREATE TABLE extra_03 (id int)');
    await fleet.dbs.get('conv-04')!.query('CREATE TABLE extra_04 (id int)');
    await migrate({ client, taskQueue: fleet.config.temporal.taskQueue }, { db: 'conv-04', migrationsDir: fleet.config.migrationsDir });
    const result = await runRollout(client, fleet.config, rolloutInput(fleet, 'conv-1', { onDrift: 'warn', decisionTimeoutMs: 1000, strategy: { maxFailures: { count: 5 }, waveSize: { percent: 100 } } }));
    assert.equal(result.status, 'failed', 'failed databases nobody decided on');
    assert.deepEqual(result.drift.map((d) => d.db), ['conv-03']);
    const byDb = new Map(result.databases.map((d) => [d.db, d]));
    assert.equal(byDb.get('conv-02')!.state, 'succeeded');
    assert.equal(byDb.get('conv-03')!.state, 'diverged');
    assert.match(byDb.get('conv-03')!.failure ?? '', /its schema differs from conv-01's at V3 \(\d+ differences?\): .*extra_03/);
    assert.equal(byDb.get('conv-03')!.version, '3', 'migrated, but not to the canary’s schema');
    assert.equal(byDb.get('conv-04')!.state, 'diverged');
    assert.match(byDb.get('conv-04')!.failure ?? '', /nothing to apply, but its schema differs from conv-01's at V3 .*extra_04/);
  });
});

test('a high-risk migration: the dry run says which databases would wait and why; the rollout waits for one approval, passed to every database', async (t) => {
  const fleet = await fleetFixture(t, 3, { 'V1__accounts.sql': 'CREATE TABLE accounts (id bigint PRIMARY KEY, legacy text);', 'V2__drop_legacy.sql': 'ALTER TABLE accounts DROP COLUMN legacy;' }, { prefix: 'risky' });
  await withWorker(fleet.config, async () => {
    const { client } = temporal;
    const pgconvoy = { client, taskQueue: fleet.config.temporal.taskQueue };
    const { migrate } = await import('../../src/client/api');
    const { startRollout, approveRollout } = await import('../../src/client/rollout');
    for (const alias of fleet.aliases) await migrate(pgconvoy, { db: alias, migrationsDir: fleet.config.migrationsDir, target: '1' });
    const preview = await runRollout(client, fleet.config, rolloutInput(fleet, 'risky-0', { mode: 'dry-run' }));
    assert.equal(preview.status, 'dry-run');
    for (const d of preview.databases) {
      assert.equal(d.risk, 'high');
      assert.equal(d.wouldWaitForApproval, true);
      assert.match(d.findings.join('\n'), /V2 drop-column \(high\) at line 1/);
    }
    const { handle } = await startRollout(pgconvoy, rolloutInput(fleet, 'risky-1'));
    const waiting = await rolloutReaches(client, fleet.config, 'risky-1', 'the rollout to wait for an approval', (s) => s.status === 'awaiting-approval');
    assert.match(waiting.waitingFor ?? '', /3 databases \(risky-01, risky-02, risky-03\): auto mode runs only low and medium risk migrations without an approval:\nV2 \(drop legacy\) is high risk: drop-column \(high\) at line 1 on accounts/);
    assert.equal(waiting.counts.running, 0, 'nothing starts before the approval');
    await approveRollout(pgconvoy, 'risky-1', { by: 'erin', note: 'legacy is unused since 2026.11' });
    const result = await handle.result();
    assert.equal(result.status, 'completed', JSON.stringify(result.databases));
    for (const [alias, db] of fleet.dbs) {
      const row = (await db.query<{ approved_by: string; approval_note: string }>(`SELECT approved_by, approval_note FROM pgconvoy.history WHERE version = 2 AND status = 'applied'`)).rows[0];
      assert.deepEqual(row, { approved_by: 'erin', approval_note: 'legacy is unused since 2026.11' }, `${alias}: the rollout's approval, recorded by its own run`);
    }
  });
});

test('compensate reverts a database that migrated but diverged from the canary too', async (t) => {
  const fleet = await fleetFixture(t, 3, set, { prefix: 'divcomp' });
  await fleet.dbs.get('divcomp-02')!.query('CREATE TABLE extra (id int)');
  await withWorker(fleet.config, async () => {
    const { client } = temporal;
    const before = await schemaFingerprint(fleet.dbs.get('divcomp-02')!);
    const result = await runRollout(client, fleet.config, rolloutInput(fleet, 'divcomp-1', { onDrift: 'warn', strategy: { waveSize: { count: 1 }, maxParallel: 1, onFailure: 'compensate' } }));
    assert.equal(result.status, 'compensated', JSON.stringify(result.databases, null, 2));
    const byDb = new Map(result.databases.map((d) => [d.db, d]));
    assert.match(byDb.get('divcomp-02')!.failure ?? '', /its schema differs from divcomp-01's at V3/);
    assert.equal(byDb.get('divcomp-02')!.state, 'compensated');
    assert.equal(byDb.get('divcomp-03')!.state, 'not-run');
    for (const alias of ['divcomp-01', 'divcomp-02']) assert.equal(await ledgerVersion(fleet.dbs.get(alias)!), null, `${alias} is back at its starting version`);
    assert.equal(await schemaFingerprint(fleet.dbs.get('divcomp-02')!), before, 'with its starting schema, extra table included');
  });
});

test('abort while the rollout waits for its runs in flight: they are cancelled between two migrations at once, not left to finish', async (t) => {
  const slowOrFailing = {
    'V1__slow.sql': `CREATE TABLE jobs (id int);\nSELECT pg_sleep(CASE WHEN current_setting('pgconvoy_test.slow', true) = 'on' THEN 2 ELSE 0 END) /* abort in flight */;`,
    'V2__fails.sql': `DO $$ BEGIN IF current_setting('pgconvoy_test.fail', true) = 'on' THEN RAISE EXCEPTION 'this database refuses V2' USING ERRCODE = '23514'; END IF; END $$;`,
  };
  const fleet = await fleetFixture(t, 2, slowOrFailing, { prefix: 'inflight' });
  const { adminQuery } = await import('../helpers/database');
  await makeFail(fleet.dbs.get('inflight-01')!, true);
  await adminQuery(`ALTER DATABASE ${fleet.dbs.get('inflight-02')!.name} SET pgconvoy_test.slow = 'on'`);
  await withWorker(fleet.config, async () => {
    const { client } = temporal;
    const pgconvoy = { client, taskQueue: fleet.config.temporal.taskQueue };
    const { startRollout, abortRollout } = await import('../../src/client/rollout');
    const { handle } = await startRollout(pgconvoy, rolloutInput(fleet, 'inflight-1', { mode: 'aggressive', strategy: { canary: { count: 0 }, waveSize: { percent: 100 }, maxParallel: 2 } }));
    await rolloutReaches(client, fleet.config, 'inflight-1', 'the threshold with a run in flight', (s) => s.status === 'halted' && s.waitingFor === 'the 1 run in flight');
    await abortRollout(pgconvoy, 'inflight-1', { by: 'frank' });
    const result = await handle.result();
    assert.equal(result.status, 'aborted');
    const slow = result.databases.find((d) => d.db === 'inflight-02')!;
    assert.equal(slow.outcome, 'cancelled', JSON.stringify(slow));
    assert.equal(await ledgerVersion(fleet.dbs.get('inflight-02')!), '1', 'stopped after the migration it was in');
  });
});

test('retry of a database that had nothing to apply and diverged runs it again (its check fails again); skipping it completes the rollout', async (t) => {
  const fleet = await fleetFixture(t, 2, set, { prefix: 'reconv' });
  await withWorker(fleet.config, async () => {
    const { client } = temporal;
    const pgconvoy = { client, taskQueue: fleet.config.temporal.taskQueue };
    const { migrate } = await import('../../src/client/api');
    const { startRollout, retryRolloutDatabase, skipRolloutDatabase } = await import('../../src/client/rollout');
    await fleet.dbs.get('reconv-02')!.query('CREATE TABLE extra (id int)');
    await migrate(pgconvoy, { db: 'reconv-02', migrationsDir: fleet.config.migrationsDir });
    const { handle } = await startRollout(pgconvoy, rolloutInput(fleet, 'reconv-1'));
    const halted = await rolloutReaches(client, fleet.config, 'reconv-1', 'a decision on the diverged database', (s) => s.status === 'halted' && s.waitingFor?.startsWith('a decision') === true);
    assert.equal(halted.databases.find((d) => d.db === 'reconv-02')!.state, 'diverged');
    await retryRolloutDatabase(pgconvoy, 'reconv-1', { by: 'test', db: 'reconv-02' });
    const again = await rolloutReaches(client, fleet.config, 'reconv-1', 'the retried database to diverge again', (s) => s.status === 'halted' && s.databases.some((d) => d.db === 'reconv-02' && d.attempts === 1 && d.state === 'diverged'));
    assert.equal(again.databases.find((d) => d.db === 'reconv-02')!.outcome, 'up-to-date');
    await skipRolloutDatabase(pgconvoy, 'reconv-1', { by: 'test', db: 'reconv-02' });
    const result = await handle.result();
    assert.equal(result.status, 'completed');
    assert.deepEqual(result.databases.map((d) => [d.db, d.state]), [['reconv-01', 'succeeded'], ['reconv-02', 'skipped']]);
  });
});

test('a target the workers cannot survey refuses the rollout, and the problem says why (not "Activity task failed"); nothing changes', async (t) => {
  const fleet = await fleetFixture(t, 2, set, { prefix: 'unsurveyed' });
  const missing = fleet.dbs.get('unsurveyed-02')!.url.replace(/\/[^/]*$/, '/pgconvoy_no_such_database');
  const config = { ...fleet.config, databases: { ...fleet.config.databases, 'unsurveyed-02': missing } };
  await withWorker(config, async () => {
    const result = await runRollout(temporal.client, config, rolloutInput(fleet, 'unsurveyed-1'));
    assert.equal(result.status, 'refused');
    assert.equal(result.problems.length, 1, result.problems.join('\n'));
    assert.match(result.problems[0]!, /^unsurveyed-02: cannot connect to database "unsurveyed-02": database "pgconvoy_no_such_database" does not exist \(SQLSTATE 3D000\)/);
    assert.equal(await ledgerVersion(fleet.dbs.get('unsurveyed-01')!), null, 'nothing ran on the database that could be surveyed');
  });
});
