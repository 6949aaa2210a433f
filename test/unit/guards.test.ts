import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { guardsOf, loadConfig } from '../../src/config/config';
import { describeSample, type WatchSample } from '../../src/contracts';
import { crossedGuards } from '../../src/runs/watch';
import { writeMigrations } from '../helpers/migrations';

const sample = (over: Partial<WatchSample> = {}): WatchSample => ({
  at: 0,
  blocked: { count: 0, longestWaitMs: 0, pids: [] },
  longestLockWaitMs: 0,
  longQueries: [],
  databaseBytes: 10 * 1024 * 1024,
  growthBytes: 0,
  walBytes: 0,
  replicas: [],
  ...over,
});

test('guards: the config’s limits, then each matching `when` by labels in order, then the database’s own; an alias only in the environment gets the defaults; none by default', () => {
  const dir = writeMigrations({});
  try {
    const file = join(dir.dir, 'pgconvoy.json');
    writeFileSync(
      file,
      JSON.stringify({
        databases: {
          orders: { url: 'postgres://o', labels: { tier: 'gold', region: 'eu' }, guards: { maxBlockedMs: 500 } },
          search: { url: 'postgres://s', labels: { tier: 'bronze' } },
        },
        watch: { intervalMs: 1000 },
        guards: {
          maxReplicationLagMs: 30_000,
          when: [
            { labels: { tier: 'gold' }, maxReplicationLagMs: 5_000, maxBlockedSessions: 2, maxBlockedMs: 2_000 },
            { labels: { tier: 'gold', region: 'eu' }, guardTimeoutMs: 60_000 },
          ],
        },
      }),
    );
    const config = loadConfig({ cwd: dir.dir, configFile: file, env: { PGCONVOY_DB_EXTRA: 'postgres://e' } });
    assert.deepEqual(guardsOf(config, 'orders'), { maxReplicationLagMs: 5_000, maxBlockedSessions: 2, maxBlockedMs: 500, guardTimeoutMs: 60_000 });
    assert.deepEqual(guardsOf(config, 'search'), { maxReplicationLagMs: 30_000, guardTimeoutMs: 600_000 });
    assert.deepEqual(guardsOf(config, 'extra'), { maxReplicationLagMs: 30_000, guardTimeoutMs: 600_000 });
    assert.deepEqual(config.watch, { intervalMs: 1000, longQueryMs: 5000 });
    writeFileSync(file, JSON.stringify({ databases: { a: { url: 'postgres://a', guards: { maxBlockedSesions: 1 } } } }));
    assert.throws(() => loadConfig({ cwd: dir.dir, configFile: file, env: {} }), /databases\.a\.guards: Unrecognized key: "maxBlockedSesions"/);
    writeFileSync(file, JSON.stringify({}));
    const plain = loadConfig({ cwd: dir.dir, configFile: file, env: { PGCONVOY_DB_A: 'postgres://a' } });
    assert.deepEqual(guardsOf(plain, 'a'), { guardTimeoutMs: 600_000 });
    assert.deepEqual(plain.watch, { intervalMs: 5000, longQueryMs: 5000 });
  } finally {
    dir.remove();
  }
});

test('guards: a sample is past a limit only above it; replication lag is the worst standby’s, named; growth without a baseline is none', () => {
  const guards = { maxReplicationLagMs: 1_000, maxBlockedSessions: 1, maxBlockedMs: 2_000, maxDatabaseGrowthBytes: 1_000_000, guardTimeoutMs: 60_000 };
  assert.deepEqual(crossedGuards(sample({ blocked: { count: 1, longestWaitMs: 2_000, pids: [7] }, growthBytes: 1_000_000 }), guards), [], 'at a limit is within it');
  const replicas = [
    { name: 'a', state: 'streaming', lagBytes: 10, replayLagMs: 900 },
    { name: 'b', state: 'streaming', lagBytes: 99, replayLagMs: 4_000 },
    { name: 'c', state: 'catchup', lagBytes: 5, replayLagMs: null },
  ];
  assert.deepEqual(crossedGuards(sample({ replicas, blocked: { count: 3, longestWaitMs: 2_500, pids: [1, 2, 3] }, growthBytes: 2_000_000 }), guards), [
    { guard: 'maxReplicationLagMs', value: 4_000, limit: 1_000, replica: 'b' },
    { guard: 'maxBlockedSessions', value: 3, limit: 1 },
    { guard: 'maxBlockedMs', value: 2_500, limit: 2_000 },
    { guard: 'maxDatabaseGrowthBytes', value: 2_000_000, limit: 1_000_000 },
  ]);
  assert.deepEqual(crossedGuards(sample({ growthBytes: null, replicas }), { guardTimeoutMs: 1 }), [], 'no limits, nothing crossed');
  assert.deepEqual(crossedGuards(sample({ growthBytes: null }), guards), []);
});

test('the watch in one line: blocked sessions, lock wait, size and growth, WAL, each standby’s lag, long queries', () => {
  assert.equal(
    describeSample(sample({ blocked: { count: 2, longestWaitMs: 3_100, pids: [1, 2] }, longestLockWaitMs: 3_100, growthBytes: 1024 * 1024, walBytes: 5 * 1024 * 1024, replicas: [{ name: 'standby1', state: 'streaming', lagBytes: 2 * 1024 * 1024, replayLagMs: 5_200 }], longQueries: [{ pid: 1, durationMs: 9_000, waiting: true, query: 'SELECT 1' }] })),
    'blocked 2 (longest 3.1 s), lock wait 3.1 s, size 10.0 MB (+1.0 MB), WAL 5.0 MB, standby1 lag 5.2 s (2.0 MB), 1 long query',
  );
  assert.equal(describeSample(sample({ growthBytes: null, walBytes: null })), 'blocked 0, lock wait 0.0 s, size 10.0 MB');
});
