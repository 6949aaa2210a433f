/**
 * How a `pgconvoy worker` is sized (part of the one config in config.ts):
 * its slots for activities and workflow tasks, and its cap on connections
 * to each PostgreSQL server. Each may also be given on the command line.
 */
import { z } from 'zod';

export const defaultWorkerSettings = {
  maxConcurrentActivities: 100,
  maxConcurrentWorkflowTasks: 40,
  maxConnectionsPerServer: 20,
} as const;

export const workerSchema = z.strictObject({
  /**
   * Activities the worker runs at once. A database in flight holds two
   * (its lease renewal and its current step): 100 serves 50 databases at a
   * time; size it to the rollouts' concurrency over the number of workers.
   */
  maxConcurrentActivities: z.number().int().min(2).default(defaultWorkerSettings.maxConcurrentActivities),
  /** Workflow tasks the worker runs at once (a rollout's children each need one per decision). */
  maxConcurrentWorkflowTasks: z.number().int().min(2).default(defaultWorkerSettings.maxConcurrentWorkflowTasks),
  /**
   * Connections the worker has open to one PostgreSQL server at once, over
   * every database on it (src/db/server-slots.ts). A step past it waits for
   * a connection; a tenth of them (at least one) are kept for lease
   * renewals and the watch. Sum it over the workers and keep that below the
   * server's max_connections, less what its applications need.
   */
  maxConnectionsPerServer: z.number().int().min(4).default(defaultWorkerSettings.maxConnectionsPerServer),
  /** Workflow runs kept in the worker's memory between tasks (default: the SDK's, from the memory it has). */
  maxCachedWorkflows: z.number().int().min(0).optional(),
});

export type WorkerSettings = z.output<typeof workerSchema>;
