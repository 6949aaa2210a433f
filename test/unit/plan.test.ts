import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ManifestEntry } from '../../src/core/migration-set';
import { integrityProblems, planMigrations, type AppliedEntry } from '../../src/core/plan';

const entry = (version: string, checksum = `c${version}`): ManifestEntry => ({ version, description: `m${version}`, checksum, undoChecksum: null });
const applied = (version: string, checksum = `c${version}`): AppliedEntry => ({
  version,
  description: `m${version}`,
  checksum,
  status: 'applied',
  finishedAt: '2026-01-01T00:00:00.000Z',
});

test('pending are the versions not in the ledger, in order', () => {
  const plan = planMigrations([entry('1'), entry('2'), entry('10')], [applied('1')]);
  assert.deepEqual(plan.pending.map((e) => e.version), ['2', '10']);
  assert.deepEqual(plan.applied.map((e) => e.version), ['1']);
  assert.deepEqual(integrityProblems(plan, () => undefined), []);
});

test('a fully applied set has nothing pending', () => {
  const plan = planMigrations([entry('1'), entry('2')], [applied('2'), applied('1')]);
  assert.deepEqual(plan.pending, []);
  assert.deepEqual(plan.applied.map((e) => e.version), ['1', '2']);
});

test('target stops at a version', () => {
  const plan = planMigrations([entry('1'), entry('2'), entry('3')], [], { target: '2' });
  assert.deepEqual(plan.pending.map((e) => e.version), ['1', '2']);
});

test('divergent, missing and out-of-order entries are found and named', () => {
  const plan = planMigrations([entry('1', 'edited'), entry('2'), entry('4')], [applied('1'), applied('3'), applied('5')]);
  assert.deepEqual(plan.divergent.map((d) => d.version), ['1']);
  assert.deepEqual(plan.missing.map((m) => m.version), ['3', '5']);
  assert.deepEqual(plan.outOfOrder.map((o) => o.version), ['2', '4']);
  const problems = integrityProblems(plan, (v) => `V${v}__m${v}.sql`);
  assert.equal(problems.length, 5);
  assert.match(problems[0] ?? '', /^version 1 \(V1__m1\.sql\) was applied with checksum c1 but the file now has edited/);
  assert.match(problems[1] ?? '', /^version 3 \(m3\) is applied in the database but has no file on disk/);
  assert.match(problems[3] ?? '', /^version 2 \(V2__m2\.sql\) is pending but lower than the highest applied version/);
});
