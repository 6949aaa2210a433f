import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { errorTypes, isErrorType, type ErrorType } from '../../src/contracts/errors';
import { nonRetryableTypes } from '../../src/workflows/failures';
import { ExitCode, exitCodeForFailure } from '../../src/client/exit-codes';
import { TargetBeyondSetError } from '../../src/core/errors';
import { checkTarget } from '../../src/core/plan';
import { DatabaseConfigError, DatabaseUnavailableError, withClient } from '../../src/db/connection';
import { classifySqlState } from '../../src/db/sqlstate';

test('SQLSTATE classes: statement_timeout / query_canceled is permanent; lock, deadlock, serialization and shutdown are transient', () => {
  assert.equal(classifySqlState('57014'), 'permanent');
  for (const code of ['55P03', '40P01', '40001', '57P01', '57P03', '08006', undefined]) assert.equal(classifySqlState(code), 'retryable', String(code));
  for (const code of ['3D000', '28P01', '28000', '42501', '42P01']) assert.equal(classifySqlState(code), 'permanent', code);
});

test('a refused connection stays retryable (DatabaseUnavailable); a string that is not a postgres URL fails at once', async () => {
  await assert.rejects(
    withClient({ alias: 'nowhere', url: 'postgres://postgres@127.0.0.1:1/x' }, () => Promise.resolve()),
    (error: unknown) => error instanceof DatabaseUnavailableError && error.retryable && /^cannot reach database "nowhere": .*ECONNREFUSED/.test(error.message),
  );
  for (const url of ['host=db.internal dbname=app password=s3cret', 'http://db.internal/app', 'postgres://u:s3cret@db:port/app']) {
    await assert.rejects(
      withClient({ alias: 'typo', url }, () => Promise.resolve()),
      (error: unknown) => error instanceof DatabaseConfigError && !error.retryable && !error.message.includes('s3cret'),
    );
  }
});

test('one mapping from error types to exit codes: settings 2, services 3, signals 128 + n', () => {
  for (const type of ['DatabaseConfig', 'PermissionDenied', 'TargetBeyondSet', 'InvalidConfig', 'UnknownDatabase', 'BackupToolMismatch']) assert.equal(exitCodeForFailure(type), ExitCode.badInput, type);
  for (const type of ['DatabaseUnavailable', 'TemporalUnavailable', 'DevServerFailed']) assert.equal(exitCodeForFailure(type), ExitCode.unavailable, type);
  assert.equal(exitCodeForFailure('Interrupted', { signal: 'SIGINT' }), 130);
  assert.equal(exitCodeForFailure('Interrupted', { signal: 'SIGTERM' }), 143);
  assert.equal(exitCodeForFailure('LockTimeout', { statementsDone: 0 }), ExitCode.rolledBack);
});

test('a target beyond the last version is refused; one between versions is not', () => {
  const manifest = [{ version: '1' }, { version: '3' }].map((e) => ({ ...e, description: 'x', checksum: 'c', undoChecksum: null }));
  assert.doesNotThrow(() => checkTarget('/m', manifest, '2'));
  assert.doesNotThrow(() => checkTarget('/m', manifest, '3'));
  assert.throws(() => checkTarget('/m', manifest, '4'), TargetBeyondSetError);
  assert.throws(() => checkTarget('/m', [], '1'), /the set is empty/);
});

test('one table of error types: every type the workflows raise is in it, and retry lists and exit codes come from it', () => {
  const workflows = join(__dirname, '..', '..', '..', 'src', 'workflows');
  const raised = new Set<string>();
  for (const file of readdirSync(workflows, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'))) {
    const text = readFileSync(join(workflows, file), 'utf8');
    for (const m of text.matchAll(/(?:type: |runFailure\(\s*)'([A-Z][A-Za-z]+)'/g)) raised.add(m[1]!);
  }
  assert.ok(raised.size >= 6, `found ${[...raised].join(', ')}`);
  for (const type of raised) assert.ok(isErrorType(type), `${type} is raised by a workflow but missing from src/contracts/errors.ts`);

  for (const type of Object.keys(errorTypes) as ErrorType[]) {
    const spec = errorTypes[type];
    assert.equal(nonRetryableTypes.includes(type), spec.retryable === false, `${type}: in the workflow's non-retryable list exactly when the table says so`);
    if (spec.exit === 'badInput') assert.equal(exitCodeForFailure(type), ExitCode.badInput, type);
    if (spec.exit === 'unavailable') assert.equal(exitCodeForFailure(type), ExitCode.unavailable, type);
    if (spec.exit === 'failed') assert.equal(exitCodeForFailure(type), ExitCode.failed, type);
  }
  assert.equal(exitCodeForFailure('LockTimeout', { statementsDone: 0 }), ExitCode.rolledBack);
  assert.equal(exitCodeForFailure('MigrationFailed', { statementsDone: 2 }), ExitCode.failed);
});
