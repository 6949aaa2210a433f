import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ExitCode } from '../../src/client/exit-codes';
import { createTestDatabase } from '../helpers/database';
import { runInProcess } from '../helpers/in-process-cli';
import { sampleMigrationsDir, writeMigrations } from '../helpers/migrations';

test('pgconvoy rehearse passes on the sample set, with sample data loaded first', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const seed = writeMigrations({});
  t.after(() => seed.remove());
  const seedFile = join(seed.dir, 'seed.sql');
  writeFileSync(seedFile, 'CREATE TABLE legacy (id int); INSERT INTO legacy VALUES (1);');
  const result = await runInProcess(['--migrations', sampleMigrationsDir, 'rehearse', '--db', 'scratch', '--seed', seedFile], { PGCONVOY_DB_SCRATCH: db.url });
  assert.equal(result.code, ExitCode.ok, result.stdout + result.stderr);
  assert.deepEqual(
    result.stdout.trim().split('\n').map((l) => l.slice(0, 24).trim()),
    ['ok      seed', 'ok      upgrade', 'ok      verify', 'ok      undo', 'ok      compare-start', 'ok      upgrade-again', 'ok      verify-again', 'ok      compare-upgrade', 'rehearsal passed'],
  );
  assert.match(result.stdout, /verify +schema and 1 check pass/);
});

test('pgconvoy rehearse fails at the step that diverged, naming the index an undo script forgot to drop', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const set = writeMigrations({
    'V1__idx.sql': 'CREATE INDEX base_email ON base (email);',
    'U1__idx.sql': '-- forgot: DROP INDEX base_email;\n',
  });
  t.after(() => set.remove());
  await db.query('CREATE TABLE base (id int, email text)');
  const result = await runInProcess(['--migrations', set.dir, 'rehearse', '--db', 'scratch'], { PGCONVOY_DB_SCRATCH: db.url });
  assert.equal(result.code, ExitCode.failed);
  assert.equal(
    result.stdout,
    'ok      upgrade         1 migration applied\n' +
      'ok      verify          schema and 0 checks pass\n' +
      'FAILED  undo            undo U1__idx.sql (version 1) left the schema different from before version 1; it was rolled back:\n' +
      '  indexes: + CREATE INDEX base_email ON public.base USING btree (email)\n' +
      'rehearsal failed at step "undo"\n',
  );
});

test("pgconvoy rehearse runs under the config's execution settings, and an undo's failure keeps PostgreSQL's DETAIL and HINT", async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  // A statement timeout from the config: the slow migration must hit it, as `up` would.
  const slow = writeMigrations({ 'V1__slow.sql': 'CREATE TABLE s (id int);\nSELECT pg_sleep(3);', 'pgconvoy.config.json': JSON.stringify({ execution: { statementTimeoutMs: 500 } }) });
  t.after(() => slow.remove());
  const timedOut = await runInProcess(['--config', join(slow.dir, 'pgconvoy.config.json'), '--migrations', slow.dir, 'rehearse', '--db', 'scratch'], { PGCONVOY_DB_SCRATCH: db.url });
  assert.equal(timedOut.code, ExitCode.failed, timedOut.stdout + timedOut.stderr);
  assert.match(timedOut.stdout, /^FAILED  upgrade +V1__slow\.sql \(version 1\) failed at statement 2 of 2, line 2, column 1: SQLSTATE 57014: canceling statement due to statement timeout/m);

  const other = await createTestDatabase();
  t.after(() => other.drop());
  const set = writeMigrations({
    'V1__view.sql': 'CREATE TABLE t (id int, c int);\nCREATE VIEW v AS SELECT c FROM t;',
    'U1__view.sql': 'ALTER TABLE t DROP COLUMN c;\nDROP VIEW v;\nDROP TABLE t;',
  });
  t.after(() => set.remove());
  const result = await runInProcess(['--migrations', set.dir, 'rehearse', '--db', 'scratch'], { PGCONVOY_DB_SCRATCH: other.url });
  assert.equal(result.code, ExitCode.failed);
  assert.match(result.stdout, /FAILED  undo +undo U1__view\.sql \(version 1\) failed at statement 1, line 1: SQLSTATE 2BP01: cannot drop column c of table t because other objects depend on it\n\s*DETAIL: view v depends on column c of table t\n\s*HINT: Use DROP \.\.\. CASCADE/);
});
