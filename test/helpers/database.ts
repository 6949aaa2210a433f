import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { services } from './services';

export interface TestDatabase {
  name: string;
  /** Connection string to the new database, with `password` in it when one is given. */
  url: string;
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<pg.QueryResult<R>>;
  drop(): Promise<void>;
}

export async function adminQuery(sql: string, adminUrl = services.adminUrl): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return await client.query(sql);
  } finally {
    await client.end();
  }
}

/**
 * A throw-away database, `pgconvoy_test_<run><random>`. Register drop() with
 * t.after(); test/run.ts drops whatever a crashed test left behind.
 */
export async function createTestDatabase(options: { password?: string; adminUrl?: string } = {}): Promise<TestDatabase> {
  const adminUrl = options.adminUrl ?? services.adminUrl;
  const name = `pgconvoy_test_${services.runId}${randomBytes(4).toString('hex')}`;
  await adminQuery(`CREATE DATABASE ${name}`, adminUrl);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  if (options.password !== undefined) url.password = options.password;
  let client: pg.Client | undefined;
  return {
    name,
    url: url.toString(),
    async query(sql, params) {
      if (!client) {
        const fresh = new pg.Client({ connectionString: url.toString() });
        // A test may terminate this session (a restore does): reconnect on the next query.
        fresh.on('error', () => {
          if (client === fresh) client = undefined;
        });
        await fresh.connect();
        client = fresh;
      }
      return client.query(sql, params);
    },
    async drop() {
      await client?.end().catch(() => undefined);
      await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`, adminUrl);
    },
  };
}

/** Whether a statement containing `marker` is running in the test database (seen from another session). */
export async function statementRunning(db: TestDatabase, marker: string): Promise<true | undefined> {
  const r = await adminQuery(
    `SELECT 1 FROM pg_stat_activity WHERE datname = '${db.name}' AND state = 'active' AND query LIKE '%${marker}%' AND pid <> pg_backend_pid()`,
  );
  return r.rowCount ? true : undefined;
}
