import { basename } from 'node:path';

/**
 * What test/run.ts started for this run. Tests read the environment here,
 * at their edge, like the CLI does.
 */
function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the tests with "npm test" (test/run.ts starts the services)`);
  return value;
}

/**
 * The Temporal namespace of a test file: its own (test/run.ts creates one per
 * file), so two files running at once never share a workflow id
 * (`pgconvoy/db/<alias>`: many tests name their database "app").
 */
export function testNamespace(file: string): string {
  return `pgconvoy-test-${basename(file).replace(/\.test\.js$/, '').replace(/[^A-Za-z0-9-]/g, '-')}`;
}

export const services = {
  get temporalAddress(): string {
    return required('PGCONVOY_TEST_TEMPORAL_ADDRESS');
  },
  /** This test file's namespace ("default" outside the harness's test files). */
  get temporalNamespace(): string {
    const file = process.argv[1] ?? '';
    return file.endsWith('.test.js') ? testNamespace(file) : 'default';
  },
  /** What points a CLI child at the harness's server and this file's namespace. */
  get temporalEnv(): { TEMPORAL_ADDRESS: string; TEMPORAL_NAMESPACE: string } {
    return { TEMPORAL_ADDRESS: this.temporalAddress, TEMPORAL_NAMESPACE: this.temporalNamespace };
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
