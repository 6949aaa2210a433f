import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { PendingMigration } from '../../src/contracts';
import { fromPgLocksMode, lockConflicts, lockModes, type LockMode } from '../../src/core/locks';
import { analyzeRisk } from '../../src/core/risk';
import { applyContext, assessPending, defaultThresholds, predictedShort, type TableContext } from '../../src/core/risk-context';
import { analyzeScript, type Script } from '../../src/core/statements';
import { gatedMigrations } from '../../src/workflows/gates';

async function script(sql: string): Promise<Script> {
  const parsed = await analyzeScript(sql);
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.problems.join('\n'));
  return parsed.script;
}

const table = (over: Partial<TableContext> = {}): TableContext => ({ qualified: 'public.orders', rows: 5_000_000, bytes: 2 * 1024 ** 3, sessions: [], lockedOut: false, ...over });

/** Findings of one file on a database that says `context` about its tables. */
async function withContext(sql: string, context: Record<string, TableContext>): Promise<string[]> {
  const s = await script(sql);
  const found = analyzeRisk([{ version: '1', file: 'V1__x.sql', script: s }]).get('1') ?? [];
  return applyContext(found, s, new Map(Object.entries(context)), defaultThresholds).map(
    (f) => `${f.rule}:${f.level}${f.baseLevel && f.baseLevel !== f.level ? ` (was ${f.baseLevel})` : ''}${f.allowed ? ' (allowed)' : ''}`,
  );
}

const SET_LT = "SET lock_timeout = '5s';\n";

test('lock conflicts follow PostgreSQL\'s table: symmetric, and the documented pairs', () => {
  for (const a of lockModes) for (const b of lockModes) assert.equal(lockConflicts(a, b), lockConflicts(b, a), `${a} / ${b}`);
  assert.equal(lockConflicts('SHARE', 'ROW EXCLUSIVE'), true, 'CREATE INDEX waits for writers');
  assert.equal(lockConflicts('SHARE', 'ACCESS SHARE'), false, 'CREATE INDEX does not wait for readers');
  assert.equal(lockConflicts('SHARE', 'SHARE'), false, 'two index builds run side by side');
  assert.equal(lockConflicts('SHARE UPDATE EXCLUSIVE', 'SHARE UPDATE EXCLUSIVE'), true, 'self-conflicting');
  assert.equal(lockConflicts('ACCESS EXCLUSIVE', 'ACCESS SHARE'), true, 'ALTER TABLE waits for a reader');
  assert.equal(lockConflicts('ROW EXCLUSIVE', 'ROW EXCLUSIVE'), false, 'writers do not block writers at table level');
  assert.deepEqual(
    ['AccessShareLock', 'RowShareLock', 'RowExclusiveLock', 'ShareUpdateExclusiveLock', 'ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock'].map(fromPgLocksMode),
    [...lockModes],
  );
  assert.equal(fromPgLocksMode('SIReadLock'), null);
});

test('table size moves the level of statements whose cost grows with the table', async () => {
  const index = 'CREATE INDEX orders_note ON orders (note);';
  assert.deepEqual(await withContext(index, {}), ['create-index-blocking:medium'], 'no context: the rule\'s level');
  assert.deepEqual(await withContext(index, { orders: table({ rows: 0, bytes: 8192 }) }), ['create-index-blocking:low (was medium)'], 'empty');
  assert.deepEqual(await withContext(index, { orders: table({ rows: null, bytes: 16_384 }) }), ['create-index-blocking:low (was medium)'], 'never analyzed but tiny');
  assert.deepEqual(await withContext(index, { orders: table({ rows: 1_000_000, bytes: 90 * 1024 ** 2 }) }), ['create-index-blocking:high (was medium)'], 'a million rows');
  assert.deepEqual(await withContext(index, { orders: table({ rows: 10, bytes: 1024 ** 3 }) }), ['create-index-blocking:high (was medium)'], 'few rows, a gigabyte (bloat or wide rows)');
  assert.deepEqual(await withContext(index, { orders: table({ rows: 200_000, bytes: 30 * 1024 ** 2 }) }), ['create-index-blocking:medium'], 'in between');
  assert.deepEqual(await withContext(index, { orders: table({ rows: null, bytes: 50 * 1024 ** 2 }) }), ['create-index-blocking:medium'], 'never analyzed, not tiny: unknown');
  assert.deepEqual(await withContext(index, { orders: table({ qualified: null, rows: null, bytes: null }) }), ['create-index-blocking:medium'], 'not in the database: no context');
  assert.deepEqual(
    await withContext('CREATE INDEX o ON shop.orders (note);', { 'shop.orders': table({ qualified: 'shop.orders', rows: 0, bytes: 0 }) }),
    ['create-index-blocking:low (was medium)'],
    'schema-qualified names are looked up as written',
  );
});

test('data loss does not get safer on a small table', async () => {
  const small = { orders: table({ rows: 3, bytes: 8192 }) };
  assert.deepEqual(await withContext(SET_LT + 'ALTER TABLE orders DROP COLUMN note;', small), ['drop-column:high']);
  assert.deepEqual(await withContext(SET_LT + 'ALTER TABLE orders RENAME COLUMN note TO remark;', small), ['rename-column:high']);
  assert.deepEqual(await withContext(SET_LT + 'TRUNCATE orders;', small), ['truncate:high']);
  assert.deepEqual(await withContext('DELETE FROM orders;', small), ['delete-without-where:high']);
});

test('sessions whose locks conflict become a blocked-by-session finding and raise that statement\'s findings', async () => {
  const session = (mode: LockMode, state = 'idle in transaction') => ({ pid: 42, mode, granted: true, state, transactionMs: 300_000, application: 'billing' });
  const index = 'CREATE INDEX orders_note ON orders (note);';
  assert.deepEqual(
    await withContext(index, { orders: table({ rows: 0, bytes: 8192, sessions: [session('ROW EXCLUSIVE')] }) }),
    ['create-index-blocking:medium', 'blocked-by-session:medium'],
    'a writer blocks the index build: low on an empty table, raised to medium',
  );
  assert.deepEqual(await withContext(index, { orders: table({ rows: 0, bytes: 8192, sessions: [session('ACCESS SHARE', 'active')] }) }), ['create-index-blocking:low (was medium)'], 'a reader does not');
  assert.deepEqual(await withContext(index, { orders: table({ sessions: [session('ROW EXCLUSIVE')] }) }), ['create-index-blocking:high (was medium)', 'blocked-by-session:medium'], 'high stays high');
  assert.deepEqual(
    await withContext(SET_LT + 'ALTER TABLE orders ADD COLUMN note2 text;', { orders: table({ sessions: [session('ACCESS SHARE', 'active')] }) }),
    ['blocked-by-session:medium'],
    'even a harmless ALTER queues every query behind it while a reader holds the table',
  );
  assert.deepEqual(await withContext(SET_LT + 'ALTER TABLE orders ADD COLUMN note2 text;', { orders: table({ lockedOut: true }) }), ['blocked-by-session:medium'], 'reading the size timed out');
  assert.deepEqual(
    await withContext('-- pgconvoy:allow blocked-by-session the nightly report ends at 02:00\n' + SET_LT + 'ALTER TABLE orders ADD COLUMN note2 text;', { orders: table({ sessions: [session('ACCESS SHARE')] }) }),
    ['blocked-by-session:medium (allowed)'],
  );
  const s = await script(index);
  const [blocked] = applyContext([], s, new Map([['orders', table({ sessions: [session('ROW EXCLUSIVE')] })]]), defaultThresholds);
  assert.equal(blocked?.context, 'public.orders: pid 42 holds ROW EXCLUSIVE (idle in transaction, transaction open 300 s, billing)');
});

test('against a database only pending migrations are assessed: a table an applied migration created is an existing table', async () => {
  const create = { version: '1', file: 'V1__t.sql', script: await script('CREATE TABLE events (id int, kind text);') };
  const index = { version: '2', file: 'V2__i.sql', script: await script('CREATE INDEX events_kind ON events (kind);') };
  const large = new Map([['events', table({ qualified: 'public.events', rows: 3_000_000 })]]);
  assert.deepEqual(assessPending([create, index], null).get('2'), { level: 'low', findings: [] }, 'both pending: a new, empty table');
  const risk = assessPending([index], large).get('2');
  assert.equal(risk?.level, 'high');
  assert.deepEqual(risk?.findings.map((f) => [f.rule, f.level, f.context]), [['create-index-blocking', 'high', 'public.events: ~3,000,000 rows, 2.0 GB']]);
});

test('modes gate by level; accepted findings never gate', () => {
  const pending = (version: string, level: 'low' | 'medium' | 'high', allowed: string | null = null): PendingMigration => ({
    version,
    description: `m${version}`,
    checksum: 'x',
    undoChecksum: null,
    mode: 'transaction',
    statements: 1,
    risk: {
      level: allowed ? 'low' : level,
      findings: level === 'low' ? [] : [{ rule: 'r', level, lock: null, table: 't', statement: 1, line: 1, why: '', instead: '', allowed, context: null }],
    },
  });
  const set = [pending('1', 'low'), pending('2', 'medium'), pending('3', 'high'), pending('4', 'high', 'reviewed')];
  const gated = (mode: 'safe' | 'auto' | 'aggressive') => gatedMigrations(mode, set).map((g) => `${g.version}:${g.level}`);
  assert.deepEqual(gated('safe'), ['2:medium', '3:high']);
  assert.deepEqual(gated('auto'), ['3:high']);
  assert.deepEqual(gated('aggressive'), []);
  assert.deepEqual(gatedMigrations('safe', set)[1]?.findings, ['r (high) at line 1 on t']);
});

test('a statement blocked on two tables rises one level, not two; momentary sessions and autovacuum do not count', async () => {
  const writer = { pid: 7, mode: 'ROW EXCLUSIVE' as const, granted: true, state: 'idle in transaction', transactionMs: 90_000, application: 'app' };
  const empty = { rows: 0, bytes: 8192 };
  assert.deepEqual(
    await withContext('ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (customer_id) REFERENCES customers (id);', {
      orders: table({ ...empty, sessions: [writer] }),
      customers: table({ qualified: 'public.customers', ...empty, sessions: [writer] }),
    }),
    ['add-foreign-key:medium', 'blocked-by-session:medium', 'blocked-by-session:medium'],
    'low on empty tables, raised once for being blocked',
  );
  const alter = SET_LT + 'ALTER TABLE orders ADD COLUMN note2 text;';
  const reader = (over: object) => ({ pid: 8, mode: 'ACCESS SHARE' as const, granted: true, state: 'active', transactionMs: 4, application: 'app', ...over });
  assert.deepEqual(await withContext(alter, { orders: table({ sessions: [reader({})] }) }), [], 'a query that started 4 ms ago is not in the way');
  assert.deepEqual(await withContext(alter, { orders: table({ sessions: [reader({ transactionMs: 30_000 })] }) }), ['blocked-by-session:medium'], 'a 30 s report is');
  assert.deepEqual(await withContext(alter, { orders: table({ sessions: [reader({ state: 'idle in transaction', transactionMs: 10 })] }) }), ['blocked-by-session:medium'], 'idle in transaction holds its locks until it ends');
  assert.deepEqual(await withContext(alter, { orders: table({ sessions: [reader({ granted: false })] }) }), ['blocked-by-session:medium'], 'a queued lock request is ahead of us');
});

test('a pending migration whose risk was not assessed (planned by an older worker) is gated as high', () => {
  const unassessed: PendingMigration = { version: '1', description: 'm1', checksum: 'x', undoChecksum: null, mode: 'transaction', statements: 1 };
  assert.deepEqual(gatedMigrations('auto', [unassessed]).map((g) => [g.version, g.level, g.findings]), [['1', 'high', ['risk not assessed (planned by an older pgconvoy worker)']]]);
  assert.deepEqual(gatedMigrations('aggressive', [unassessed]), []);
});

test('a migration is predicted short (applied inline) only in one transaction, on small or new tables nobody holds, without DO, CALL or SELECT', async () => {
  const small = table({ rows: 10, bytes: 16_384 });
  const absent = table({ qualified: null, rows: null, bytes: null });
  const short = async (sql: string, context: Record<string, TableContext>) => predictedShort(await script(sql), new Map(Object.entries(context)), defaultThresholds);
  assert.equal(await short('CREATE TABLE items (id int);\nCREATE INDEX ON items (id);\nINSERT INTO items VALUES (1);', { items: absent }), true, 'a new table');
  assert.equal(await short('ALTER TABLE orders ADD COLUMN note text;', { orders: small }), true, 'a small table');
  assert.equal(await short('ALTER TABLE orders ADD COLUMN note text;', { orders: table() }), false, 'a large table');
  assert.equal(await short('ALTER TABLE orders ADD COLUMN note text;', { orders: table({ rows: 50_000, bytes: 20 * 1024 ** 2 }) }), false, 'a medium table');
  assert.equal(await short('ALTER TABLE orders ADD COLUMN note text;', {}), false, 'a table the database said nothing about');
  const holder = { pid: 7, mode: 'ACCESS SHARE' as const, granted: true, state: 'idle in transaction', transactionMs: 60_000, application: null };
  assert.equal(await short('ALTER TABLE orders ADD COLUMN note text;', { orders: { ...small, sessions: [holder] } }), false, 'a session in the way');
  assert.equal(await short('ALTER TABLE orders ADD COLUMN note text;', { orders: { ...small, lockedOut: true } }), false, 'a table whose size could not be read');
  assert.equal(await short('CREATE INDEX CONCURRENTLY orders_note ON orders (note);', { orders: small }), false, 'outside a transaction');
  assert.equal(await short("DO $$ BEGIN PERFORM pg_sleep(1); END $$;", {}), false, 'a DO block');
  assert.equal(await short('CALL refresh_all();', {}), false, 'a procedure');
  assert.equal(await short('SELECT pg_sleep(60);', {}), false, 'a SELECT, which may call anything');
  assert.equal(await short("INSERT INTO items VALUES (1);\nUPDATE items SET id = 2;", { items: small }), true, 'rows of a small table');
});
