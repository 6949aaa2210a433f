import assert from 'node:assert/strict';
import { test } from 'node:test';
import { duration, parseAmount } from '../../src/client/commands/rollout';
import { selectTargets } from '../../src/client/rollout';
import type { Config } from '../../src/config/config';
import type { DatabaseSurvey, RolloutStrategy } from '../../src/contracts';
import { amountOf, assignWaves, findDrift } from '../../src/workflows/rollout/waves';

const strategy: RolloutStrategy = { canary: { count: 1 }, bakeMs: 0, waveSize: { percent: 25 }, maxParallel: 4, maxFailures: { count: 1 }, onFailure: 'halt', approveWaves: false };

test('amounts: a percentage of the targets rounds up and is at least one', () => {
  assert.equal(amountOf({ count: 3 }, 100), 3);
  assert.equal(amountOf({ percent: 25 }, 10), 3);
  assert.equal(amountOf({ percent: 1 }, 10), 1);
  assert.equal(amountOf({ percent: 100 }, 7), 7);
  assert.deepEqual(parseAmount('--wave-size', '25%'), { percent: 25 });
  assert.deepEqual(parseAmount('--wave-size', '5'), { count: 5 });
  for (const bad of ['0', '0%', '101%', '-1', 'x', '2.5']) assert.throws(() => parseAmount('--wave-size', bad), /--wave-size must be/, bad);
});

test('durations: 5m and 5min are five minutes; 0 only where allowed', () => {
  assert.equal(duration('--bake', '5m', true), 300_000);
  assert.equal(duration('--bake', '5min', true), 300_000);
  assert.equal(duration('--bake', '0', true), 0);
  assert.equal(duration('--decision-timeout', '24h'), 86_400_000);
  assert.throws(() => duration('--decision-timeout', '0'), /--decision-timeout needs a duration/);
  assert.throws(() => duration('--bake', '5 parsecs', true), /--bake needs a duration/);
});

test('waves: canaries first (the first with work, or the named ones), then waves in target order; databases with nothing to do take none', () => {
  const targets = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];
  const work = (db: string) => db !== 'b';
  const waves = assignWaves(targets, work, { ...strategy, waveSize: { count: 2 } });
  assert.deepEqual([...waves], [['a', 0], ['c', 1], ['d', 1], ['e', 2], ['f', 2], ['g', 3]]);
  const named = assignWaves(targets, work, { ...strategy, canary: { aliases: ['f', 'b'] }, waveSize: { percent: 50 } });
  assert.deepEqual([...named], [['f', 0], ['a', 1], ['c', 1], ['d', 1], ['e', 1], ['g', 2]]);
  assert.deepEqual([...assignWaves(targets, work, { ...strategy, canary: { count: 0 }, waveSize: { percent: 100 } })].map(([, w]) => w), [1, 1, 1, 1, 1, 1]);
});

const survey = (db: string, version: string | null, fingerprint: string, recorded: string | null = fingerprint): DatabaseSurvey => ({ db, manifestDigest: 'd', version, pending: [], fingerprint, recordedFingerprint: version === null ? null : recorded, problems: [] });

test('drift: a schema unlike its ledger’s record, or unlike most databases at its version; none when they agree', () => {
  assert.deepEqual(findDrift([survey('a', '1', 'x'), survey('b', '1', 'x'), survey('c', null, 'e'), survey('d', null, 'e')]), []);
  const drift = findDrift([survey('a', '1', 'x'), survey('b', '1', 'y', 'x'), survey('c', null, 'e'), survey('d', null, 'e'), survey('e', null, 'z')]);
  assert.deepEqual(drift.map((d) => [d.db, d.compareWith]), [['b', 'a'], ['e', 'c']]);
  assert.match(drift[0]!.reason, /not the one its ledger recorded after V1/);
  assert.match(drift[1]!.reason, /differs from that of 2 other databases with no version applied \(c, d: e\)/);
  // A tie goes to the first in target order.
  assert.deepEqual(findDrift([survey('a', null, 'p'), survey('b', null, 'q')]).map((d) => d.db), ['b']);
});

test('targets: listed aliases must be configured; a selector matches every pair; all is every database', () => {
  const config = {
    databases: { 'eu-1': 'postgres://x/1', 'eu-2': 'postgres://x/2', 'us-1': 'postgres://x/3' },
    labels: { 'eu-1': { region: 'eu', tier: 'prod' }, 'eu-2': { region: 'eu', tier: 'dev' }, 'us-1': { region: 'us', tier: 'prod' } },
  } as unknown as Config;
  assert.deepEqual(selectTargets(config, { select: 'region=eu' }), { targets: ['eu-1', 'eu-2'], selector: 'region=eu' });
  assert.deepEqual(selectTargets(config, { select: 'tier=prod, region=eu' }).targets, ['eu-1']);
  assert.deepEqual(selectTargets(config, { all: true }).targets, ['eu-1', 'eu-2', 'us-1']);
  assert.deepEqual(selectTargets(config, { dbs: ['us-1', 'eu-1'] }).targets, ['us-1', 'eu-1']);
  assert.throws(() => selectTargets(config, { dbs: ['eu-1', 'nope'] }), /unknown database alias: nope/);
  assert.throws(() => selectTargets(config, { select: 'region' }), /invalid selector "region"/);
  assert.throws(() => selectTargets(config, { select: 'region=asia' }), /no configured database has the labels region=asia/);
});
