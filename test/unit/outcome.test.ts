import assert from 'node:assert/strict';
import { test } from 'node:test';
import { outcomeOf, outcomeStatuses, type RunOutcome } from '../../src/contracts';
import { ExitCode } from '../../src/client/exit-codes';
import { exitCodeFor, renderOutcome } from '../../src/client/outcome';

const base = {
  db: 'app',
  workflowId: 'pgconvoy/db/app',
  runId: 'run-1',
  manifestDigest: 'a'.repeat(64),
  versionBefore: '1',
  versionAfter: '2',
  migrations: [
    { version: '2', description: 'add users', status: 'applied' as const, durationMs: 12 },
    { version: '3', description: 'add orders', status: 'not-run' as const },
  ],
  safeguard: { backup: { key: 'app/backup-1.dump' }, fingerprintBefore: 'f'.repeat(64) },
  version: '2',
  applied: [{ version: '2', description: 'add users', status: 'applied' as const, durationMs: 12 }],
};
const migrationFailure = {
  type: 'MigrationFailed',
  message: 'V3__add_orders.sql (version 3) failed at statement 1 of 1, line 1, column 14: SQLSTATE 42P01: relation "nope" does not exist',
  file: 'V3__add_orders.sql',
  version: '3',
  statement: 1,
  statementsDone: 0,
  statementsTotal: 1,
  mode: 'transaction',
  line: 1,
  column: 14,
  sqlstate: '42P01',
  detail: null,
  hint: null,
};

/** One of each, with what it must exit with and say. */
const cases: Array<{ outcome: RunOutcome; exit: ExitCode; stream: 'stdout' | 'stderr'; says: RegExp }> = [
  { outcome: { ...base, versionAfter: '1', version: '1', migrations: [], applied: [], status: 'up-to-date' }, exit: ExitCode.ok, stream: 'stdout', says: /nothing to apply: database "app" is up to date \(version 1\)/ },
  {
    outcome: { ...base, versionAfter: '1', version: '1', applied: [], status: 'dry-run', pending: [{ version: '2', description: 'add users', checksum: 'c', undoChecksum: null, mode: 'transaction', statements: 1 }] },
    exit: ExitCode.ok,
    stream: 'stdout',
    says: /dry run: database "app" is at version 1; 1 would be applied, nothing was changed/,
  },
  { outcome: { ...base, status: 'applied', backup: { key: 'app/backup-1.dump' } }, exit: ExitCode.ok, stream: 'stdout', says: /1 migration applied; database "app" is at version 2/ },
  { outcome: { ...base, status: 'cancelled', cancelledBy: 'ops', reason: 'freeze' }, exit: ExitCode.cancelled, stream: 'stderr', says: /cancelled by ops \(freeze\): V2 applied before it stopped/ },
  { outcome: { ...base, status: 'halted', failure: migrationFailure }, exit: ExitCode.rolledBack, stream: 'stderr', says: /\[MigrationFailed\].*\n[\s\S]*state: rolled back: nothing of V3__add_orders.sql remains/ },
  {
    outcome: { ...base, versionAfter: '1', version: '1', status: 'compensated', failure: { ...migrationFailure, message: `${migrationFailure.message}\ncompensated: restored` }, compensation: 'restore', rolledBack: ['2'] },
    exit: ExitCode.rolledBack,
    stream: 'stderr',
    says: /state: the whole run was rolled back \(restore from the verified backup\)/,
  },
  {
    outcome: { ...base, status: 'compensation-failed', failure: { type: 'CompensationFailed', message: 'boom\nCOMPENSATION FAILED (restore): gone' }, compensation: 'restore' },
    exit: ExitCode.failed,
    stream: 'stderr',
    says: /\[CompensationFailed\] boom\nCOMPENSATION FAILED \(restore\): gone/,
  },
  {
    outcome: { ...base, versionAfter: '1', version: '1', applied: [], status: 'approval-timed-out', failure: { type: 'ApprovalTimedOut', message: 'nobody approved the migration of "app" within 1 s; nothing ran' } },
    exit: ExitCode.failed,
    stream: 'stderr',
    says: /\[ApprovalTimedOut\] nobody approved/,
  },
];

test('every outcome has a case here', () => {
  assert.deepEqual(cases.map((c) => c.outcome.status), [...outcomeStatuses]);
});

for (const c of cases) {
  test(`outcome ${c.outcome.status}: exit code ${c.exit}, rendered on ${c.stream}, read back from a result or a failure`, () => {
    assert.equal(exitCodeFor(c.outcome), c.exit);
    const rendered = renderOutcome(c.outcome, { migrationsDir: '/nowhere' });
    assert.equal(rendered.stream, c.stream);
    assert.match(rendered.text, c.says);
    if ('failure' in c.outcome) {
      // As a client or a parent sees it: a workflow failure whose cause is the failure carrying the outcome.
      const carried = Object.assign(new Error(c.outcome.failure.message), { details: [{}, { outcome: c.outcome }] });
      assert.deepEqual(outcomeOf(Object.assign(new Error('workflow failed'), { cause: carried })), c.outcome);
    } else {
      assert.deepEqual(outcomeOf(c.outcome), c.outcome);
    }
  });
}

test('--detailed-exitcode: applied exits 10, up to date 0', () => {
  assert.equal(exitCodeFor(cases[2]!.outcome, { detailedExitcode: true }), ExitCode.applied);
  assert.equal(exitCodeFor(cases[0]!.outcome, { detailedExitcode: true }), ExitCode.ok);
});

test('a halted run exits by its failure: bad input 2, part of a no-transaction file applied 1', () => {
  const halted = (failure: object) => ({ ...base, status: 'halted' as const, failure: { ...migrationFailure, ...failure } });
  assert.equal(exitCodeFor(halted({ type: 'IntegrityCheckFailed', message: 'the ledger and the files disagree' })), ExitCode.badInput);
  assert.equal(exitCodeFor(halted({ mode: 'no-transaction', statementsDone: 2, statementsTotal: 3, statement: 3 })), ExitCode.failed);
});

test('anything else is not an outcome', () => {
  assert.equal(outcomeOf(new Error('terminated')), undefined);
  assert.equal(outcomeOf({ status: 'applied' }), undefined);
  assert.equal(outcomeOf(Object.assign(new Error('x'), { details: [{ outcome: { status: 'nonsense', db: 'app' } }] })), undefined);
});
