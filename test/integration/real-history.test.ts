import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ExitCode } from '../../src/client/exit-codes';
import { createTestDatabase } from '../helpers/database';
import { runInProcess } from '../helpers/in-process-cli';
import { withWorker } from '../helpers/temporal';
import { cliFixture } from '../helpers/cli-fixture';
import { realHistory } from '../helpers/real-history';

/**
 * The acceptance test for real histories, in a file of its own: 400
 * migrations through the workflow one by one take minutes, and the harness's
 * time limit holds per file.
 */
// Its own alias: the run lasts minutes, and another file's run of `app` would collide with its workflow id.
const fixture = (t: { after(fn: () => unknown): void }, files: Record<string, string>) => cliFixture(t, files, 'history400');

test('a 400-pair history shaped like a real one: validate, lint, up in the default mode on an empty database without waiting, history --last 12, rehearse', async (t) => {
  const history = realHistory(400);
  assert.equal(Object.keys(history.files).length, 800);
  assert.ok(history.plpgsqlLines >= 200, `${history.plpgsqlLines} lines of PL/pgSQL`);
  const empty = Object.entries(history.files).filter(([name, sql]) => name.startsWith('V') && sql.replace(/--[^\n]*|\/\*[\s\S]*?\*\//g, '').trim() === '');
  assert.ok(empty.length >= 133, `${empty.length} empty or comments-only forward files`);
  const { db, set, config, cli } = await fixture(t, history.files);

  const validate = await cli('validate');
  assert.equal(validate.code, ExitCode.ok, validate.stderr);
  assert.match(validate.stdout, /^400 migrations in .* are valid \(400 with undo scripts; manifest [0-9a-f]{12}\)\n$/);

  // Renamed tables are still the set's own, new and empty: nothing to warn about, forward or undo.
  const lint = await cli('lint');
  assert.deepEqual([lint.code, lint.stdout, lint.stderr], [ExitCode.ok, 'no findings\n', '']);

  await withWorker(config, async () => {
    // The default mode (auto) gates high-risk migrations: on an empty database a self-contained set has none.
    const up = await cli('up', '--db', 'history400');
    assert.equal(up.code, ExitCode.ok, up.stderr);
    assert.doesNotMatch(up.stderr, /waiting for approval/);
    assert.match(up.stdout, /400 migrations applied; database "history400" is at version 20230101000399001197\n$/);

    const last = await cli('history', '--db', 'history400', '--last', '12', '--json');
    assert.equal(last.code, ExitCode.ok, last.stderr);
    assert.deepEqual((JSON.parse(last.stdout) as Array<{ version: string }>).map((r) => r.version), history.versions.slice(-12));
  });
  const levels = await db.query<{ level: string | null; n: string }>(`SELECT risk_level AS level, count(*)::text AS n FROM pgconvoy.history GROUP BY 1 ORDER BY 1`);
  assert.deepEqual(levels.rows, [{ level: 'low', n: '400' }]);
  const tables = await db.query<{ t: string }>(`SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`);
  assert.deepEqual(tables.rows.map((r) => r.t), history.tables);

  const scratch = await createTestDatabase();
  t.after(() => scratch.drop());
  const rehearse = await runInProcess(['--migrations', set.dir, 'rehearse', '--db', 'scratch'], { PGCONVOY_DB_SCRATCH: scratch.url }, set.dir);
  assert.equal(rehearse.code, ExitCode.ok, rehearse.stdout + rehearse.stderr);
  assert.match(rehearse.stdout, /^ok +upgrade +400 migrations applied\n/);
  assert.match(rehearse.stdout, /\nok +undo +400 undo scripts ran in reverse\n/);
  assert.match(rehearse.stdout, /\nrehearsal passed\n$/);
});
