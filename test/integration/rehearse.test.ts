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
