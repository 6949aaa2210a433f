import { databaseEnvName, type Config } from '../config/config';
import { UnknownDatabaseError } from '../core/errors';
import type { CatalogCache } from '../db/catalog-tracker';
import type { ConnectionPool, Target } from '../db/connection';
import type { Logger } from '../logging/logger';

/**
 * What a use-case needs from whoever runs it: the worker's config and
 * logger, and the few things an activity provides (the run it belongs to,
 * heartbeats, cancellation). The CLI provides them too (`localDeps`), for
 * the commands that connect directly (lint --db, rehearse). No Temporal here.
 */
export interface RunDeps {
  config: Config;
  logger: Logger;
  /** The workflow run this work is a step of; absent outside Temporal. */
  execution?: { namespace: string; workflowId: string; runId: string };
  /** This attempt of the step and when its first was scheduled: a duration covers every attempt. */
  attempt?: { number: number; scheduledAtMs: number };
  /** Aborted when the step is cancelled. */
  signal?: AbortSignal;
  /** Says the step is alive; `details` is its progress so far, kept for the next beat. */
  heartbeat(details?: unknown): void;
  /** A sleep that the step's cancellation ends (it throws then). */
  sleep(ms: number): Promise<void>;
  /** The catalogs this worker follows through its runs (a fingerprint per version without reading the whole schema); absent, every version reads it whole. */
  catalogs?: CatalogCache;
  /** Connections this worker keeps between the steps of a run; absent, each step opens its own. */
  connections?: ConnectionPool;
}

/** Deps for a command that runs a use-case itself, outside any workflow. */
export function localDeps(config: Config, logger: Logger): RunDeps {
  return { config, logger, heartbeat: () => undefined, sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)) };
}

/** The alias's connection string, from the config of whoever runs the step; never from workflow input. */
export function targetOf(config: Config, alias: string): Target {
  const url = config.databases[alias];
  if (url === undefined) throw new UnknownDatabaseError(alias, databaseEnvName(alias));
  return { alias, url };
}

/** The run id the ledger records, or '' outside a workflow. */
export const runIdOf = (deps: RunDeps): string => deps.execution?.runId ?? '';

/** The workflow id a hook's row records, when there is one. */
export const workflowIdOf = (deps: RunDeps): { workflowId?: string } => (deps.execution ? { workflowId: deps.execution.workflowId } : {});

/** `signal` when there is one (withClient and prepareOffThread take it optionally). */
export const cancellable = (deps: RunDeps): { signal?: AbortSignal } => (deps.signal ? { signal: deps.signal } : {});
