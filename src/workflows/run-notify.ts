import { log, startChild, uuid4, workflowInfo } from '@temporalio/workflow';
import type { MigrateDatabaseInput, RunEventName, RunNotification, RunOutcome } from '../contracts';
import { describeFailure, message } from './failures';
import { deliverToEach } from './webhooks';

export interface RunNotifier {
  /** Tells the webhooks of an event; the run goes on without waiting. */
  notify(event: RunEventName, text: string, facts?: Partial<Pick<RunNotification, 'status' | 'versionBefore' | 'versionAfter' | 'pending' | 'failure'>>): void;
  /** Tells them how the run ended (nothing for a database that was up to date). */
  ended(outcome: RunOutcome): void;
  /** Resolves once every notice's delivery has started; the run awaits it before it ends. */
  settled(): Promise<void>;
}

const endEvent: Record<RunOutcome['status'], RunEventName | null> = {
  'up-to-date': null,
  'dry-run': 'run-ended',
  applied: 'run-completed',
  cancelled: 'run-ended',
  halted: 'run-failed',
  'approval-timed-out': 'run-failed',
  'compensation-failed': 'run-failed',
  compensated: 'run-compensated',
};

/** One notice to the webhooks, a delivery activity each (retried with backoff); the workflow ends when each was delivered or given up on. */
export async function deliverNotification(input: { webhooks: string[]; notification: RunNotification }): Promise<{ delivered: string[]; failed: string[] }> {
  const results = await Promise.all(deliverToEach(input.webhooks, input.notification));
  return { delivered: input.webhooks.filter((_, i) => results[i]), failed: input.webhooks.filter((_, i) => !results[i]) };
}

/**
 * The webhooks a single database's run tells (input.notify: names in the
 * worker's config): started, approval needed, and how it ended. Each notice
 * is a child workflow of its own (`<run's workflow id>/notify/<uuid>`) that
 * outlives the run (parent close policy ABANDON): a receiver that is down
 * for minutes delays only its notice, never the run's end, and never keeps
 * the database's workflow id from the next run. A run started by a rollout
 * tells nothing itself: the rollout tells of it.
 */
export function runNotifier(input: MigrateDatabaseInput): RunNotifier {
  const info = workflowInfo();
  const webhooks = info.parent ? [] : (input.notify ?? []);
  const starts: Array<Promise<void>> = [];
  let versionBefore: RunNotification['versionBefore'] = null;
  let pending = 0;
  const notify: RunNotifier['notify'] = (event, text, facts = {}) => {
    if (webhooks.length === 0) return;
    if (facts.versionBefore !== undefined) versionBefore = facts.versionBefore;
    if (facts.pending !== undefined) pending = facts.pending;
    const notification: RunNotification = { db: input.db, workflowId: info.workflowId, event, text, status: null, versionBefore, versionAfter: null, pending, failure: null, ...facts, at: Date.now() };
    starts.push(
      startChild(deliverNotification, { workflowId: `${info.workflowId}/notify/${uuid4()}`, args: [{ webhooks, notification }], parentClosePolicy: 'ABANDON' }).then(
        () => undefined,
        (error: unknown) => log.warn('a notice could not be sent', { event, error: message(error) }),
      ),
    );
  };
  return {
    notify,
    ended: (outcome) => {
      const event = endEvent[outcome.status];
      if (event === null) return;
      const failure = 'failure' in outcome ? describeFailure(outcome.failure, outcome.status) : null;
      notify(event, `${input.db}: ${failure ?? `${outcome.status}, at version ${outcome.versionAfter ?? 'none'}`}`, { status: outcome.status, versionBefore: outcome.versionBefore, versionAfter: outcome.versionAfter, failure });
    },
    settled: async () => void (await Promise.all(starts)),
  };
}
