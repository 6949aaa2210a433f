import { defaultThresholds } from '../../src/core/risk-context';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, type WorkflowBundleOption } from '@temporalio/worker';
import { defaultLeaseSettings, defaultReconnectTimeoutMs, defaultWorkerSettings, type Config } from '../../src/config/config';
import { defaultFileLimits } from '../../src/core/file-limits';
import { defaultExecutionSettings } from '../../src/core/execution-settings';
import { createLogger } from '../../src/logging/logger';
import { prebuiltWorkflowBundle } from '../../src/worker/bundle';
import { createWorker, installRuntime, workflowsPath } from '../../src/worker/worker';
import { services } from './services';

const logger = createLogger(process.env.PGCONVOY_LOG_LEVEL ?? 'error');
let bundle: Promise<WorkflowBundleOption> | undefined;

/** One workflow bundle per test process: bundling takes a couple of seconds. */
function workflowBundle(): Promise<WorkflowBundleOption> {
  installRuntime(logger);
  // The one `npm run build` wrote, else bundled here.
  const prebuilt = prebuiltWorkflowBundle();
  if (prebuilt) return Promise.resolve(prebuilt);
  bundle ??= bundleWorkflowCode({ workflowsPath, logger: { log: () => undefined, trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined } });
  return bundle;
}

export async function testClient(): Promise<{ client: Client; close: () => Promise<void> }> {
  const connection = await Connection.connect({ address: services.temporalAddress });
  return { client: new Client({ connection, namespace: services.temporalNamespace }), close: () => connection.close() };
}

/** One client for a whole test file, connected before its tests and closed after them. */
export function sharedTestClient(): { readonly client: Client } {
  let shared: { client: Client; close: () => Promise<void> } | undefined;
  before(async () => {
    shared = await testClient();
  });
  after(async () => {
    await shared?.close();
  });
  return {
    get client(): Client {
      if (!shared) throw new Error('sharedTestClient() is used before its before() hook ran');
      return shared.client;
    },
  };
}

export function uniqueTaskQueue(): string {
  return `pgconvoy-test-${randomBytes(4).toString('hex')}`;
}

/** A test config pointing at the harness's Temporal server. */
export function testConfig(overrides: Partial<Config> & Pick<Config, 'databases' | 'migrationsDir'>): Config {
  return {
    stateDir: '/nonexistent',
    execution: defaultExecutionSettings,
    lease: defaultLeaseSettings,
    files: defaultFileLimits,
    risk: defaultThresholds,
    labels: {},
    serve: { host: '127.0.0.1', port: 0, bodyLimitBytes: 64 * 1024, rateLimitPerMinute: 600, tokens: [] },
    webhooks: {},
    hooks: { beforeMigrate: [], afterMigrate: [], afterMigrateError: [], afterMigrateFailure: 'keep' },
    watch: { intervalMs: 5_000, longQueryMs: 5_000 },
    guards: {},
    worker: { ...defaultWorkerSettings },
    backup: { store: join(process.env.PGCONVOY_TEST_SCRATCH ?? tmpdir(), `backups-${process.pid}`), keep: 5, drill: false, scope: 'database', s3: { region: 'us-east-1', partSizeBytes: 5 * 1024 * 1024, queueSize: 2 } },
    ...overrides,
    temporal: { address: services.temporalAddress, namespace: services.temporalNamespace, taskQueue: uniqueTaskQueue(), reconnectTimeoutMs: defaultReconnectTimeoutMs, ...overrides.temporal },
  };
}

/**
 * Runs pgconvoy's real worker (real activities, real workflow bundle) on the
 * config's task queue while `fn` runs.
 */
export async function withWorker<T>(config: Config, fn: () => Promise<T>): Promise<T> {
  const { worker, connection } = await createWorker({ config, logger, workflowBundle: await workflowBundle() });
  try {
    return await worker.runUntil(fn());
  } finally {
    await connection.close();
  }
}
