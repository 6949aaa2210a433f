/**
 * What test/run.ts started for this run. Tests read the environment here,
 * at their edge, like the CLI does.
 */
function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the tests with "npm test" (test/run.ts starts the services)`);
  return value;
}

export const services = {
  get temporalAddress(): string {
    return required('PGCONVOY_TEST_TEMPORAL_ADDRESS');
  },
  /** Admin connection used to create and drop the per-test databases. */
  get adminUrl(): string {
    return process.env.PGCONVOY_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  },
  /** Admin connection to the harness's PostgreSQL 18, a server newer than the machine's pg_dump. */
  get newerAdminUrl(): string {
    return required('PGCONVOY_TEST_PG18_URL');
  },
  get runId(): string {
    return process.env.PGCONVOY_TEST_RUN ?? 'adhoc';
  },
};
