import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { cliEnv, runCli, scratchDir, startCli } from '../helpers/cli';
import { createTestDatabase } from '../helpers/database';
import { writeMigrations } from '../helpers/migrations';
import { isAlive, waitFor } from '../helpers/workers';

test('SIGTERM or SIGINT of an embedded up that waits for approval: one line (nothing changed, how to go on), exit 143 or 130, no SDK noise, nothing left running', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  const dir = scratchDir(t, 'pgconvoy-interrupt-');
  const set = writeMigrations({ 'V1__a.sql': 'CREATE TABLE a (id int);' });
  t.after(() => set.remove());
  const stateDir = join(dir, 'state');
  const env = cliEnv({ PGCONVOY_DB_WAITER: db.url, PGCONVOY_STATE_DIR: stateDir });
  const args = ['up', '--db', 'waiter', '--migrations', set.dir, '--require-approval'];

  for (const [signal, code] of [['SIGTERM', 143], ['SIGINT', 130]] as const) {
    const up = startCli(args, env);
    t.after(() => up.child.kill('SIGKILL'));
    await waitFor('the run to wait for approval', () => Promise.resolve(up.output().includes('waiting for approval since') ? true : undefined), 60_000);
    const lock = JSON.parse(readFileSync(join(stateDir, 'embedded.lock'), 'utf8')) as { serverPid: number };
    up.child.kill(signal);
    assert.equal(await up.exited, code, up.output());
    const lines = up.output().trimEnd().split('\n');
    assert.equal(
      lines.at(-1),
      `pgconvoy: stopped by ${signal} while the run of "waiter" waits for approval: nothing was changed; ` +
        `the run is kept in ${stateDir}: \`pgconvoy up --db waiter\` picks it up again (then \`pgconvoy approve --db waiter\`), \`pgconvoy cancel --db waiter\` drops it`,
    );
    assert.doesNotMatch(up.output(), /Error|Promise|\n\s+at /, 'no SDK message or stack');
    assert.ok(!isAlive(lock.serverPid), 'the embedded dev server was stopped');
    assert.ok(!existsSync(join(stateDir, 'embedded.lock')), 'the state directory was released');
  }

  const schemas = await db.query(`SELECT nspname FROM pg_namespace WHERE nspname = 'pgconvoy'`);
  assert.equal(schemas.rowCount, 0, 'nothing was changed');
  assert.equal((await db.query(`SELECT to_regclass('a') AS t`)).rows[0]?.t, null);
  const status = await runCli(['status', '--db', 'waiter', '--migrations', set.dir], { env });
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /running: phase awaiting-approval/, 'the run is kept');
});
