import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Config } from '../config/config';
import type { Activities } from '../contracts';
import { PgconvoyError } from '../core/errors';
import { CatalogCache } from '../db/catalog-tracker';
import { ConnectionPool } from '../db/connection';
import type { Logger } from '../logging/logger';
import * as runs from '../runs';
import type { RunDeps } from '../runs';

export interface ActivityDeps {
  config: Config;
  logger: Logger;
}

/** How often a step tells Temporal it is alive (the workflow's heartbeat timeouts are larger). */
const heartbeatEveryMs = 5_000;

/**
 * The activities: each a use-case from src/runs, adapted by `step` (deps
 * from the activity's context, heartbeats, failures as ApplicationFailures).
 * Policy (what to do with a plan, a failure) is the workflow's.
 */
export function createActivities(deps: ActivityDeps): Activities {
  const step = adapter(deps);
  return {
    planDatabase: step(runs.planDatabase),
    applyMigration: step(runs.applyMigration),
    applyGroup: step(runs.applyGroup),
    applyMigrations: step(runs.applyMigrations),
    runHooks: step(runs.runHooks),
    runCommandHooks: step(runs.runCommandHooks),
    changeLedger: step(runs.changeLedger),
    acquireLease: step(runs.acquireLease),
    holdLease: step(runs.holdLease),
    releaseLease: step(runs.releaseLease),
    takeBackup: step(runs.takeBackup),
    beginRun: step(runs.beginRun),
    waitHealthy: step(runs.waitHealthy),
    verifyRun: step(runs.verifyRun),
    undoMigration: step(runs.undoMigration),
    restoreFromBackup: step(runs.restoreFromBackup),
    finishCompensation: step(runs.finishCompensation),
    runChanges: step(runs.runChanges),
    readHistory: step(runs.readHistory),
    planRevert: step(runs.planRevert),
    revertVersion: step(runs.revertVersion),
    proveRevert: step(runs.proveRevert),
    finishRevertCompensation: step(runs.finishRevertCompensation),
    surveyDatabase: step(runs.surveyDatabase),
    compareSchemas: step(runs.compareSchemas),
    deliverWebhook: step(runs.deliverWebhook),
  };
}

/**
 * Turns a use-case into an activity: its deps come from the activity's
 * context (the workflow run, the attempt, cancellation, a cancellable sleep),
 * it heartbeats every few seconds with the latest progress it reported, so
 * Temporal tells a dead worker from a slow one within the heartbeat timeout,
 * and a pgconvoy error leaves it as an ApplicationFailure of the same type.
 */
function adapter({ config, logger }: ActivityDeps) {
  const catalogs = new CatalogCache();
  const connections = new ConnectionPool();
  return <I, O>(useCase: (deps: RunDeps, input: I) => Promise<O>) =>
    async (input: I): Promise<O> => {
      const activity = Context.current();
      const { workflowExecution: execution, namespace, attempt, scheduledTimestampMs } = activity.info;
      let progress: unknown;
      // A local activity has no heartbeat: the workflow task it runs in tells a dead worker from a slow one.
      const heartbeat = (details?: unknown) => {
        if (details !== undefined) progress = details;
        if (!activity.info.isLocal) activity.heartbeat(progress);
      };
      const deps: RunDeps = {
        config,
        logger,
        ...(execution ? { execution: { namespace, workflowId: execution.workflowId, runId: execution.runId } } : {}),
        attempt: { number: attempt, scheduledAtMs: scheduledTimestampMs },
        signal: activity.cancellationSignal,
        heartbeat,
        sleep: (ms) => activity.sleep(ms),
        catalogs,
        connections,
      };
      heartbeat();
      const ticker = setInterval(heartbeat, heartbeatEveryMs);
      try {
        return await useCase(deps, input);
      } catch (error) {
        throw asFailure(error);
      } finally {
        clearInterval(ticker);
      }
    };
}

/** At the activity edge a pgconvoy error becomes an ApplicationFailure of the same type. */
function asFailure(error: unknown): unknown {
  if (!(error instanceof PgconvoyError)) return error;
  return ApplicationFailure.create({ message: error.message, type: error.type, nonRetryable: !error.retryable, details: [error.details], cause: error });
}
