import assert from 'node:assert/strict';
import { test } from 'node:test';
import { analyzeRisk, analyzeUndo, highestLevel, type ScriptForRisk } from '../../src/core/risk';
import { analyzeScript } from '../../src/core/statements';

/** Parses each snippet as a migration (versions 1, 2, ... in order) and returns the findings of the last one. */
async function findingsOfLast(...snippets: string[]): Promise<string[]> {
  const migrations: ScriptForRisk[] = [];
  for (const [i, sql] of snippets.entries()) {
    const parsed = await analyzeScript(sql);
    assert.ok(parsed.ok, parsed.ok ? '' : parsed.problems.join('\n'));
    migrations.push({ version: String(i + 1), file: `V${i + 1}__x.sql`, script: parsed.script });
  }
  const all = analyzeRisk(migrations);
  return (all.get(String(snippets.length)) ?? []).map((f) => `${f.rule}:${f.level}${f.allowed ? ' (allowed)' : ''}`);
}

const SET_LT = "SET lock_timeout = '5s';\n";

const cases: Array<[string, string[], string[]]> = [
  // [name, snippets (earlier ones set the scene), expected findings of the last]
  ['drop table', ['DROP TABLE orders;'], ['drop-table:high', 'missing-lock-timeout:low']],
  ['drop table with lock_timeout', [SET_LT + 'DROP TABLE orders;'], ['drop-table:high']],
  ['drop column', [SET_LT + 'ALTER TABLE orders DROP COLUMN note;'], ['drop-column:high']],
  ['drop schema', ['DROP SCHEMA billing CASCADE;'], ['drop-schema:high']],
  ['drop database', ['DROP DATABASE legacy;'], ['drop-database:high']],
  ['truncate', [SET_LT + 'TRUNCATE orders;'], ['truncate:high']],
  ['rename table', [SET_LT + 'ALTER TABLE orders RENAME TO purchases;'], ['rename-table:high']],
  ['rename column', [SET_LT + 'ALTER TABLE orders RENAME COLUMN note TO remark;'], ['rename-column:high']],
  ['column type that rewrites', [SET_LT + 'ALTER TABLE orders ALTER COLUMN id TYPE bigint;'], ['alter-column-type:high']],
  ['column type to text does not rewrite', [SET_LT + 'ALTER TABLE orders ALTER COLUMN note TYPE text;'], []],
  ['column type to varchar(n) rewrites or checks', [SET_LT + 'ALTER TABLE orders ALTER COLUMN note TYPE varchar(20);'], ['alter-column-type:high']],
  ['add column with volatile default', [SET_LT + 'ALTER TABLE orders ADD COLUMN token uuid DEFAULT gen_random_uuid();'], ['add-column-volatile-default:high']],
  ['add column with random() in an expression', [SET_LT + 'ALTER TABLE orders ADD COLUMN r float DEFAULT (random() * 10);'], ['add-column-volatile-default:high']],
  ['add column with now() is fine (stable, no rewrite)', [SET_LT + 'ALTER TABLE orders ADD COLUMN at timestamptz DEFAULT now();'], []],
  ['add column with constant default is fine', [SET_LT + "ALTER TABLE orders ADD COLUMN state text NOT NULL DEFAULT 'new';"], []],
  ['add nullable column is fine', [SET_LT + 'ALTER TABLE orders ADD COLUMN note2 text;'], []],
  ['set not null', [SET_LT + 'ALTER TABLE orders ALTER COLUMN note SET NOT NULL;'], ['set-not-null:medium']],
  [
    'set not null after a validated check (false positive avoided)',
    [SET_LT + 'ALTER TABLE orders ADD CONSTRAINT note_nn CHECK (note IS NOT NULL) NOT VALID;', 'ALTER TABLE orders VALIDATE CONSTRAINT note_nn;', SET_LT + 'ALTER TABLE orders ALTER COLUMN note SET NOT NULL;'],
    [],
  ],
  ['set not null after a NOT VALID check that was never validated', [SET_LT + 'ALTER TABLE orders ADD CONSTRAINT note_nn CHECK (note IS NOT NULL) NOT VALID;', SET_LT + 'ALTER TABLE orders ALTER COLUMN note SET NOT NULL;'], ['set-not-null:medium']],
  ['foreign key without NOT VALID', [SET_LT + 'ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (customer_id) REFERENCES customers (id);'], ['add-foreign-key:medium']],
  ['foreign key NOT VALID (false positive avoided)', [SET_LT + 'ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (customer_id) REFERENCES customers (id) NOT VALID;'], []],
  ['validating a constraint later is fine', ['ALTER TABLE orders VALIDATE CONSTRAINT fk;'], []],
  ['check constraint without NOT VALID', [SET_LT + 'ALTER TABLE orders ADD CONSTRAINT positive CHECK (total > 0);'], ['add-check-constraint:medium']],
  ['check constraint NOT VALID', [SET_LT + 'ALTER TABLE orders ADD CONSTRAINT positive CHECK (total > 0) NOT VALID;'], []],
  ['index without CONCURRENTLY on an existing table', ['CREATE INDEX orders_note ON orders (note);'], ['create-index-blocking:medium']],
  ['concurrent index in a no-transaction file (false positive avoided)', ['-- pgconvoy:no-transaction\nCREATE INDEX CONCURRENTLY orders_note ON orders (note);\nCREATE INDEX CONCURRENTLY orders_total ON orders (total);'], []],
  ['concurrent index alone in a file', ['CREATE INDEX CONCURRENTLY orders_note ON orders (note);'], []],
  ['index on a table created in the same file', ['CREATE TABLE fresh (id int, note text);\nCREATE INDEX fresh_note ON fresh (note);'], []],
  ['index on a table created earlier in the set', ['CREATE TABLE fresh (id int, note text);', 'CREATE INDEX fresh_note ON fresh (note);'], []],
  ['drop index without CONCURRENTLY', [SET_LT + 'DROP INDEX orders_note;'], ['drop-index-blocking:medium']],
  ['drop index CONCURRENTLY', ['DROP INDEX CONCURRENTLY orders_note;'], []],
  ['primary key without an index', [SET_LT + 'ALTER TABLE orders ADD PRIMARY KEY (id);'], ['add-unique-without-index:medium']],
  ['unique constraint without an index', [SET_LT + 'ALTER TABLE orders ADD CONSTRAINT u UNIQUE (note);'], ['add-unique-without-index:medium']],
  ['unique constraint USING INDEX', [SET_LT + 'ALTER TABLE orders ADD CONSTRAINT u UNIQUE USING INDEX orders_note_key;'], []],
  ['update without WHERE', ['UPDATE orders SET note = NULL;'], ['update-without-where:high']],
  ['update with WHERE', ['UPDATE orders SET note = NULL WHERE id < 1000;'], []],
  ['delete without WHERE', ['DELETE FROM orders;'], ['delete-without-where:high']],
  ['delete with WHERE', ['DELETE FROM orders WHERE id = 1;'], []],
  ['vacuum full', ['VACUUM FULL orders;'], ['vacuum-full:high', 'missing-lock-timeout:low']],
  ['plain vacuum', ['VACUUM orders;'], []],
  ['cluster', [SET_LT + 'CLUSTER orders USING orders_pkey;'], ['cluster:high']],
  ['new table: foreign key, constraints and rows are all fine', ['CREATE TABLE t (id int PRIMARY KEY, c int REFERENCES customers (id));\nALTER TABLE t ADD CONSTRAINT pos CHECK (id > 0);\nUPDATE t SET c = 1;\nALTER TABLE t RENAME COLUMN c TO d;'], []],
  ['drop a table created earlier in the set', ['CREATE TABLE tmp (id int);', 'DROP TABLE tmp;'], []],
  ['accepted with pgconvoy:allow', ['-- pgconvoy:allow drop-column released in v42 without the column\n' + SET_LT + 'ALTER TABLE orders DROP COLUMN note;'], ['drop-column:high (allowed)']],
  // The set's own objects, followed through renames.
  ['a table created in the set, renamed, then altered and indexed', ['CREATE TABLE d (id int, note text);', 'ALTER TABLE d RENAME TO e;', 'ALTER TABLE e ALTER COLUMN id TYPE bigint;\nALTER TABLE e DROP COLUMN note;\nCREATE INDEX e_id ON e (id);\nUPDATE e SET id = 1;'], []],
  ['a renamed set table renamed again and dropped', ['CREATE TABLE d (id int);', 'ALTER TABLE d RENAME TO e;\nALTER TABLE e RENAME TO f;', 'DROP TABLE f;'], []],
  ['the old name of a renamed set table is not the set table', ['CREATE TABLE d (id int);', 'ALTER TABLE d RENAME TO e;', SET_LT + 'DROP TABLE d;'], ['drop-table:high']],
  ['an existing table renamed stays existing under its new name', [SET_LT + 'ALTER TABLE orders RENAME TO purchases;', SET_LT + 'ALTER TABLE purchases DROP COLUMN note;'], ['drop-column:high']],
  ['a table made by CREATE TABLE AS', ['CREATE TABLE snapshot AS SELECT 1 AS id;', 'CREATE INDEX snapshot_id ON snapshot (id);'], []],
  ['dropping an index the set created on its own table', ['CREATE TABLE t (id int);\nCREATE INDEX t_id ON t (id);', 'DROP INDEX t_id;'], []],
  ['renaming an index the set made on its own table', ['CREATE TABLE t (id int);\nCREATE INDEX t_id ON t (id);', 'ALTER INDEX t_id RENAME TO t_id2;'], []],
  ['dropping a renamed set index', ['CREATE TABLE t (id int);\nCREATE INDEX t_id ON t (id);', 'ALTER INDEX t_id RENAME TO t_id2;', 'DROP INDEX t_id2;'], []],
  ['dropping an index the set created on an existing table names that table', ['-- pgconvoy:no-transaction\nCREATE INDEX CONCURRENTLY orders_note ON orders (note);', 'DROP INDEX orders_note;'], ['drop-index-blocking:medium', 'missing-lock-timeout:low']],
  ['truncating a set table', ['CREATE TABLE t (id int);', 'TRUNCATE t;'], []],
  ['dropping a schema the set created', ['CREATE SCHEMA scratch;', 'DROP SCHEMA scratch CASCADE;'], []],
  ['set not null after a validated check on a renamed column', [SET_LT + 'ALTER TABLE orders ADD CONSTRAINT note_nn CHECK (note IS NOT NULL) NOT VALID;', 'ALTER TABLE orders VALIDATE CONSTRAINT note_nn;', SET_LT + 'ALTER TABLE orders RENAME COLUMN note TO remark;\nALTER TABLE orders ALTER COLUMN remark SET NOT NULL;'], ['rename-column:high']],
  ['function bodies are not analysed as statements', ["CREATE FUNCTION wipe() RETURNS void LANGUAGE sql AS $$ DELETE FROM orders $$;"], []],
];

for (const [name, snippets, expected] of cases) {
  test(`risk: ${name}`, async () => {
    assert.deepEqual(await findingsOfLast(...snippets), expected);
  });
}

test('the table holds at least 40 cases', () => {
  assert.ok(cases.length >= 40, `${cases.length} cases`);
});

test('concurrent index creation inside a transaction is high risk', async () => {
  const parsed = await analyzeScript('CREATE INDEX CONCURRENTLY i ON orders (note);');
  assert.ok(parsed.ok);
  const inTransaction = { ...parsed.script, mode: 'transaction' as const };
  const findings = analyzeRisk([{ version: '1', file: 'V1__x.sql', script: inTransaction }]).get('1')!;
  assert.deepEqual(findings.map((f) => [f.rule, f.level, f.lock, f.table, f.line]), [['concurrent-index-in-transaction', 'high', 'SHARE UPDATE EXCLUSIVE', 'orders', 1]]);
});

test('empty files (0 bytes, blank, comments only) have no findings and do not disturb the set around them', async () => {
  assert.deepEqual(await findingsOfLast('', ' \n', '-- later\n', 'CREATE TABLE t (id int);', '', 'CREATE INDEX t_id ON t (id);'), []);
  assert.deepEqual(await findingsOfLast('', 'DELETE FROM orders;'), ['delete-without-where:high']);
  assert.deepEqual(await findingsOfLast('DELETE FROM orders;', ''), []);
});

test('the highest level ignores accepted findings', async () => {
  const parsed = await analyzeScript("-- pgconvoy:allow drop-column gone since v42\nSET lock_timeout = '5s';\nALTER TABLE orders DROP COLUMN note;\nCREATE INDEX i ON orders (id);");
  assert.ok(parsed.ok);
  const findings = analyzeRisk([{ version: '1', file: 'V1__x.sql', script: parsed.script }]).get('1')!;
  assert.equal(highestLevel(findings), 'medium');
  assert.equal(findings.find((f) => f.rule === 'drop-column')?.allowed, 'gone since v42');
});

test('missing-lock-timeout on DROP INDEX names the table of an index the set made, never the index', async () => {
  const parse = async (sql: string) => {
    const parsed = await analyzeScript(sql);
    assert.ok(parsed.ok);
    return parsed.script;
  };
  const made = await parse('-- pgconvoy:no-transaction\nCREATE INDEX CONCURRENTLY orders_note ON orders (note);');
  const dropped = await parse('DROP INDEX orders_note;');
  const unknown = await parse('DROP INDEX legacy_idx;');
  const all = analyzeRisk([
    { version: '1', file: 'V1__a.sql', script: made },
    { version: '2', file: 'V2__b.sql', script: dropped },
    { version: '3', file: 'V3__c.sql', script: unknown },
  ]);
  assert.deepEqual(all.get('2')!.map((f) => [f.rule, f.table]), [['drop-index-blocking', 'orders'], ['missing-lock-timeout', 'orders']]);
  assert.deepEqual(all.get('3')!.map((f) => [f.rule, f.table]), [['drop-index-blocking', null], ['missing-lock-timeout', null]]);
});

test('undo scripts are analysed as they would run: right after their version', async () => {
  const parse = async (sql: string) => {
    const parsed = await analyzeScript(sql);
    assert.ok(parsed.ok);
    return parsed.script;
  };
  const undo = analyzeUndo([
    { version: '1', file: 'V1__a.sql', script: await parse('CREATE TABLE t (id int);'), undo: { version: '1', file: 'U1__a.sql', script: await parse('DROP TABLE t;') } },
    { version: '2', file: 'V2__b.sql', script: await parse("SET lock_timeout = '5s';\nALTER TABLE orders ADD COLUMN note text;"), undo: { version: '2', file: 'U2__b.sql', script: await parse('ALTER TABLE orders DROP COLUMN note;\nDELETE FROM orders;') } },
    { version: '3', file: 'V3__c.sql', script: await parse('CREATE TABLE u (id int);') },
  ]);
  assert.deepEqual(undo.get('1'), [], 'dropping what its version made');
  assert.deepEqual(undo.get('2')!.map((f) => f.rule), ['drop-column', 'delete-without-where', 'missing-lock-timeout']);
  assert.equal(undo.has('3'), false);
});
