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

export async function adminQuery(sql: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: services.adminUrl });
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
export async function createTestDatabase(options: { password?: string } = {}): Promise<TestDatabase> {
  const name = `pgconvoy_test_${services.runId}${randomBytes(4).toString('hex')}`;
  await adminQuery(`CREATE DATABASE ${name}`);
  const url = new URL(services.adminUrl);
  url.pathname = `/${name}`;
  if (options.password !== undefined) url.password = options.password;
  let client: pg.Client | undefined;
  return {
    name,
    url: url.toString(),
    async query(sql, params) {
      if (!client) {
        client = new pg.Client({ connectionString: url.toString() });
        await client.connect();
      }
      return client.query(sql, params);
    },
    async drop() {
      await client?.end().catch(() => undefined);
      await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}
