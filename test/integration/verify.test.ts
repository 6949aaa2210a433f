import assert from 'node:assert/strict';
import { test } from 'node:test';
import { withClient } from '../../src/db/connection';
import { fingerprint, fingerprintDiff } from '../../src/db/fingerprint';
import { catalogProblems, runChecks } from '../../src/db/verify';
import { createTestDatabase, type TestDatabase } from '../helpers/database';

const fp = (db: TestDatabase) => withClient({ alias: 'db', url: db.url }, (c) => fingerprint(c));

test('the fingerprint describes the schema, not the data or the order things were created in', async (t) => {
  const a = await createTestDatabase();
  const b = await createTestDatabase();
  t.after(() => Promise.all([a.drop(), b.drop()]));
  await a.query(`CREATE TABLE p (id int PRIMARY KEY, name text NOT NULL DEFAULT 'x'); CREATE TABLE q (id int REFERENCES p (id));
    CREATE INDEX q_id ON q (id); CREATE VIEW v AS SELECT id FROM p; CREATE TYPE mood AS ENUM ('ok', 'sad');
    CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'; INSERT INTO p VALUES (1, 'one');`);
  await b.query(`CREATE TYPE mood AS ENUM ('ok', 'sad'); CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';
    CREATE TABLE p (id int PRIMARY KEY, name text NOT NULL DEFAULT 'x'); CREATE TABLE q (id int REFERENCES p (id)); CREATE VIEW v AS SELECT id FROM p;
    CREATE INDEX q_id ON q (id);`);
  const [fa, fb] = [await fp(a), await fp(b)];
  assert.equal(fa.sha256, fb.sha256, fingerprintDiff(fa, fb).join('\n'));

  await b.query('ALTER TABLE p ADD COLUMN note text; DROP INDEX q_id;');
  const changed = await fp(b);
  assert.notEqual(changed.sha256, fa.sha256);
  assert.deepEqual(fingerprintDiff(fa, changed), ['columns: + public.p.note text', 'indexes: - CREATE INDEX q_id ON public.q USING btree (id)']);
});

test('verification finds invalid indexes, NOT VALID constraints and failing user checks, with the rows they returned', async (t) => {
  const db = await createTestDatabase();
  t.after(() => db.drop());
  await db.query(`CREATE TABLE u (id int, email text); INSERT INTO u VALUES (1, 'a'), (2, 'a'), (3, NULL);
    ALTER TABLE u ADD CONSTRAINT email_present CHECK (email IS NOT NULL) NOT VALID;`);
  await db.query('CREATE UNIQUE INDEX CONCURRENTLY u_email ON u (email)').catch(() => undefined);
  await withClient({ alias: 'db', url: db.url }, async (client) => {
    assert.deepEqual(
      (await catalogProblems(client)).map((p) => p.message),
      [
        'index public.u_email is invalid (a failed CREATE INDEX CONCURRENTLY?)',
        'constraint email_present on public.u is NOT VALID; validate it (ALTER TABLE ... VALIDATE CONSTRAINT) in a later migration',
      ],
    );
    const checks = await runChecks(client, [
      { file: 'checks/no_duplicate_emails.sql', sql: 'SELECT email, count(*)::int AS n FROM u WHERE email IS NOT NULL GROUP BY email HAVING count(*) > 1' },
      { file: 'checks/fine.sql', sql: 'SELECT 1 WHERE false' },
      { file: 'checks/broken.sql', sql: 'SELECT nope FROM u' },
      { file: 'checks/sneaky.sql', sql: 'DELETE FROM u RETURNING id' },
    ]);
    assert.deepEqual(checks.map((c) => c.message), [
      'check checks/no_duplicate_emails.sql returned 1 row (it must return none): {"email":"a","n":2}',
      'check checks/broken.sql failed to run: column "nope" does not exist',
      'check checks/sneaky.sql failed to run: cannot execute DELETE in a read-only transaction',
    ]);
  });
  assert.equal((await db.query('SELECT count(*)::int AS n FROM u')).rows[0]?.n, 3, 'checks run read-only');
});
