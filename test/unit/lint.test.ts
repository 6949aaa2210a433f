import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ExitCode } from '../../src/client/exit-codes';
import { runInProcess } from '../helpers/in-process-cli';
import { sampleMigrationsDir, writeMigrations } from '../helpers/migrations';

const set = () =>
  writeMigrations({
    'V1__drop.sql': "-- pgconvoy:allow drop-column removed from the app in release 42\nSET lock_timeout = '5s';\nALTER TABLE customers DROP COLUMN fax;\n",
    'V2__idx.sql': 'CREATE INDEX customers_email ON customers (email);\n',
    'V3__wipe.sql': 'DELETE FROM sessions;\n',
  });

test('pgconvoy lint reports findings for humans, exits by the highest level not accepted', async (t) => {
  const s = set();
  t.after(() => s.remove());
  const result = await runInProcess(['--migrations', s.dir, 'lint'], {}, s.dir);
  assert.equal(result.code, ExitCode.lintHigh, result.stderr);
  assert.match(result.stdout, /^V1__drop\.sql:3 {2}high {4}drop-column \(ACCESS EXCLUSIVE on customers\)\n {4}why: .*\n {4}instead: .*\n {4}accepted: removed from the app in release 42\n/);
  assert.match(result.stdout, /\nV2__idx\.sql:1 {2}medium {2}create-index-blocking \(SHARE on customers\)\n/);
  assert.match(result.stdout, /\n3 findings: 1 high, 1 medium, 0 low \(not counting accepted ones\)\n$/);

  const onlyIndex = await runInProcess(['--migrations', s.dir, 'lint', 'V2__idx.sql'], {}, s.dir);
  assert.equal(onlyIndex.code, ExitCode.lintMedium);
  const clean = await runInProcess(['--migrations', sampleMigrationsDir, 'lint'], {});
  assert.deepEqual([clean.code, clean.stdout], [ExitCode.ok, 'no findings\n']);
});

test('pgconvoy lint --json and --format github', async (t) => {
  const s = set();
  t.after(() => s.remove());
  const json = await runInProcess(['--migrations', s.dir, 'lint', '--json'], {}, s.dir);
  const findings = JSON.parse(json.stdout) as Array<{ file: string; rule: string; level: string; line: number; allowed: string | null }>;
  assert.deepEqual(
    findings.map((f) => [f.file, f.rule, f.level, f.line, f.allowed]),
    [
      ['V1__drop.sql', 'drop-column', 'high', 3, 'removed from the app in release 42'],
      ['V2__idx.sql', 'create-index-blocking', 'medium', 1, null],
      ['V3__wipe.sql', 'delete-without-where', 'high', 1, null],
    ],
  );
  const github = await runInProcess(['--migrations', s.dir, 'lint', '--format', 'github'], {}, s.dir);
  assert.deepEqual(
    github.stdout.trim().split('\n').map((l) => l.split('::').slice(0, 2).join('::')),
    ['::warning file=./V2__idx.sql,line=1,title=pgconvoy create-index-blocking (medium)', '::error file=./V3__wipe.sql,line=1,title=pgconvoy delete-without-where (high)'],
    'accepted findings are not annotated',
  );
});
