import pg from 'pg';

/** The PostgreSQL the benchmarks create their databases in. */
export const adminUrl = process.env.PGCONVOY_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** `--name <number>` from the command line. */
export function numberArg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

/** One statement (or several) on a connection of its own. */
export async function query<T extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, url = adminUrl): Promise<pg.QueryResult<T>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query<T>(sql);
  } finally {
    await client.end();
  }
}

/** The connection string of another database on the same server. */
export const databaseUrl = (name: string): string => Object.assign(new URL(adminUrl), { pathname: `/${name}` }).toString();

export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * `n` fresh databases of one variant (`<prefix>_<pid>_<variant>_<i>`, each
 * pushed to `all` for the final drop), a few at a time (CREATE DATABASE
 * copies the template; too many at once only queue), then the checkpoint
 * they call for, before the clock starts rather than during the variant.
 */
export async function freshDatabases(prefix: string, variant: string, n: number, all: string[]): Promise<string[]> {
  const names = Array.from({ length: n }, (_, i) => `${prefix}_${process.pid}_${variant}_${i + 1}`);
  all.push(...names);
  for (let i = 0; i < n; i += 5) await Promise.all(names.slice(i, i + 5).map((name) => query(`CREATE DATABASE ${name}`)));
  await query('CHECKPOINT');
  return names;
}

/** Drops the benchmark's databases, whatever state they are in; a failed drop is not the benchmark's result. */
export async function dropDatabases(names: string[]): Promise<void> {
  for (const name of names) await query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
}

/** Runs a benchmark's main: a failure prints and exits 1. */
export function runBench(main: () => Promise<void>): void {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
