import { DefaultLogger, NativeConnection, Runtime, Worker, makeTelemetryFilterString, type LogLevel, type WorkflowBundleOption } from '@temporalio/worker';
import { createActivities } from '../activities';
import { serverSlots } from '../db/server-slots';
import type { Config } from '../config/config';
import type { Logger } from '../logging/logger';
import { prebuiltWorkflowBundle, workflowsPath } from './bundle';

let runtimeInstalled = false;

const pinoLevel = { TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' } as const;

/**
 * Routes the Temporal SDK's own logs into our structured logger. The SDK
 * allows one Runtime per process, installed before the first connection.
 */
export function installRuntime(logger: Logger, level: LogLevel = 'WARN', options: { shutdownSignals?: NodeJS.Signals[] } = {}): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  Runtime.install({
    ...(options.shutdownSignals ? { shutdownSignals: options.shutdownSignals } : {}),
    logger: new DefaultLogger(level, (entry) => logger[pinoLevel[entry.level]]({ event: 'temporal.sdk', ...entry.meta }, entry.message)),
    telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: level }), forward: {} } },
  });
}

export interface WorkerOptions {
  config: Config;
  logger: Logger;
  /** Address of the Temporal frontend; defaults to the config's. */
  address?: string;
  /** Defaults to the config's task queue. */
  taskQueue?: string;
  /** A prebuilt workflow bundle (bundleWorkflowCode); built from src/workflows when absent. */
  workflowBundle?: WorkflowBundleOption;
}

export { workflowsPath } from './bundle';

/** A worker for pgconvoy's workflows and activities on one task queue. */
export async function createWorker(options: WorkerOptions): Promise<{ worker: Worker; connection: NativeConnection }> {
  const { config, logger } = options;
  const address = options.address ?? config.temporal.address;
  if (address === undefined) throw new Error('createWorker needs a Temporal address');
  const prebuilt = options.workflowBundle ? undefined : prebuiltWorkflowBundle();
  const connection = await NativeConnection.connect({ address });
  try {
    const worker = await Worker.create({
      connection,
      namespace: config.temporal.namespace,
      taskQueue: options.taskQueue ?? config.temporal.taskQueue,
      // The bundle built with the code, else bundled now (about a second).
      ...(options.workflowBundle ? { workflowBundle: options.workflowBundle } : prebuilt ? { workflowBundle: prebuilt } : { workflowsPath }),
      activities: createActivities({ config, logger }),
      // Sized explicitly: each database in flight holds two activity slots for the whole run (src/config/worker.ts).
      maxConcurrentActivityTaskExecutions: config.worker.maxConcurrentActivities,
      maxConcurrentWorkflowTaskExecutions: config.worker.maxConcurrentWorkflowTasks,
      ...(config.worker.maxCachedWorkflows === undefined ? {} : { maxCachedWorkflows: config.worker.maxCachedWorkflows }),
    });
    // The process's connections to each PostgreSQL server, activities and local activities alike (src/db/server-slots.ts).
    serverSlots.configure(config.worker.maxConnectionsPerServer);
    return { worker, connection };
  } catch (error) {
    await connection.close();
    throw error;
  }
}
