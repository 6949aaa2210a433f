import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultExecutionSettings, lockSchedule } from '../../src/core/execution-settings';
import { lockTaken } from '../../src/core/locks';
import { analyzeScript, type Script } from '../../src/core/statements';

async function script(sql: string): Promise<Script> {
  const result = await analyzeScript(sql);
  assert.ok(result.ok, result.ok ? '' : result.problems.join('\n'));
  return result.script;
}

test('statements keep their line, their text without the semicolon, and survive dollar quotes and comments', async () => {
  const s = await script("-- header\n/* block; comment */ CREATE TABLE t (v text DEFAULT 'a;b');\n\nDO $x$ BEGIN RAISE NOTICE ';'; END $x$;\nSELECT 'é'; SELECT 2");
  assert.deepEqual(
    s.statements.map((x) => [x.index, x.line, x.column, x.kind, x.sql]),
    [
      [1, 2, 22, 'CreateStmt', "CREATE TABLE t (v text DEFAULT 'a;b')"],
      [2, 4, 1, 'DoStmt', "DO $x$ BEGIN RAISE NOTICE ';'; END $x$"],
      [3, 5, 1, 'SelectStmt', "SELECT 'é'"],
      [4, 5, 13, 'SelectStmt', 'SELECT 2'],
    ],
  );
  assert.equal(s.mode, 'transaction');
});

test('statements that cannot run in a transaction block are recognised', async () => {
  const cases: Array<[string, string | null]> = [
    ['CREATE INDEX CONCURRENTLY i ON t (a)', 'CREATE INDEX CONCURRENTLY'],
    ['CREATE INDEX i ON t (a)', null],
    ['DROP INDEX CONCURRENTLY i', 'DROP INDEX CONCURRENTLY'],
    ['REINDEX INDEX CONCURRENTLY i', 'REINDEX CONCURRENTLY'],
    ['REINDEX TABLE t', null],
    ['REINDEX DATABASE d', 'REINDEX DATABASE/SYSTEM'],
    ['VACUUM t', 'VACUUM'],
    ['ANALYZE t', null],
    ['ALTER SYSTEM SET work_mem = 1', 'ALTER SYSTEM'],
    ['CREATE DATABASE d', 'CREATE DATABASE'],
    ['ALTER TABLE p DETACH PARTITION c CONCURRENTLY', 'DETACH PARTITION CONCURRENTLY'],
    ['ALTER TABLE p DETACH PARTITION c', null],
  ];
  for (const [sql, reason] of cases) {
    const s = await script(sql);
    assert.equal(s.statements[0]?.nonTransactional, reason, sql);
    assert.equal(s.mode, reason === null ? 'transaction' : 'no-transaction', `${sql}: a file of one such statement runs outside a transaction`);
  }
});

test('a comment-only file has no statements and is a valid no-op', async () => {
  const s = await script('-- nothing yet\n/* later */\n');
  assert.deepEqual(s.statements, []);
});

test('a 0-byte, a whitespace-only and a comments-only file each have no statements and run as one (empty) transaction', async () => {
  for (const sql of ['', ' \n\t\r\n', '-- nothing yet\n/* later */\n', '-- no newline at the end', ';\n;']) {
    const s = await script(sql);
    assert.deepEqual(s.statements, [], JSON.stringify(sql));
    assert.equal(s.mode, 'transaction', JSON.stringify(sql));
    assert.deepEqual(s.directives, { noTransaction: false, allow: [] }, JSON.stringify(sql));
  }
});

test('a file of directives only keeps its directives', async () => {
  const s = await script('-- pgconvoy:no-transaction\n-- pgconvoy:lock-timeout 5s\n');
  assert.deepEqual(s.statements, []);
  assert.equal(s.mode, 'no-transaction');
  assert.equal(s.directives.lockTimeoutMs, 5000);
});

test('the lock schedule starts short, grows to the limit, and is bounded', () => {
  const schedule = lockSchedule({ ...defaultExecutionSettings, lockTimeoutInitialMs: 500, lockTimeoutMs: 5000, lockRetryMaxAttempts: 6, lockRetryPauseMs: 1000, lockRetryMaxPauseMs: 8000 });
  assert.deepEqual(schedule.map((a) => a.lockTimeoutMs), [500, 1000, 2000, 4000, 5000, 5000]);
  assert.deepEqual(schedule.map((a) => a.pauseAfterMs), [1000, 2000, 4000, 8000, 8000, null]);
  const perFile = lockSchedule(defaultExecutionSettings, { lockTimeoutMs: 300 });
  assert.ok(perFile.every((a) => a.lockTimeoutMs === 300), "a file's lock-timeout caps every attempt");
});

test('the table lock of common DDL and DML', async () => {
  const cases: Array<[string, string | null, string[]]> = [
    ['ALTER TABLE orders ADD COLUMN note text', 'ACCESS EXCLUSIVE', ['orders']],
    ['ALTER TABLE orders VALIDATE CONSTRAINT c', 'SHARE UPDATE EXCLUSIVE', ['orders']],
    ['ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (c) REFERENCES customers (id)', 'SHARE ROW EXCLUSIVE', ['orders', 'customers']],
    ['CREATE INDEX i ON app.orders (c)', 'SHARE', ['app.orders']],
    ['CREATE INDEX CONCURRENTLY i ON orders (c)', 'SHARE UPDATE EXCLUSIVE', ['orders']],
    ['DROP TABLE orders', 'ACCESS EXCLUSIVE', ['orders']],
    ['TRUNCATE a, b', 'ACCESS EXCLUSIVE', ['a', 'b']],
    ['UPDATE orders SET c = 1', 'ROW EXCLUSIVE', ['orders']],
    ['VACUUM (FULL) orders', 'ACCESS EXCLUSIVE', ['orders']],
    ['LOCK TABLE orders IN SHARE MODE', 'SHARE', ['orders']],
    ['CREATE TABLE fresh (id int)', null, []],
    ['CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$', null, []],
  ];
  for (const [sql, mode, relations] of cases) {
    const s = await script(sql);
    assert.deepEqual(lockTaken(s.statements[0]!), { mode, relations }, sql);
  }
});

test('a file of many statements is split in linear time, with the right lines', async () => {
  const line = "INSERT INTO t (a, b) VALUES (1, 'some text to make the line longer');\n";
  const sql = '-- many rows\n' + line.repeat(20_000);
  const started = Date.now();
  const result = await analyzeScript(sql);
  const ms = Date.now() - started;
  assert.ok(result.ok);
  assert.equal(result.script.statements.length, 20_000);
  assert.deepEqual([result.script.statements[0]!.line, result.script.statements[19_999]!.line, result.script.statements[19_999]!.column], [2, 20_001, 1]);
  assert.ok(ms < 20_000, `20,000 statements took ${ms} ms`);
});
