import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { RolloutStatus } from '../../src/contracts';
import { fleetFixture, ledgerVersion } from '../helpers/fleet';
import { runInProcess } from '../helpers/in-process-cli';
import { services } from '../helpers/services';
import { withWorker } from '../helpers/temporal';

const set = {
  'V1__accounts.sql': 'CREATE TABLE accounts (id bigint PRIMARY KEY);',
  'V2__email.sql': 'ALTER TABLE accounts ADD COLUMN email text;',
};

test('pgconvoy rollout: start by label selector, follow to the end, status as JSON, attach to the same deploy, refusals and exit codes', async (t) => {
  const fleet = await fleetFixture(t, 4, set, { prefix: 'cli', labels: (i) => ({ tier: i < 3 ? 'prod' : 'dev', region: 'eu' }) });
  const configFile = join(fleet.set.dir, 'rollout.config.json');
  writeFileSync(configFile, JSON.stringify({ migrations: fleet.set.dir, databases: Object.fromEntries(fleet.aliases.map((a) => [a, { url: fleet.dbs.get(a)!.url, labels: fleet.config.labels[a] }])) }));
  const env = { ...services.temporalEnv, PGCONVOY_TASK_QUEUE: fleet.config.temporal.taskQueue, PGCONVOY_LOG_LEVEL: 'silent' };
  const cli = (...args: string[]) => runInProcess(['--config', configFile, ...args], env, fleet.set.dir);
  await withWorker(fleet.config, async () => {
    const started = await cli('rollout', 'start', '--deploy-id', 'cli-1', '--select', 'tier=prod,region=eu', '--max-parallel', '2', '--wave-size', '50%');
    assert.equal(started.code, 0, started.stderr + started.stdout);
    assert.match(started.stderr, /started rollout cli-1 \(workflow pgconvoy\/rollout\/cli-1\) of 3 databases/);
    assert.match(started.stderr, /cli-01: succeeded \(applied\) at V2 in \d+\.\d s/);
    assert.match(started.stdout, /rollout cli-1: completed · wave 1\/1 · 3\/3 done/);
    assert.match(started.stdout, /WAVE\s+DATABASE\s+STATE\s+PHASE\s+VERSION\s+DURATION\s+RISK\s+OUTCOME/);
    assert.match(started.stdout, /canary\s+cli-01\s+succeeded\s+- -> 2\s+\d+\.\d s\s+low\s+applied/);
    assert.doesNotMatch(started.stdout, /cli-04/);
    assert.equal(await ledgerVersion(fleet.dbs.get('cli-04')!), null, 'the dev database is not a target');

    const status = await cli('--json', 'rollout', 'status', 'cli-1');
    assert.equal(status.code, 0);
    const parsed = JSON.parse(status.stdout) as RolloutStatus;
    assert.equal(parsed.status, 'completed');
    assert.equal(parsed.selector, 'tier=prod,region=eu');
    assert.deepEqual(parsed.databases.map((d) => [d.db, d.state, d.version]), [['cli-01', 'succeeded', '2'], ['cli-02', 'succeeded', '2'], ['cli-03', 'succeeded', '2']]);

    // The same deploy again attaches to it (ended: its result); a message to an ended rollout does not apply.
    const again = await cli('rollout', 'start', '--deploy-id', 'cli-1', '--select', 'tier=prod,region=eu');
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /attached to rollout cli-1/);
    const other = await cli('rollout', 'start', '--deploy-id', 'cli-1', '--all');
    assert.equal(other.code, 2, other.stderr);
    assert.match(other.stderr, /\[RunConflict\] deploy "cli-1" is already a rollout .* of another targets/);
    const pause = await cli('rollout', 'pause', 'cli-1');
    assert.equal(pause.code, 6, pause.stderr);
    assert.match(pause.stderr, /rollout "cli-1": the rollout has ended \(completed\)/);

    // Bad input: nothing starts.
    const unknown = await cli('rollout', 'start', '--deploy-id', 'cli-2', '--db', 'cli-01,nope');
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown database alias: nope/);
    const none = await cli('rollout', 'start', '--deploy-id', 'cli-2', '--select', 'tier=staging');
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no configured database has the labels tier=staging/);
    const badWave = await cli('rollout', 'start', '--deploy-id', 'cli-2', '--all', '--wave-size', '0%');
    assert.equal(badWave.code, 2);
    assert.match(badWave.stderr, /--wave-size must be a percentage from 1% to 100%/);

    // A rollout whose workflow is terminated did not end by itself: status says so, exit 1.
    const waiting = await cli('rollout', 'start', '--deploy-id', 'cli-4', '--db', 'cli-04', '--require-approval', '--detach');
    assert.equal(waiting.code, 0, waiting.stderr);
    const { testClient } = await import('../helpers/temporal');
    const { client, close } = await testClient();
    try {
      await client.workflow.getHandle('pgconvoy/rollout/cli-4').terminate('test');
    } finally {
      await close();
    }
    const terminated = await cli('rollout', 'status', 'cli-4');
    assert.equal(terminated.code, 1, terminated.stderr);
    assert.match(terminated.stderr, /\[RolloutFailed\] rollout "cli-4" did not end by itself: its workflow is terminated/);

    // A dry run of the whole fleet: version and pending per database, nothing changed.
    const preview = await cli('rollout', 'start', '--deploy-id', 'cli-3', '--all', '--mode', 'dry-run');
    assert.equal(preview.code, 0, preview.stderr);
    assert.match(preview.stdout, /rollout cli-3: dry-run/);
    assert.match(preview.stdout, /cli-04\s+not-run\s+-\s+low/);
    assert.equal(await ledgerVersion(fleet.dbs.get('cli-04')!), null);
  });
});
