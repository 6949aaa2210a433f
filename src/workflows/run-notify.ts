import { log, uuid4, workflowInfo } from '@temporalio/workflow';
import type { MigrateDatabaseInput, RunEventName, RunNotification, RunOutcome } from '../contracts';
import type { Version } from '../core/version';
import { deliverWebhook } from './activities';
import { describeFailure, message } from './rollout/failures';

export interface RunNotifier {
  /** Tells the webhooks of an event; the run goes on without waiting. */
  notify(event: RunEventName, text: string, facts?: Partial<Pick<RunNotification, 'status' | 'versionBefore' | 'versionAfter' | 'pending' | 'failure'>>): void;
  /** Tells them how the run ended (nothing for a database that was up to date). */
  ended(outcome: RunOutcome): void;
  /** Resolves once every delivery succeeded or gave up; the run awaits it before it ends. */
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

/**
 * The webhooks a single database's run tells (input.notify: names in the
 * worker's config): started, approval needed, and how it ended, a delivery
 * activity each, retried with backoff. A run started by a rollout tells
 * nothing itself: the rollout tells of it.
 */
export function runNotifier(input: MigrateDatabaseInput): RunNotifier {
  const webhooks = workflowInfo().parent ? [] : (input.notify ?? []);
  const deliveries: Array<Promise<void>> = [];
  let versionBefore: Version | null = null;
  let pending = 0;
  const notify: RunNotifier['notify'] = (event, text, facts = {}) => {
    if (facts.versionBefore !== undefined) versionBefore = facts.versionBefore;
    if (facts.pending !== undefined) pending = facts.pending;
    const notification: RunNotification = { db: input.db, workflowId: workflowInfo().workflowId, event, text, status: null, versionBefore, versionAfter: null, pending, failure: null, ...facts, at: Date.now() };
    for (const webhook of webhooks) {
      deliveries.push(
        deliverWebhook({ webhook, deliveryId: uuid4(), notification }).then(
          () => undefined,
          (error: unknown) => log.warn('a webhook was not delivered', { webhook, event, error: message(error) }),
        ),
      );
    }
  };
  return {
    notify,
    ended: (outcome) => {
      const event = endEvent[outcome.status];
      if (event === null) return;
      const failure = 'failure' in outcome ? describeFailure(outcome.failure, outcome.status) : null;
      const text = `${input.db}: ${failure ?? `${outcome.status}, at version ${outcome.versionAfter ?? 'none'}`}`;
      notify(event, text, { status: outcome.status, versionBefore: outcome.versionBefore, versionAfter: outcome.versionAfter, failure });
    },
    settled: async () => void (await Promise.all(deliveries)),
  };
}
