import assert from 'node:assert/strict';
import { test } from 'node:test';
import { withWorker, sharedTestClient } from '../helpers/temporal';
import { childSpans, fleetFixture, ledgerVersion, maxOverlap, rolloutInput, runRollout, schemaFingerprint } from '../helpers/fleet';

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
