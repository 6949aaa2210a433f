import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { ExitCode } from '../../src/client/exit-codes';
import { ensureLedger, insertHistory } from '../../src/db/ledger';
import { type TestDatabase } from '../helpers/database';
import { withWorker } from '../helpers/temporal';
import { cliFixture } from '../helpers/cli-fixture';

/** Each test uses its own alias, as in approval.test.ts. */
const fixture = (t: { after(fn: () => unknown): void }, files: Record<string, string>, alias: string) => cliFixture(t, files, alias);

/**
 * Rows 1..count of earlier runs that were rolled back (the plan ignores
 * them), so ids pass 100 and text order (1, 10, 100, 101, 11, ...) differs
 * from numeric order.
 */
async function olderRows(db: TestDatabase, count: number, version: (i: number) => string): Promise<void> {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    await ensureLedger(client);
    for (let i = 1; i <= count; i++) {
      const v = version(i);
      await insertHistory(client, { version: v, description: `old_${i}`, file: `V${v}__old_${i}.sql`, checksum: 'x'.repeat(64), status: 'rolled_back', startedAt: new Date(Date.UTC(2020, 0, 1, 0, 0, i)), executionMs: 1 });
    }
  } finally {
    await client.end();
  }
}

test('history --last 12 with more than 100 ledger rows shows exactly the newest 12, oldest first', async (t) => {
  const { db, config, cli } = await fixture(t, { 'V1000__a.sql': 'CREATE TABLE a (id int);' }, 'long-history');
  await olderRows(db, 130, (i) => String(i));
  await withWorker(config, async () => {
    const last = await cli('history', '--db', 'long-history', '--last', '12', '--json');
    assert.equal(last.code, ExitCode.ok, last.stderr);
    const rows = JSON.parse(last.stdout) as Array<{ id: string; version: string }>;
    assert.deepEqual(rows.map((r) => r.version), Array.from({ length: 12 }, (_, i) => String(119 + i)));
    assert.deepEqual(rows.map((r) => r.id), Array.from({ length: 12 }, (_, i) => String(119 + i)));

    const human = await cli('history', '--db', 'long-history', '--last', '3');
    assert.equal(human.code, ExitCode.ok, human.stderr);
    assert.deepEqual(human.stdout.split('\n').slice(1, 4).map((line) => line.split(/\s+/)[0]), ['128', '129', '130']);

    const all = await cli('history', '--db', 'long-history', '--json');
    const versions = (JSON.parse(all.stdout) as Array<{ version: string }>).map((r) => Number(r.version));
    assert.deepEqual(versions, Array.from({ length: 130 }, (_, i) => i + 1), 'the whole ledger in id order too');

    const status = await cli('status', '--db', 'long-history', '--json');
    const history = (JSON.parse(status.stdout) as { history: Array<{ version: string }> }).history;
    assert.deepEqual(history.map((r) => Number(r.version)), Array.from({ length: 130 }, (_, i) => i + 1), 'status lists the ledger in id order');
  });
});

test('a failure report after more than 100 ledger rows names the failed migration among the last entries', async (t) => {
  const { db, config, cli } = await fixture(t, {
    'V1__ok.sql': 'CREATE TABLE ok (id int);',
    'V2__broken.sql': 'SELECT 1 / 0;',
  }, 'long-failure');
  await olderRows(db, 110, () => '3');
  const result = await withWorker(config, () => cli('up', '--db', 'long-failure', '--on-failure', 'halt'));
  assert.equal(result.code, ExitCode.rolledBack, result.stderr);
  const tail = result.stderr.split('\nlast ledger entries:\n')[1]?.split('\n\n')[0] ?? '';
  const entries = tail.split('\n').map((line) => line.trim().split(/\s+/).slice(1, 3).join(' '));
  assert.deepEqual(entries, ['V3 rolled_back', 'V3 rolled_back', 'V3 rolled_back', 'V1 applied', 'V2 failed'], result.stderr);
});
