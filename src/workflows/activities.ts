import { proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { Activities } from '../contracts';
import { nonRetryableTypes } from './failures';

/**
 * The activities a run calls, grouped by how long they may take and how
 * they are retried. Error types no retry can fix (src/contracts/errors.ts)
 * fail at once; everything else is retried with backoff.
 */

/**
 * The plan and the lease's taking and release run as local activities: each
 * is a marker in the history instead of a round trip through the task queue
 * and a workflow task (six events). Each is idempotent (the lease is
 * re-entrant for its holder; the plan reads, and creates the ledger only if
 * it is missing): a worker that dies in one fails the workflow task, whose
 * retry on another worker runs it again. A local activity has no heartbeat,
 * and while one runs the workflow answers no query and takes no message:
 * what reads the whole schema (beginRun, verifyRun) or may take long stays a
 * regular activity.
 */
export const { planDatabase } = proxyLocalActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  localRetryThreshold: '5 seconds',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 10, nonRetryableErrorTypes: nonRetryableTypes },
});

export const { applyMigration, applyGroup, runHooks, runCommandHooks } = proxyActivities<Activities>({
  // A migration may legitimately run for hours (an index on a large table);
  // heartbeats every few seconds tell a dead worker from a slow one, so a
  // dead worker's migration is retried elsewhere within ten seconds.
  startToCloseTimeout: '24 hours',
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 10, nonRetryableErrorTypes: nonRetryableTypes },
});

/**
 * Migrations predicted short (PendingMigration.short) run inline: consecutive
 * ones together in a local activity on the worker that runs the workflow
 * (about a second's worth each time, runs/apply.ts), recorded as a marker
 * in the history, without a round trip through the task queue. Same
 * checkpoints: each version's ledger row commits with it, and a worker that
 * dies mid-way fails the workflow task, whose retry runs the call again (the
 * ledger makes every version that committed a no-op reported applied).
 * Retried like the regular one; backoffs past a few seconds wait on a
 * workflow timer.
 */
export const { applyMigrations: applyMigrationsInline } = proxyLocalActivities<Activities>({
  startToCloseTimeout: '24 hours',
  localRetryThreshold: '5 seconds',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 10, nonRetryableErrorTypes: nonRetryableTypes },
});

export const { acquireLease } = proxyLocalActivities<Activities>({
  startToCloseTimeout: '1 minute',
  localRetryThreshold: '5 seconds',
  // Another holder's lease ends when it finishes or expires: keep asking, for up to an hour
  // (past the threshold each attempt waits on a workflow timer: a few events per attempt).
  scheduleToCloseTimeout: '1 hour',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s', nonRetryableErrorTypes: nonRetryableTypes },
});

export const { holdLease } = proxyActivities<Activities>({
  startToCloseTimeout: '7 days',
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '5s', nonRetryableErrorTypes: nonRetryableTypes },
});

export const { releaseLease } = proxyLocalActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  localRetryThreshold: '5 seconds',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 10 },
});

export const { planRevert } = proxyActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 10, nonRetryableErrorTypes: nonRetryableTypes },
});

export const { beginRun, verifyRun, finishCompensation, runChanges, proveRevert, finishRevertCompensation } = proxyActivities<Activities>({
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 5, nonRetryableErrorTypes: nonRetryableTypes },
});

export const { takeBackup, restoreFromBackup, undoMigration, revertVersion } = proxyActivities<Activities>({
  startToCloseTimeout: '12 hours',
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '2 minutes', maximumAttempts: 3, nonRetryableErrorTypes: nonRetryableTypes },
});

/** A rollout's reads: each database's plan and fingerprints before anything changes, and what differs between two schemas. */
export const { surveyDatabase, compareSchemas } = proxyActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 5, nonRetryableErrorTypes: nonRetryableTypes },
});

/** A webhook delivery: retried with backoff for about a quarter of an hour; the rollout does not wait for it on its way. */
export const { deliverWebhook } = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '2 minutes', maximumAttempts: 12, nonRetryableErrorTypes: nonRetryableTypes },
});

/** A run held by its guards: samples until the database is healthy or the run's guardTimeoutMs is spent (its own timeout is larger). */
export const { waitHealthy } = proxyActivities<Activities>({
  startToCloseTimeout: '7 days',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 10, nonRetryableErrorTypes: nonRetryableTypes },
});
