import type { Config } from '../../src/config/config';
import { createTestDatabase, type TestDatabase } from './database';
import { runInProcess, type InProcessResult } from './in-process-cli';
import { writeMigrations } from './migrations';
import { services } from './services';
import { testConfig } from './temporal';

export interface CliFixture {
  db: TestDatabase;
  set: { dir: string };
  config: Config;
  /** The CLI's environment: the harness's Temporal and the config's task queue. */
  env: Record<string, string>;
  /** Runs the CLI in-process against the set and the harness's Temporal, on the config's task queue. */
  cli: (...args: string[]) => Promise<InProcessResult>;
}

/**
 * A database (seeded by `seed`), a migration set and a config that knows the
 * database as `alias`; run a worker with `withWorker(fixture.config, ...)`.
 * Tests that query runs give each test its own alias: a query to a finished
 * run of another test would wait for that test's (gone) worker.
 */
export async function cliFixture(
  t: { after(fn: () => unknown): void },
  files: Record<string, string>,
  alias = 'app',
  seed?: (db: TestDatabase) => Promise<unknown>,
  options: { adminUrl?: string; config?: Partial<Config> } = {},
): Promise<CliFixture> {
  const db = await createTestDatabase(options.adminUrl ? { adminUrl: options.adminUrl } : {});
  t.after(() => db.drop());
  if (seed) await seed(db);
  const set = writeMigrations(files);
  t.after(() => set.remove());
  const config = testConfig({ ...options.config, databases: { [alias]: db.url }, migrationsDir: set.dir });
  const env = { ...services.temporalEnv, PGCONVOY_TASK_QUEUE: config.temporal.taskQueue, PGCONVOY_LOG_LEVEL: 'silent' };
  const cli = (...args: string[]) => runInProcess(['--migrations', set.dir, ...args], env, set.dir);
  return { db, set, config, env, cli };
}
